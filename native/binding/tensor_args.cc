#include "binding/tensor_args.h"

#include <cmath>
#include <cstring>

#include "binding/device_tensor.h"
#include "binding/errors.h"
#include "core/checked_math.h"

namespace fmha {
namespace {

constexpr int64_t kMaxDim = 0x7fffffff;  // kernels index rows with int

const char* typed_array_name(napi_typedarray_type t) {
  switch (t) {
    case napi_int8_array: return "Int8Array";
    case napi_uint8_array: return "Uint8Array";
    case napi_uint8_clamped_array: return "Uint8ClampedArray";
    case napi_int16_array: return "Int16Array";
    case napi_uint16_array: return "Uint16Array";
    case napi_int32_array: return "Int32Array";
    case napi_uint32_array: return "Uint32Array";
    case napi_float32_array: return "Float32Array";
    case napi_float64_array: return "Float64Array";
    case napi_bigint64_array: return "BigInt64Array";
    case napi_biguint64_array: return "BigUint64Array";
    default: return "a typed array";
  }
}

// Reads an array of integers in [lo, hi] (shape or strides).
std::vector<int64_t> read_int_list(const Napi::Value& v, const std::string& name, int64_t lo, int64_t hi,
                                   const char* err_code) {
  if (!v.IsArray()) fail(code::kShape, name + " must be an array of integers, got " + describe(v));
  Napi::Array a = v.As<Napi::Array>();
  std::vector<int64_t> out(a.Length());
  for (uint32_t i = 0; i < a.Length(); ++i) {
    Napi::Value e = a.Get(i);
    const double d = e.IsNumber() ? e.As<Napi::Number>().DoubleValue() : NAN;
    if (!(d >= double(lo) && d <= double(hi)) || std::floor(d) != d)
      fail(err_code, name + "[" + std::to_string(i) + "] must be an integer in [" + std::to_string(lo) + ", " +
                         std::to_string(hi) + "], got " + describe(e));
    out[i] = int64_t(d);
  }
  return out;
}

}  // namespace

std::string shape_string(const std::vector<int64_t>& shape) {
  std::string s = "[";
  for (size_t i = 0; i < shape.size(); ++i) s += (i ? ", " : "") + std::to_string(shape[i]);
  return s + "]";
}

Napi::Array shape_array(Napi::Env env, const std::vector<int64_t>& shape) {
  Napi::Array a = Napi::Array::New(env, shape.size());
  for (uint32_t i = 0; i < shape.size(); ++i) a.Set(i, Napi::Number::New(env, double(shape[i])));
  return a;
}

void expect_rank(const TensorArg& t, int rank, const char* layout) {
  if (t.rank() != rank)
    fail(code::kShape, t.name + " must have rank " + std::to_string(rank) + " " + layout + ", got shape " +
                           shape_string(t.shape));
}

Napi::TypedArray expect_typed_array(const Napi::Value& v, napi_typedarray_type type, const std::string& name) {
  if (!v.IsTypedArray() || v.As<Napi::TypedArray>().TypedArrayType() != type)
    fail(code::kDtype, name + " must be " + (type == napi_int32_array ? "an " : "a ") + typed_array_name(type) +
                           ", got " + describe(v));
  return v.As<Napi::TypedArray>();
}

namespace {

TensorArg read_tensor_impl(const Napi::Value& v, const std::string& name, bool allow_device) {
  if (!v.IsObject() || v.IsArray() || v.IsTypedArray())
    fail(code::kDtype, name + " must be a Tensor, got " + describe(v));
  Napi::Object o = v.As<Napi::Object>();
  // A DeviceTensor: its `handle` is an External fmha made (checked by type tag, so a look-alike is not one).
  const DeviceHandle* handle = o.Has("handle") ? device_handle(o.Get("handle")) : nullptr;
  if (handle && !allow_device)
    fail(code::kBackend, name + " is a DeviceTensor, but this function computes on host Tensors only (await " + name +
                             ".toHost() first)");
  if (!handle && (!o.Has("dtype") || !o.Has("shape") || !o.Has("data")))
    fail(code::kDtype, name + " must be a Tensor ({ dtype, shape, data }), got an object without " +
                           (!o.Has("dtype") ? "dtype" : !o.Has("shape") ? "shape" : "data"));
  TensorArg t;
  t.name = name;

  Napi::Value dtype = o.Get("dtype");
  const std::string ds = dtype.IsString() ? dtype.As<Napi::String>().Utf8Value() : "";
  if (ds == "float32") t.dtype = DType::F32;
  else if (ds == "float16") t.dtype = DType::F16;
  else if (ds == "bfloat16") t.dtype = DType::BF16;
  else fail(code::kDtype, name + ".dtype must be 'float32', 'float16' or 'bfloat16', got " + describe(dtype));

  t.shape = read_int_list(o.Get("shape"), name + ".shape", 0, kMaxDim, code::kShape);

  if (handle) {
    if (!handle->storage) fail(code::kArgument, name + " is a disposed DeviceTensor");
    t.on_device = true;
    t.device = handle->storage->device();
    t.storage = handle->storage;
    t.object = v;
    t.length = (int64_t(t.storage->bytes()) - handle->offset_bytes) / dtype_size(t.dtype);
    t.data = t.storage->data() ? static_cast<char*>(t.storage->data()) + handle->offset_bytes : nullptr;
  } else {
    const napi_typedarray_type want = t.dtype == DType::F32 ? napi_float32_array : napi_uint16_array;
    Napi::Value data = o.Get("data");
    if (!data.IsTypedArray() || data.As<Napi::TypedArray>().TypedArrayType() != want)
      fail(code::kDtype, name + ".data must be a " + typed_array_name(want) + " for dtype " + ds + ", got " +
                             describe(data));
    t.array = data.As<Napi::TypedArray>();
    t.length = int64_t(t.array.ElementLength());
    t.data = static_cast<char*>(t.array.ArrayBuffer().Data()) + t.array.ByteOffset();
  }

  t.numel = 1;
  for (int64_t d : t.shape)
    if (!checked_mul(t.numel, d, &t.numel))
      fail(code::kShape, name + ".shape " + shape_string(t.shape) + " has more elements than fit in 64 bits");

  // Contiguous strides, then the caller's if given.
  t.strides.assign(t.shape.size(), 1);
  for (int i = int(t.shape.size()) - 2; i >= 0; --i) t.strides[i] = t.strides[i + 1] * t.shape[i + 1];
  Napi::Value sv = o.Get("strides");
  if (!sv.IsUndefined() && !sv.IsNull()) {
    std::vector<int64_t> s = read_int_list(sv, name + ".strides", 0, int64_t(1) << 53, code::kArgument);
    if (s.size() != t.shape.size())
      fail(code::kShape, name + ".strides must have " + std::to_string(t.shape.size()) + " entries (one per dim), got " +
                             std::to_string(s.size()));
    if (!s.empty() && s.back() != 1 && t.shape.back() > 1)
      fail(code::kArgument, name + ".strides: the last stride must be 1, got " + std::to_string(s.back()));
    for (size_t i = 0; i < s.size(); ++i) t.contiguous &= (s[i] == t.strides[i] || t.shape[i] == 1);
    t.strides = s;
  }

  // A host tensor without strides must fill its data exactly; a view (or a
  // DeviceTensor, whose block may be a view's) must reach no element past it.
  if (t.contiguous && sv.IsUndefined() && !t.on_device) {
    if (t.length != t.numel)
      fail(code::kShape, name + ".data has " + std::to_string(t.length) + " elements but shape " +
                             shape_string(t.shape) + " needs exactly " + std::to_string(t.numel));
    t.span = t.numel;
  } else if (t.numel > 0) {
    int64_t last = 0;  // highest element offset the view reaches
    for (size_t i = 0; i < t.shape.size(); ++i) {
      int64_t span;
      if (!checked_mul(t.shape[i] - 1, t.strides[i], &span) || !checked_add(last, span, &last))
        fail(code::kShape, name + ": strides reach past 2^63 elements");
    }
    if (last >= t.length)
      fail(code::kShape, name + ": shape " + shape_string(t.shape) + " with strides " + shape_string(t.strides) +
                             " reaches element " + std::to_string(last) + " but " +
                             (t.on_device ? "the device block" : "data") + " has only " + std::to_string(t.length));
    t.span = last + 1;
  }
  return t;
}

}  // namespace

TensorArg read_tensor(const Napi::Value& v, const std::string& name) { return read_tensor_impl(v, name, false); }

TensorArg read_any_tensor(const Napi::Value& v, const std::string& name) { return read_tensor_impl(v, name, true); }

std::string side_string(const TensorArg& t) {
  return t.on_device ? "a DeviceTensor on CUDA device " + std::to_string(t.device) : std::string("a host Tensor");
}

void expect_same_side(const TensorArg& t, const TensorArg& q) {
  if (t.on_device != q.on_device || t.device != q.device)
    fail(code::kArgument, t.name + " is " + side_string(t) + " but " + q.name + " is " + side_string(q) +
                              ": every tensor of a call must be on one side and one device (see toDevice(), toHost())");
}

}  // namespace fmha
