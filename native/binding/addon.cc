// Module entry. Context-aware: every JS environment (main thread, each
// worker_thread) gets its own EnvState; at its teardown, async work still
// computing into its buffers is aborted and awaited before the heap goes away.
#include <napi.h>

#include "binding/async_queue.h"
#include "binding/env_state.h"
#include "binding/exports.h"

namespace fmha {

EnvState& env_state(Napi::Env env) { return *env.GetInstanceData<EnvState>(); }

namespace {

// Holds its own reference to the flight record: the instance data may be
// finalized before or after this hook runs.
void on_env_teardown(std::shared_ptr<EnvState::Flight>* flight) {
  drain_async(**flight);
  delete flight;
}

}  // namespace

Napi::Object init_module(Napi::Env env, Napi::Object exports) {
  auto* st = new EnvState();
  env.SetInstanceData<EnvState>(st);  // deleted by node-addon-api at environment teardown
  env.AddCleanupHook(on_env_teardown, new std::shared_ptr<EnvState::Flight>(st->flight));
  register_runtime(env, exports);
  register_attention(env, exports);
  register_packing(env, exports);
  register_tensor_functions(env, exports);
  register_decode(env, exports);
  register_device(env, exports);
  return exports;
}

}  // namespace fmha

static Napi::Object InitFmha(Napi::Env env, Napi::Object exports) { return fmha::init_module(env, exports); }
NODE_API_MODULE(fmha, InitFmha)
