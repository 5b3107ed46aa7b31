// Host → device copy of a plan the host built (decode's partition, varlen's
// work list): through core/device.h's pinned staging when `stream` is the
// device's own stream (an enqueue-only call never waits), else a plain
// cudaMemcpyAsync on `stream` (the driver stages pageable memory). Either way
// `src` may be freed when this returns.
#pragma once
#include <cuda_runtime_api.h>

#include <cstddef>

#include "core/device.h"
#include "cuda_check.h"

namespace fmha {
namespace cudak {

inline Status upload_plan(void* dst, const void* src, size_t bytes, cudaStream_t stream) {
  int device = 0;
  FMHA_CUDA_TRY(cudaGetDevice(&device), "plan upload: cudaGetDevice");
  void* own = nullptr;
  if (device_stream(device, &own).ok() && own == static_cast<void*>(stream))
    return device_upload_small(device, {DeviceUpload{dst, src, bytes}});
  FMHA_CUDA_TRY(cudaMemcpyAsync(dst, src, bytes, cudaMemcpyHostToDevice, stream), "plan upload: cudaMemcpyAsync");
  return {};
}

}  // namespace cudak
}  // namespace fmha
