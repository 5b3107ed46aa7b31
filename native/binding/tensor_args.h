// Unpacks and validates a JS Tensor ({ dtype, shape, data, strides? }) or a
// DeviceTensor ({ dtype, shape, strides?, device, handle }) into a plain view.
// The one tensor validator: attention arguments, Tensor's constructor and the
// conversions all go through read_tensor() / read_any_tensor().
#pragma once
#include <napi.h>
#include <cstdint>
#include <string>
#include <vector>
#include "core/device.h"
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
  Napi::TypedArray array;       // the typed array (kept alive by async calls); empty for a DeviceTensor
  int64_t span = 0;             // elements from data the view reaches: the highest offset + 1 (0 when empty)

  // DeviceTensor (binding/device_tensor.h): data is a device pointer, length counts
  // the elements from data to the end of the device block.
  bool on_device = false;
  int device = -1;
  DeviceBufferPtr storage;      // the device block (kept alive by calls)
  Napi::Value object;           // the DeviceTensor object

  // What a call keeps alive while it runs: the typed array, or the DeviceTensor.
  Napi::Value keep() const { return on_device ? object : Napi::Value(array); }
  int rank() const { return int(shape.size()); }
  const char* begin_byte() const { return static_cast<const char*>(data); }
  const char* end_byte() const { return begin_byte() + length * dtype_size(dtype); }
};

// A host Tensor; a DeviceTensor → ERR_FMHA_BACKEND (this function computes on the host only).
TensorArg read_tensor(const Napi::Value& v, const std::string& name);

// A host Tensor or a live DeviceTensor (a disposed one → ERR_FMHA_ARGUMENT).
TensorArg read_any_tensor(const Napi::Value& v, const std::string& name);

// t's side for messages: "a host Tensor" / "a DeviceTensor on CUDA device 0".
std::string side_string(const TensorArg& t);

// t must be on q's side and device (DESIGN §2), else ERR_FMHA_ARGUMENT.
void expect_same_side(const TensorArg& t, const TensorArg& q);

// A tensor's dimensions for messages: [2, 7, 4, 64].
std::string shape_string(const std::vector<int64_t>& shape);

// A shape as a JS array of numbers, for results.
Napi::Array shape_array(Napi::Env env, const std::vector<int64_t>& shape);

// t must have `rank` dims (else ERR_FMHA_SHAPE naming `layout`, e.g. "[batch, seq, heads, headDim]").
void expect_rank(const TensorArg& t, int rank, const char* layout);

// The typed array must be an Int32Array / Float32Array (else ERR_FMHA_DTYPE).
Napi::TypedArray expect_typed_array(const Napi::Value& v, napi_typedarray_type type, const std::string& name);

}  // namespace fmha
