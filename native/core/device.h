// Device memory and the device's stream, behind an interface with no CUDA types
// (DESIGN §2, §6). CUDA builds implement it in cuda/device_memory.cu; builds
// without CUDA link native/core/device_stub.cc, whose functions report "built
// without CUDA" (the binding never reaches them there: it checks
// query_cuda().available first).
//
// Memory model. Each device has one stream (non-blocking), and every piece of
// fmha's device work — copies, fills, kernels — is enqueued on it. Device
// blocks come from a caching allocator (size classes, free lists per device),
// and a block goes back to its free list as soon as its last owner lets go,
// even while enqueued work still uses it: the next owner's work is enqueued
// after it on the same stream, so it cannot overtake (PyTorch's caching
// allocator relies on the same ordering). A cudaMalloc failure frees every
// cached block (cudaFree synchronizes the device) and retries once; a second
// failure is StatusCode::OutOfMemory.
#pragma once
#include <cstddef>
#include <cstdint>
#include <memory>
#include <vector>
#include "core/attention_params.h"

namespace fmha {

// A block of device memory. Destroying it returns the block to its device's
// cache (never to the driver), from any thread.
class DeviceBuffer {
 public:
  // bytes == 0 gives a buffer whose data() is null.
  static Status allocate(int device, size_t bytes, std::shared_ptr<DeviceBuffer>* out);
  ~DeviceBuffer();
  DeviceBuffer(const DeviceBuffer&) = delete;
  DeviceBuffer& operator=(const DeviceBuffer&) = delete;

  void* data() const { return ptr_; }
  size_t bytes() const { return bytes_; }  // what was asked for (the block may be larger)
  int device() const { return device_; }

 private:
  DeviceBuffer(int device, void* ptr, size_t bytes, size_t block) : device_(device), ptr_(ptr), bytes_(bytes), block_(block) {}
  int device_;
  void* ptr_;
  size_t bytes_, block_;
};
using DeviceBufferPtr = std::shared_ptr<DeviceBuffer>;

// Keeps the blocks a call allocates (kernel scratch, uploaded copies of host
// arrays) until the call has enqueued its work, then lets them go together.
class DeviceArena {
 public:
  explicit DeviceArena(int device) : device_(device) {}
  // A block of `bytes` (null for 0 bytes, or on failure: see status()).
  void* alloc(size_t bytes);
  // For C callbacks (fmha::CudaScratch in cuda/attention_cuda.h): self is a DeviceArena*.
  static void* alloc_thunk(void* self, size_t bytes) { return static_cast<DeviceArena*>(self)->alloc(bytes); }
  // The first allocation failure, or Ok.
  const Status& status() const { return status_; }
  int device() const { return device_; }

 private:
  int device_;
  std::vector<DeviceBufferPtr> blocks_;
  Status status_;
};

// One host → device copy of a small array (an option such as alibiSlopes or cuSeqlens).
struct DeviceUpload {
  void* dst;         // device
  const void* src;   // host; may be freed as soon as device_upload_small returns
  size_t bytes;
};

// Enqueues host → device copies on the device's stream. Small uploads go
// through pinned staging memory (the host bytes are copied there at once and
// the DMA overlaps earlier work, so an enqueue-only call never waits for the
// stream); large ones are direct (pageable) copies.
Status device_upload_small(int device, const std::vector<DeviceUpload>& uploads);

// Enqueues a copy of `bytes` from host memory to device memory. The host
// memory must stay valid and unchanged until the call returns (the driver
// stages pageable memory before returning).
Status device_upload(int device, void* dst, const void* src, size_t bytes);

// Copies `bytes` from device memory to host memory in stream order and
// returns once the bytes are on the host (pageable destinations are copied
// synchronously by the driver; the function also waits for the stream).
Status device_download(int device, void* dst, const void* src, size_t bytes);

// A strided download: `rows` rows of `row_bytes` bytes, `src_pitch` and `dst_pitch` apart.
Status device_download_2d(int device, void* dst, size_t dst_pitch, const void* src, size_t src_pitch, size_t row_bytes,
                          size_t rows);

// Enqueues a byte fill (cudaMemsetAsync) / a float32 fill of `count` floats.
Status device_memset(int device, void* dst, int value, size_t bytes);
Status device_fill_f32(int device, float* dst, int64_t count, float value);

// Blocks the calling thread until the device's stream has run everything
// enqueued before this call; the thread sleeps (a blocking-sync event), it does
// not spin. Returns the first error of the work it waited for
// (StatusCode::Cuda, with CUDA's message).
Status device_synchronize(int device);

// The device's stream (a cudaStream_t) as void*, after making `device` the
// calling thread's current device. Creates the stream on first use.
Status device_stream(int device, void** stream);

// Makes `device` the calling thread's current device and reports an error a
// launch left behind (cudaGetLastError), as StatusCode::Cuda.
Status device_check_launch(int device, const char* what);

// Process-wide device memory counters, for tests and benchmarks.
struct DeviceMemoryStats {
  int64_t in_use_bytes = 0;     // blocks held by DeviceBuffers
  int64_t cached_bytes = 0;     // blocks in the free lists
  int64_t malloc_calls = 0;     // cudaMalloc calls so far (steady state: constant)
  int64_t malloc_retries = 0;   // times the cache was emptied to retry a failed cudaMalloc
};
DeviceMemoryStats device_memory_stats(int device);

// Returns every cached (unused) block of `device` to the driver.
Status device_empty_cache(int device);

// Times `iters` runs of `enqueue` between two CUDA events on the device's
// stream (after one untimed warm-up run) and returns milliseconds per run.
// `enqueue` must only enqueue work on the stream.
Status device_time(int device, int iters, Status (*enqueue)(void* ctx), void* ctx, double* ms_per_iter);

}  // namespace fmha
