// fmha's async path: calls queue FIFO on one process-wide dispatcher thread,
// which runs each on the CPU pool (never on a libuv thread, never on the event
// loop) and hands the result back to its JS environment through a
// thread-safe function.
#pragma once
#include <napi.h>
#include <memory>
#include "binding/env_state.h"
#include "core/attention_params.h"

namespace fmha {

class AsyncJob {
 public:
  virtual ~AsyncJob() = default;
  // Dispatcher thread: the work. closing_flag is raised if the environment shuts down.
  virtual Status run(const int32_t* closing_flag) = 0;
  // JS thread: settle the promise with the result.
  virtual void complete(Napi::Env env, const Status& st) = 0;
  // The environment is gone: drop JS handles without calling N-API.
  virtual void abandon() = 0;
};

void submit_async(Napi::Env env, std::unique_ptr<AsyncJob> job);

// Environment teardown: queued jobs of this environment are skipped, running ones
// aborted, and this returns once none of them touches the environment's memory.
void drain_async(EnvState::Flight& flight);

}  // namespace fmha
