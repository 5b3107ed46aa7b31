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

void on_env_teardown(EnvState* st) { drain_async(*st->flight); }

}  // namespace

Napi::Object init_module(Napi::Env env, Napi::Object exports) {
  auto* st = new EnvState();
  env.SetInstanceData<EnvState>(st);  // deleted by node-addon-api at environment teardown
  env.AddCleanupHook(on_env_teardown, st);
  register_runtime(env, exports);
  register_attention(env, exports);
  register_tensor_functions(env, exports);
  return exports;
}

}  // namespace fmha

static Napi::Object InitFmha(Napi::Env env, Napi::Object exports) { return fmha::init_module(env, exports); }
NODE_API_MODULE(fmha, InitFmha)
