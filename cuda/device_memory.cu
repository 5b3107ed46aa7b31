// core/device.h for CUDA builds: per device one non-blocking stream, a
// caching allocator, pinned staging for small uploads, copies, fills, and
// waiting for the stream without spinning.
//
// Caching allocator. Sizes round up to a size class (multiples of 512 B up to
// 8 KiB, then 16 classes per power of two: at most 6.25% waste), and freed
// blocks wait in a free list per class, so a steady stream of calls with the
// same shapes never reaches cudaMalloc (which is slow and synchronizes the
// device). Blocks are reused in stream order (see core/device.h). When
// cudaMalloc fails, every cached block is returned to the driver and the
// allocation is retried once; a second failure is OutOfMemory with what the
// driver reports as free.
//
// Pinned staging. A pageable host → device copy may synchronize with the
// stream while the driver stages it; the option arrays of an enqueue-only
// call (alibiSlopes, seqlensK, cuSeqlens) would then wait for all earlier
// work. They are copied into a pinned chunk instead, which is reused only
// after the event recorded behind its copies has completed.
#include <cuda_runtime_api.h>

#include <cstring>
#include <map>
#include <mutex>
#include <string>
#include <vector>

#include "core/device.h"

namespace fmha {
namespace {

constexpr int kMaxDevices = 64;
constexpr size_t kStagingMax = size_t(1) << 20;       // uploads above this are direct copies
constexpr size_t kStagingChunk = size_t(64) << 10;    // the smallest pinned chunk
constexpr size_t kStagingMaxChunks = 256;             // then wait for the oldest instead of growing

std::string cuda_text(const char* what, cudaError_t err) {
  std::string text = what;
  text += ": ";
  const char* desc = cudaGetErrorString(err);
  text += desc ? desc : "unknown CUDA error";
  if (const char* name = cudaGetErrorName(err)) {
    text += " (";
    text += name;
    text += ")";
  }
  return text;
}

Status cuda_status(const char* what, cudaError_t err) {
  return {StatusCode::Cuda, cuda_text(what, err)};
}

size_t size_class(size_t bytes) {
  if (bytes <= 8192) return (bytes + 511) & ~size_t(511);
  size_t p = 8192;
  while (p < bytes) p <<= 1;            // the next power of two ≥ bytes
  const size_t step = p >> 5;           // 16 classes in (p/2, p]
  return (bytes + step - 1) / step * step;
}

struct StagingChunk {
  char* host = nullptr;
  size_t size = 0;
  cudaEvent_t done = nullptr;
  bool pending = false;
};

struct DeviceState {
  std::mutex mutex;
  cudaStream_t stream = nullptr;
  std::map<size_t, std::vector<void*>> free_blocks;  // size class → cached blocks
  int64_t in_use = 0, cached = 0, mallocs = 0, retries = 0;
  std::vector<StagingChunk> staging;
};

// Leaked on purpose: DeviceBuffers released by finalizers at process exit must
// still find their free list.
DeviceState& state(int device) {
  static DeviceState* states = new DeviceState[kMaxDevices];
  return states[device];
}

// Makes `device` current on this thread and creates its stream on first use.
Status enter(int device, DeviceState** out) {
  if (device < 0 || device >= kMaxDevices) return {StatusCode::Backend, "CUDA device " + std::to_string(device) + " does not exist"};
  cudaError_t err = cudaSetDevice(device);
  if (err != cudaSuccess) {
    cudaGetLastError();
    return cuda_status("cudaSetDevice", err);
  }
  DeviceState& s = state(device);
  {
    std::lock_guard<std::mutex> lock(s.mutex);
    if (!s.stream) {
      err = cudaStreamCreateWithFlags(&s.stream, cudaStreamNonBlocking);
      if (err != cudaSuccess) {
        s.stream = nullptr;
        cudaGetLastError();
        return cuda_status("cudaStreamCreateWithFlags", err);
      }
    }
  }
  *out = &s;
  return {};
}

// Returns every cached block to the driver; s.mutex held, device current.
void free_cached(DeviceState& s) {
  for (auto& entry : s.free_blocks)
    for (void* p : entry.second) {
      cudaFree(p);
      s.cached -= int64_t(entry.first);
    }
  s.free_blocks.clear();
  cudaGetLastError();
}

__global__ void fill_f32_kernel(float* dst, int64_t count, float value) {
  const int64_t step = int64_t(gridDim.x) * blockDim.x;
  for (int64_t i = int64_t(blockIdx.x) * blockDim.x + threadIdx.x; i < count; i += step) dst[i] = value;
}

// Waits for everything enqueued so far on s.stream, sleeping on a blocking-sync event.
Status wait_stream(DeviceState& s) {
  cudaEvent_t ev;
  cudaError_t err = cudaEventCreateWithFlags(&ev, cudaEventBlockingSync | cudaEventDisableTiming);
  if (err != cudaSuccess) {
    cudaGetLastError();
    return cuda_status("cudaEventCreateWithFlags", err);
  }
  err = cudaEventRecord(ev, s.stream);
  if (err == cudaSuccess) err = cudaEventSynchronize(ev);
  cudaEventDestroy(ev);
  if (err != cudaSuccess) {
    cudaGetLastError();
    return cuda_status("waiting for the CUDA stream", err);
  }
  return {};
}

}  // namespace

// ------------------------------------------------------------- allocator ----

Status DeviceBuffer::allocate(int device, size_t bytes, std::shared_ptr<DeviceBuffer>* out) {
  if (bytes == 0) {
    out->reset(new DeviceBuffer(device, nullptr, 0, 0));
    return {};
  }
  DeviceState* s;
  Status st = enter(device, &s);
  if (!st.ok()) return st;
  const size_t block = size_class(bytes);
  void* p = nullptr;
  {
    std::lock_guard<std::mutex> lock(s->mutex);
    auto it = s->free_blocks.find(block);
    if (it != s->free_blocks.end() && !it->second.empty()) {
      p = it->second.back();
      it->second.pop_back();
      s->cached -= int64_t(block);
    } else {
      ++s->mallocs;
      cudaError_t err = cudaMalloc(&p, block);
      if (err == cudaErrorMemoryAllocation && s->cached > 0) {
        cudaGetLastError();
        ++s->retries;
        free_cached(*s);
        err = cudaMalloc(&p, block);
      }
      if (err != cudaSuccess) {
        cudaGetLastError();
        if (err != cudaErrorMemoryAllocation) return cuda_status("cudaMalloc", err);
        size_t free_bytes = 0, total = 0;
        cudaMemGetInfo(&free_bytes, &total);
        cudaGetLastError();
        return {StatusCode::OutOfMemory,
                "allocating " + std::to_string(bytes) + " bytes on CUDA device " + std::to_string(device) +
                    " failed: out of memory (" + std::to_string(free_bytes) + " of " + std::to_string(total) +
                    " bytes free; fmha holds " + std::to_string(s->in_use) + " bytes in DeviceTensors and scratch)"};
      }
    }
    s->in_use += int64_t(block);
  }
  out->reset(new DeviceBuffer(device, p, bytes, block));
  return {};
}

DeviceBuffer::~DeviceBuffer() {
  if (!ptr_) return;
  DeviceState& s = state(device_);
  std::lock_guard<std::mutex> lock(s.mutex);
  s.free_blocks[block_].push_back(ptr_);
  s.in_use -= int64_t(block_);
  s.cached += int64_t(block_);
}

void* DeviceArena::alloc(size_t bytes) {
  DeviceBufferPtr b;
  Status st = DeviceBuffer::allocate(device_, bytes, &b);
  if (!st.ok()) {
    if (status_.ok()) status_ = st;
    return nullptr;
  }
  blocks_.push_back(b);
  return b->data();
}

DeviceMemoryStats device_memory_stats(int device) {
  DeviceMemoryStats r;
  if (device < 0 || device >= kMaxDevices) return r;
  DeviceState& s = state(device);
  std::lock_guard<std::mutex> lock(s.mutex);
  r.in_use_bytes = s.in_use;
  r.cached_bytes = s.cached;
  r.malloc_calls = s.mallocs;
  r.malloc_retries = s.retries;
  return r;
}

Status device_empty_cache(int device) {
  DeviceState* s;
  Status st = enter(device, &s);
  if (!st.ok()) return st;
  std::lock_guard<std::mutex> lock(s->mutex);
  free_cached(*s);
  return {};
}

// ----------------------------------------------------------------- copies ----

Status device_upload(int device, void* dst, const void* src, size_t bytes) {
  if (bytes == 0) return {};
  DeviceState* s;
  Status st = enter(device, &s);
  if (!st.ok()) return st;
  cudaError_t err = cudaMemcpyAsync(dst, src, bytes, cudaMemcpyHostToDevice, s->stream);
  if (err != cudaSuccess) {
    cudaGetLastError();
    return cuda_status("cudaMemcpyAsync (host to device)", err);
  }
  return {};
}

Status device_upload_small(int device, const std::vector<DeviceUpload>& uploads) {
  size_t total = 0;
  for (const DeviceUpload& u : uploads) total += (u.bytes + 15) & ~size_t(15);
  if (total == 0) return {};
  DeviceState* s;
  Status st = enter(device, &s);
  if (!st.ok()) return st;
  auto direct = [&]() -> Status {  // may run with s->mutex held: touches only the stream
    for (const DeviceUpload& u : uploads) {
      if (u.bytes == 0) continue;
      const cudaError_t err = cudaMemcpyAsync(u.dst, u.src, u.bytes, cudaMemcpyHostToDevice, s->stream);
      if (err != cudaSuccess) {
        cudaGetLastError();
        return cuda_status("cudaMemcpyAsync (host to device)", err);
      }
    }
    return {};
  };
  if (total > kStagingMax) return direct();

  std::lock_guard<std::mutex> lock(s->mutex);
  StagingChunk* chunk = nullptr;
  for (StagingChunk& c : s->staging) {
    if (c.pending) {
      const cudaError_t q = cudaEventQuery(c.done);
      if (q == cudaSuccess) c.pending = false;
      else if (q != cudaErrorNotReady) {
        cudaGetLastError();
        return cuda_status("cudaEventQuery", q);
      } else {
        cudaGetLastError();  // cudaErrorNotReady is not an error, but clear it anyway
      }
    }
    if (!c.pending && c.size >= total && !chunk) chunk = &c;
  }
  if (!chunk && s->staging.size() >= kStagingMaxChunks) {
    // Too many uploads in flight: wait for one chunk big enough (or the first) instead of growing.
    for (StagingChunk& c : s->staging)
      if (c.size >= total) { chunk = &c; break; }
    if (chunk) {
      const cudaError_t err = cudaEventSynchronize(chunk->done);
      if (err != cudaSuccess) {
        cudaGetLastError();
        return cuda_status("cudaEventSynchronize", err);
      }
      chunk->pending = false;
    }
  }
  if (!chunk) {
    StagingChunk c;
    c.size = total > kStagingChunk ? total : kStagingChunk;
    void* host = nullptr;
    if (cudaHostAlloc(&host, c.size, cudaHostAllocDefault) != cudaSuccess) {
      cudaGetLastError();
      return direct();  // no pinned memory to spare: pageable copies are still correct
    }
    c.host = static_cast<char*>(host);
    if (cudaEventCreateWithFlags(&c.done, cudaEventDisableTiming) != cudaSuccess) {
      cudaGetLastError();
      cudaFreeHost(host);
      return direct();
    }
    s->staging.push_back(c);
    chunk = &s->staging.back();
  }
  size_t off = 0;
  for (const DeviceUpload& u : uploads) {
    if (u.bytes == 0) continue;
    std::memcpy(chunk->host + off, u.src, u.bytes);
    const cudaError_t err = cudaMemcpyAsync(u.dst, chunk->host + off, u.bytes, cudaMemcpyHostToDevice, s->stream);
    if (err != cudaSuccess) {
      cudaGetLastError();
      cudaEventRecord(chunk->done, s->stream);  // copies already enqueued still read the chunk
      chunk->pending = true;
      return cuda_status("cudaMemcpyAsync (host to device)", err);
    }
    off += (u.bytes + 15) & ~size_t(15);
  }
  const cudaError_t err = cudaEventRecord(chunk->done, s->stream);
  if (err != cudaSuccess) {
    cudaGetLastError();
    // Without the event the chunk's reuse cannot be ordered: wait for the stream instead.
    cudaStreamSynchronize(s->stream);
    cudaGetLastError();
    return cuda_status("cudaEventRecord", err);
  }
  chunk->pending = true;
  return {};
}

Status device_download(int device, void* dst, const void* src, size_t bytes) {
  if (bytes == 0) return {};
  DeviceState* s;
  Status st = enter(device, &s);
  if (!st.ok()) return st;
  const cudaError_t err = cudaMemcpyAsync(dst, src, bytes, cudaMemcpyDeviceToHost, s->stream);
  if (err != cudaSuccess) {
    cudaGetLastError();
    return cuda_status("cudaMemcpyAsync (device to host)", err);
  }
  return wait_stream(*s);
}

Status device_download_2d(int device, void* dst, size_t dst_pitch, const void* src, size_t src_pitch, size_t row_bytes,
                          size_t rows) {
  if (rows == 0 || row_bytes == 0) return {};
  DeviceState* s;
  Status st = enter(device, &s);
  if (!st.ok()) return st;
  const cudaError_t err =
      cudaMemcpy2DAsync(dst, dst_pitch, src, src_pitch, row_bytes, rows, cudaMemcpyDeviceToHost, s->stream);
  if (err != cudaSuccess) {
    cudaGetLastError();
    return cuda_status("cudaMemcpy2DAsync (device to host)", err);
  }
  return wait_stream(*s);
}

Status device_memset(int device, void* dst, int value, size_t bytes) {
  if (bytes == 0) return {};
  DeviceState* s;
  Status st = enter(device, &s);
  if (!st.ok()) return st;
  const cudaError_t err = cudaMemsetAsync(dst, value, bytes, s->stream);
  if (err != cudaSuccess) {
    cudaGetLastError();
    return cuda_status("cudaMemsetAsync", err);
  }
  return {};
}

Status device_fill_f32(int device, float* dst, int64_t count, float value) {
  if (count <= 0) return {};
  DeviceState* s;
  Status st = enter(device, &s);
  if (!st.ok()) return st;
  const int threads = 256;
  const int64_t want = (count + threads - 1) / threads;
  const unsigned blocks = unsigned(want < 4096 ? want : 4096);
  fill_f32_kernel<<<blocks, threads, 0, s->stream>>>(dst, count, value);
  return device_check_launch(device, "fill kernel launch");
}

// ------------------------------------------------------------------ stream ----

Status device_synchronize(int device) {
  DeviceState* s;
  Status st = enter(device, &s);
  if (!st.ok()) return st;
  return wait_stream(*s);
}

Status device_stream(int device, void** stream) {
  DeviceState* s;
  Status st = enter(device, &s);
  *stream = st.ok() ? static_cast<void*>(s->stream) : nullptr;
  return st;
}

Status device_check_launch(int device, const char* what) {
  const cudaError_t err = cudaGetLastError();
  if (err != cudaSuccess) return cuda_status(what, err);
  return {};
}

Status device_time(int device, int iters, Status (*enqueue)(void* ctx), void* ctx, double* ms_per_iter) {
  *ms_per_iter = 0;
  DeviceState* s;
  Status st = enter(device, &s);
  if (!st.ok()) return st;
  st = enqueue(ctx);  // warm-up: first-launch costs, caches, allocator
  if (!st.ok()) return st;
  st = wait_stream(*s);
  if (!st.ok()) return st;
  cudaEvent_t start, stop;
  cudaError_t err = cudaEventCreate(&start);
  if (err != cudaSuccess) {
    cudaGetLastError();
    return cuda_status("cudaEventCreate", err);
  }
  err = cudaEventCreateWithFlags(&stop, cudaEventBlockingSync);
  if (err != cudaSuccess) {
    cudaGetLastError();
    cudaEventDestroy(start);
    return cuda_status("cudaEventCreate", err);
  }
  err = cudaEventRecord(start, s->stream);
  for (int i = 0; err == cudaSuccess && i < iters; ++i) {
    st = enqueue(ctx);
    if (!st.ok()) break;
  }
  if (err == cudaSuccess) err = cudaEventRecord(stop, s->stream);
  if (err == cudaSuccess) err = cudaEventSynchronize(stop);
  float ms = 0;
  if (err == cudaSuccess && st.ok()) err = cudaEventElapsedTime(&ms, start, stop);
  cudaEventDestroy(start);
  cudaEventDestroy(stop);
  if (!st.ok()) return st;
  if (err != cudaSuccess) {
    cudaGetLastError();
    return cuda_status("timing with CUDA events", err);
  }
  *ms_per_iter = iters > 0 ? double(ms) / iters : 0.0;
  return {};
}

}  // namespace fmha
