#include "binding/errors.h"

#include "binding/env_state.h"

namespace fmha {

std::string describe(const Napi::Value& v) {
  switch (v.Type()) {
    case napi_undefined: return "undefined";
    case napi_null: return "null";
    case napi_boolean: return std::string("boolean ") + (v.As<Napi::Boolean>().Value() ? "true" : "false");
    case napi_number: return "number " + v.ToString().Utf8Value();
    case napi_string: return "string \"" + v.As<Napi::String>().Utf8Value() + "\"";
    case napi_function: return "a function";
    case napi_bigint: return "a bigint";
    case napi_symbol: return "a symbol";
    default: break;
  }
  if (v.IsTypedArray() || v.IsArrayBuffer() || v.IsArray()) {
    Napi::Value ctor = v.As<Napi::Object>().Get("constructor");
    if (ctor.IsFunction()) return ctor.As<Napi::Function>().Get("name").ToString().Utf8Value();
  }
  return "an object";
}

Napi::Error make_error(Napi::Env env, const char* code, const std::string& message) {
  EnvState& st = env_state(env);
  if (!st.error_class.IsEmpty()) {
    Napi::Object err = st.error_class.New({Napi::String::New(env, message), Napi::String::New(env, code)});
    return Napi::Error(env, err);
  }
  Napi::Error err = Napi::Error::New(env, message);
  err.Set("code", Napi::String::New(env, code));
  return err;
}

Napi::Error status_error(Napi::Env env, const Status& st) {
  switch (st.code) {
    case StatusCode::Aborted: {
      Napi::Error err = Napi::Error::New(env, "The operation was aborted");
      err.Set("name", Napi::String::New(env, "AbortError"));
      err.Set("code", Napi::String::New(env, "ABORT_ERR"));
      return err;
    }
    case StatusCode::OutOfMemory: return make_error(env, code::kOom, st.message);
    case StatusCode::Backend: return make_error(env, code::kBackend, st.message);
    case StatusCode::Cuda: return make_error(env, code::kCuda, st.message);
    default: return make_error(env, code::kArgument, st.message);
  }
}

void throw_current(Napi::Env env) noexcept {
  try {
    try {
      throw;
    } catch (const FmhaException& e) {
      make_error(env, e.code, e.message).ThrowAsJavaScriptException();
    } catch (const Napi::Error& e) {
      e.ThrowAsJavaScriptException();
    } catch (const std::bad_alloc&) {
      make_error(env, code::kOom, "out of memory").ThrowAsJavaScriptException();
    } catch (const std::exception& e) {
      Napi::Error::New(env, std::string("fmha internal error: ") + e.what()).ThrowAsJavaScriptException();
    } catch (...) {
      Napi::Error::New(env, "fmha internal error").ThrowAsJavaScriptException();
    }
  } catch (...) {
  }
}

}  // namespace fmha
