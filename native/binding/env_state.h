// Per-JS-environment state (main thread or a worker_thread): the FmhaError
// class and the bookkeeping that lets an environment shut down safely while
// its async calls are still computing into its buffers.
#pragma once
#include <napi.h>
#include <condition_variable>
#include <memory>
#include <mutex>

namespace fmha {

struct EnvState {
  Napi::FunctionReference error_class;

  // Shared with in-flight jobs (which may outlive the environment's last JS tick).
  struct Flight {
    std::mutex mutex;
    std::condition_variable idle;
    int running = 0;           // jobs the dispatcher is processing for this environment
    int32_t closing = 0;       // set at teardown: running kernels abort (read atomically)
  };
  std::shared_ptr<Flight> flight = std::make_shared<Flight>();
};

EnvState& env_state(Napi::Env env);

}  // namespace fmha
