// [async] toDeviceAsync, toHostAsync; [sync] deviceDispose, deviceView,
// cudaMemoryStats: DeviceTensor's native half.
//
// Copies run as AsyncJobs on fmha's dispatcher thread (binding/async_queue),
// like every other async call: the job enqueues the copy on the device's
// stream and then waits for it there (a blocking-sync event: the thread
// sleeps), so the event loop never waits, the promise settles through the
// same thread-safe function as a CPU call, and environment teardown
// (drain_async) waits for a copy into a JS buffer to finish before that
// buffer can go away.
#include "binding/device_tensor.h"

#include <cmath>
#include <cstring>
#include <vector>

#include "binding/async_queue.h"
#include "binding/errors.h"
#include "binding/exports.h"
#include "binding/tensor_args.h"
#include "core/cuda_info.h"

namespace fmha {
namespace {

// Marks Externals fmha made: a handle-shaped object from elsewhere is not a DeviceTensor.
constexpr napi_type_tag kDeviceHandleTag = {0x6a1f0c3d9b2e4f57ULL, 0x8c41d2e7a0b35f19ULL};

// The layout of a (possibly strided) tensor, copied out of TensorArg for a job
// that runs off the JS thread.
struct ViewLayout {
  DType dtype = DType::F32;
  std::vector<int64_t> shape, strides;
  int64_t numel = 0, span = 0;
  bool contiguous = true;

  explicit ViewLayout(const TensorArg& t)
      : dtype(t.dtype), shape(t.shape), strides(t.strides), numel(t.numel), span(t.span),
        contiguous(t.contiguous && t.span == t.numel) {}
  size_t bytes() const { return size_t(numel) * size_t(dtype_size(dtype)); }
};

// Copies the elements of a strided view at `src` into `dst` in row-major order.
// The last stride is 1 (or the last dim is 1), so rows of the last dim are memcpys.
void gather(const ViewLayout& l, const char* src, char* dst) {
  if (l.numel == 0) return;
  const int64_t es = dtype_size(l.dtype);
  const int rank = int(l.shape.size());
  if (rank == 0) {
    std::memcpy(dst, src, size_t(es));
    return;
  }
  const int64_t row = l.shape[rank - 1], row_bytes = row * es;
  const int64_t rows = l.numel / row;
  std::vector<int64_t> idx(size_t(rank), 0);
  int64_t off = 0;  // element offset of the current row
  for (int64_t r = 0; r < rows; ++r) {
    if (row == 1 || l.strides[rank - 1] == 1) {
      std::memcpy(dst + r * row_bytes, src + off * es, size_t(row_bytes));
    } else {
      for (int64_t j = 0; j < row; ++j) std::memcpy(dst + (r * row + j) * es, src + (off + j * l.strides[rank - 1]) * es, size_t(es));
    }
    for (int d = rank - 2; d >= 0; --d) {
      if (++idx[size_t(d)] < l.shape[size_t(d)]) {
        off += l.strides[size_t(d)];
        break;
      }
      off -= (l.shape[size_t(d)] - 1) * l.strides[size_t(d)];
      idx[size_t(d)] = 0;
    }
  }
}

int read_device_index(const Napi::Value& v, const std::string& what) {
  const double d = v.IsUndefined() ? 0 : v.IsNumber() ? v.As<Napi::Number>().DoubleValue() : NAN;
  if (!(d >= 0 && d < 1024) || std::floor(d) != d)
    fail(code::kArgument, what + " must be a CUDA device index (an integer ≥ 0), got " + describe(v));
  return int(d);
}

// toDevice: allocate, upload (gathering a strided view first), wait.
class ToDeviceJob final : public AsyncJob {
 public:
  ToDeviceJob(Napi::Env env, const TensorArg& t, int device)
      : layout_(t), src_(static_cast<const char*>(t.data)), device_(device),
        deferred_(Napi::Promise::Deferred::New(env)), keep_(Napi::Persistent(Napi::Value(t.array))) {}

  Napi::Promise promise() const { return deferred_.Promise(); }

  Status run(const int32_t* closing_flag) override {
    Status st = DeviceBuffer::allocate(device_, layout_.bytes(), &buf_);
    if (!st.ok() || layout_.numel == 0) return st;
    std::vector<char> gathered;
    const char* src = src_;
    if (!layout_.contiguous) {
      gathered.resize(layout_.bytes());
      gather(layout_, src_, gathered.data());
      src = gathered.data();
    }
    st = device_upload(device_, buf_->data(), src, layout_.bytes());
    if (st.ok()) st = device_synchronize(device_);  // the promise settles once the bytes are on the device
    return st;
  }

