// [sync] validateTensor, toFloat32, fromFloat32: the Tensor class's native half.
#include <napi.h>

#include "binding/errors.h"
#include "binding/exports.h"
#include "binding/tensor_args.h"
#include "core/dtype.h"

namespace fmha {
namespace {

std::string name_arg(const Napi::CallbackInfo& info, size_t i, const char* dflt) {
  return info[i].IsString() ? info[i].As<Napi::String>().Utf8Value() : dflt;
}

Napi::Value validate_tensor(const Napi::CallbackInfo& info) {
  return guard(info.Env(), [&]() -> Napi::Value {
    read_any_tensor(info[0], name_arg(info, 1, "tensor"));  // a DeviceTensor's view is validated here too
    return info.Env().Undefined();
  });
}

// Visits the elements of t in row-major order, passing their element offsets.
template <typename F>
void for_each_offset(const TensorArg& t, F&& f) {
  if (t.numel == 0) return;
  if (t.contiguous) {
    for (int64_t i = 0; i < t.numel; ++i) f(i);
    return;
  }
  const int rank = t.rank();
  std::vector<int64_t> idx(rank, 0);
  int64_t off = 0;
  for (int64_t n = 0; n < t.numel; ++n) {
    f(off);
    for (int d = rank - 1; d >= 0; --d) {
      if (++idx[d] < t.shape[d]) { off += t.strides[d]; break; }
      off -= (t.shape[d] - 1) * t.strides[d];
      idx[d] = 0;
    }
  }
}

Napi::Value to_float32(const Napi::CallbackInfo& info) {
  return guard(info.Env(), [&]() -> Napi::Value {
    const TensorArg t = read_tensor(info[0], "tensor");
    Napi::Float32Array out = Napi::Float32Array::New(info.Env(), size_t(t.numel));
    float* o = out.Data();
    int64_t n = 0;
    for_each_offset(t, [&](int64_t off) { o[n++] = load_as_f32(t.data, t.dtype, off); });
    return out;
  });
}

Napi::Value from_float32(const Napi::CallbackInfo& info) {
  return guard(info.Env(), [&]() -> Napi::Value {
    Napi::TypedArray a = expect_typed_array(info[0], napi_float32_array, "data");
    const std::string dt = info[1].IsString() ? info[1].As<Napi::String>().Utf8Value() : "";
    if (dt != "float16" && dt != "bfloat16")
      fail(code::kDtype, "dtype must be 'float16' or 'bfloat16', got " + describe(info[1]));
    const DType t = dt == "float16" ? DType::F16 : DType::BF16;
    const size_t n = a.ElementLength();
    const float* src = reinterpret_cast<const float*>(static_cast<char*>(a.ArrayBuffer().Data()) + a.ByteOffset());
    Napi::Uint16Array out = Napi::Uint16Array::New(info.Env(), n);
    for (size_t i = 0; i < n; ++i) store_from_f32(out.Data(), t, int64_t(i), src[i]);
    return out;
  });
}

}  // namespace

void register_tensor_functions(Napi::Env env, Napi::Object exports) {
  exports.Set("validateTensor", Napi::Function::New(env, validate_tensor, "validateTensor"));
  exports.Set("toFloat32", Napi::Function::New(env, to_float32, "toFloat32"));
  exports.Set("fromFloat32", Napi::Function::New(env, from_float32, "fromFloat32"));
}

}  // namespace fmha
