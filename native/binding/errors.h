// Validation failures inside the binding are thrown as FmhaException and turned
// into JS FmhaError objects at the entry points (guard()); no C++ exception ever
// reaches Node.
#pragma once
#include <napi.h>
#include <string>
#include "core/attention_params.h"

namespace fmha {

namespace code {
inline constexpr const char* kShape = "ERR_FMHA_SHAPE";
inline constexpr const char* kDtype = "ERR_FMHA_DTYPE";
inline constexpr const char* kArgument = "ERR_FMHA_ARGUMENT";
inline constexpr const char* kBackend = "ERR_FMHA_BACKEND";
inline constexpr const char* kOom = "ERR_FMHA_OOM";
inline constexpr const char* kCuda = "ERR_FMHA_CUDA";
}  // namespace code

struct FmhaException {
  const char* code;
  std::string message;
};

[[noreturn]] inline void fail(const char* c, std::string message) { throw FmhaException{c, std::move(message)}; }

// A JS value described for messages: `number 3`, `string "x"`, `Float64Array`, ...
std::string describe(const Napi::Value& v);

// new FmhaError(message, code) with the class registered by init().
Napi::Error make_error(Napi::Env env, const char* code, const std::string& message);
// The error a failed kernel Status becomes (AbortError for an aborted call).
Napi::Error status_error(Napi::Env env, const Status& st);

// Throws the exception being handled into JS as the matching error:
// FmhaException → FmhaError, Napi::Error as is, std::bad_alloc → ERR_FMHA_OOM,
// anything else → an internal error. Call only inside a catch block. Never
// throws: an environment being terminated (worker.terminate()) cannot take a
// JS exception, and node-addon-api then throws again; nobody is left to see it.
void throw_current(Napi::Env env) noexcept;

// Runs an entry point body; any exception becomes a thrown JS error.
template <typename F>
Napi::Value guard(Napi::Env env, F&& body) {
  try {
    return body();
  } catch (...) {
    throw_current(env);
  }
  return env.Undefined();
}

}  // namespace fmha