  void complete(Napi::Env env, const Status& st) override {
    Napi::HandleScope scope(env);
    if (st.ok()) {
      try {
        deferred_.Resolve(make_device_handle(env, std::move(buf_), 0, true));
      } catch (const Napi::Error& e) {
        deferred_.Reject(e.Value());
      }
    } else {
      deferred_.Reject(status_error(env, st).Value());
    }
    buf_.reset();
  }

  void abandon() override { keep_.SuppressDestruct(); }

 private:
  ViewLayout layout_;
  const char* src_;
  int device_;
  Napi::Promise::Deferred deferred_;
  Napi::Reference<Napi::Value> keep_;
  DeviceBufferPtr buf_;
};

// toHost: download (the whole span of a strided view, then gather), which waits for the stream.
class ToHostJob final : public AsyncJob {
 public:
  ToHostJob(Napi::Env env, const TensorArg& t, Napi::TypedArray dst)
      : layout_(t), src_(static_cast<const char*>(t.data)), storage_(t.storage),
        dst_(static_cast<char*>(dst.ArrayBuffer().Data()) + dst.ByteOffset()),
        deferred_(Napi::Promise::Deferred::New(env)), keep_(Napi::Persistent(Napi::Value(dst))) {}

  Napi::Promise promise() const { return deferred_.Promise(); }

  Status run(const int32_t* closing_flag) override {
    const int device = storage_->device();
    if (layout_.numel == 0) return {};
    if (layout_.contiguous) return device_download(device, dst_, src_, layout_.bytes());
    std::vector<char> host(size_t(layout_.span) * size_t(dtype_size(layout_.dtype)));
    Status st = device_download(device, host.data(), src_, host.size());
    if (st.ok()) gather(layout_, host.data(), dst_);
    return st;
  }

  void complete(Napi::Env env, const Status& st) override {
    Napi::HandleScope scope(env);
    storage_.reset();
    if (st.ok()) deferred_.Resolve(keep_.Value());
    else deferred_.Reject(status_error(env, st).Value());
  }

  void abandon() override { keep_.SuppressDestruct(); }

