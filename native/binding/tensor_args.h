// Unpacks and validates a JS Tensor ({ dtype, shape, data, strides? }) into a
// plain view. The one tensor validator: attention arguments, Tensor's
// constructor and the conversions all go through read_tensor().
#pragma once
#include <napi.h>
#include <cstdint>
#include <string>
#include <vector>
#include "core/dtype.h"

namespace fmha {

struct TensorArg {
  std::string name;             // for messages: "q", "opts.bias", ...
  DType dtype = DType::F32;
  std::vector<int64_t> shape;
  std::vector<int64_t> strides; // in elements; filled for contiguous tensors too
  bool contiguous = true;
  void* data = nullptr;
  int64_t length = 0;           // elements in the backing typed array
  int64_t numel = 0;            // product of shape
  Napi::TypedArray array;       // the typed array (kept alive by async calls)

  int rank() const { return int(shape.size()); }
  const char* begin_byte() const { return static_cast<const char*>(data); }
  const char* end_byte() const { return begin_byte() + length * dtype_size(dtype); }
};

TensorArg read_tensor(const Napi::Value& v, const std::string& name);

// A tensor's dimensions for messages: [2, 7, 4, 64].
std::string shape_string(const std::vector<int64_t>& shape);

// A shape as a JS array of numbers, for results.
Napi::Array shape_array(Napi::Env env, const std::vector<int64_t>& shape);

// t must have `rank` dims (else ERR_FMHA_SHAPE naming `layout`, e.g. "[batch, seq, heads, headDim]").
void expect_rank(const TensorArg& t, int rank, const char* layout);

// The typed array must be an Int32Array / Float32Array (else ERR_FMHA_DTYPE).
Napi::TypedArray expect_typed_array(const Napi::Value& v, napi_typedarray_type type, const std::string& name);

}  // namespace fmha