 private:
  ViewLayout layout_;
  const char* src_;
  DeviceBufferPtr storage_;
  char* dst_;
  Napi::Promise::Deferred deferred_;
  Napi::Reference<Napi::Value> keep_;
};

// toDeviceAsync(tensor, device) → Promise<handle>: a contiguous copy of tensor on `device`.
Napi::Value to_device_async(const Napi::CallbackInfo& info) {
  return guard(info.Env(), [&]() -> Napi::Value {
    const TensorArg t = read_tensor(info[0], "tensor");
    const int device = read_device_index(info[1], "opts.device");
    expect_cuda_device(device, "toDevice");
    auto job = std::make_unique<ToDeviceJob>(info.Env(), t, device);
    Napi::Promise promise = job->promise();
    submit_async(info.Env(), std::move(job));
    return promise;
  });
}

// toHostAsync(deviceTensor) → Promise<Float32Array | Uint16Array>: its elements, contiguous.
Napi::Value to_host_async(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  return guard(env, [&]() -> Napi::Value {
    const TensorArg t = read_any_tensor(info[0], "tensor");
    if (!t.on_device) fail(code::kArgument, "toHost: tensor is already a host Tensor");
    Napi::TypedArray dst;
    try {
      dst = t.dtype == DType::F32 ? Napi::TypedArray(Napi::Float32Array::New(env, size_t(t.numel)))
                                  : Napi::TypedArray(Napi::Uint16Array::New(env, size_t(t.numel)));
    } catch (const Napi::Error& e) {
      fail(code::kOom, "toHost: allocating " + std::to_string(t.numel) + " elements failed: " + e.Message());
    }
    auto job = std::make_unique<ToHostJob>(env, t, dst);
    Napi::Promise promise = job->promise();
    submit_async(env, std::move(job));
    return promise;
  });
}

// deviceDispose(handle): drops the handle's reference to its block; idempotent.
Napi::Value device_dispose(const Napi::CallbackInfo& info) {
  return guard(info.Env(), [&]() -> Napi::Value {
    DeviceHandle* h = device_handle(info[0]);
    if (!h) fail(code::kArgument, "deviceDispose expects a DeviceTensor handle, got " + describe(info[0]));
    if (h->external_bytes) Napi::MemoryManagement::AdjustExternalMemory(info.Env(), -h->external_bytes);
    h->external_bytes = 0;
    h->storage.reset();
    return info.Env().Undefined();
  });
}

// deviceView(deviceTensor, offset) → a handle on the same block starting `offset` elements into it.
Napi::Value device_view(const Napi::CallbackInfo& info) {
  return guard(info.Env(), [&]() -> Napi::Value {
    const TensorArg t = read_any_tensor(info[0], "tensor");
    if (!t.on_device) fail(code::kArgument, "view: tensor must be a DeviceTensor");
    const double off = info[1].IsUndefined() ? 0 : info[1].IsNumber() ? info[1].As<Napi::Number>().DoubleValue() : NAN;
    if (!(off >= 0 && off <= double(t.length)) || std::floor(off) != off)
      fail(code::kArgument, "view: offset must be an integer in [0, " + std::to_string(t.length) +
                                "] (elements after the tensor's first), got " + describe(info[1]));
    const DeviceHandle* base = device_handle(t.object.As<Napi::Object>().Get("handle"));
    return make_device_handle(info.Env(), t.storage, base->offset_bytes + int64_t(off) * dtype_size(t.dtype), false);
  });
}

// cudaMemoryStats(device) → { inUseBytes, cachedBytes, mallocCalls, mallocRetries }.
Napi::Value cuda_memory_stats(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  return guard(env, [&]() -> Napi::Value {
    const int device = read_device_index(info[0], "device");
    const DeviceMemoryStats s = device_memory_stats(device);
    Napi::Object r = Napi::Object::New(env);
    r.Set("inUseBytes", double(s.in_use_bytes));
    r.Set("cachedBytes", double(s.cached_bytes));
    r.Set("mallocCalls", double(s.malloc_calls));
    r.Set("mallocRetries", double(s.malloc_retries));
    return r;
  });
}

}  // namespace

Napi::Value make_device_handle(Napi::Env env, DeviceBufferPtr storage, int64_t offset_bytes, bool owner) {
  auto* h = new DeviceHandle{std::move(storage), offset_bytes, 0};
  Napi::External<DeviceHandle> ext = Napi::External<DeviceHandle>::New(env, h, [](Napi::Env e, DeviceHandle* d) {
    if (d->external_bytes) Napi::MemoryManagement::AdjustExternalMemory(e, -d->external_bytes);
    delete d;
  });
  ext.TypeTag(&kDeviceHandleTag);
  if (owner && h->storage && h->storage->bytes() > 0) {
    h->external_bytes = int64_t(h->storage->bytes());
    Napi::MemoryManagement::AdjustExternalMemory(env, h->external_bytes);
  }
  return ext;
}

DeviceHandle* device_handle(const Napi::Value& v) {
  if (v.IsEmpty() || v.Type() != napi_external) return nullptr;
  Napi::External<DeviceHandle> ext = v.As<Napi::External<DeviceHandle>>();
  if (!ext.CheckTypeTag(&kDeviceHandleTag)) return nullptr;
  return ext.Data();
}

void expect_cuda_device(int64_t device, const std::string& what) {
  const CudaInfo& cuda = query_cuda();
  if (!cuda.available) fail(code::kBackend, what + ": CUDA is not available: " + cuda.reason);
  for (const CudaDevice& d : cuda.devices)
    if (d.index == device) return;
  fail(code::kArgument, what + ": there is no CUDA device " + std::to_string(device) + " (this machine has " +
                            std::to_string(cuda.devices.size()) + ")");
}

void register_device(Napi::Env env, Napi::Object exports) {
  exports.Set("toDeviceAsync", Napi::Function::New(env, to_device_async, "toDeviceAsync"));
  exports.Set("toHostAsync", Napi::Function::New(env, to_host_async, "toHostAsync"));
  exports.Set("deviceDispose", Napi::Function::New(env, device_dispose, "deviceDispose"));
  exports.Set("deviceView", Napi::Function::New(env, device_view, "deviceView"));
  exports.Set("cudaMemoryStats", Napi::Function::New(env, cuda_memory_stats, "cudaMemoryStats"));
}

}  // namespace fmha
