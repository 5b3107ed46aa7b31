// CUDA device discovery, answered without throwing whether or not this build has CUDA.
#pragma once
#include <cstddef>
#include <string>
#include <vector>

namespace fmha {

struct CudaDevice {
  int index = 0;
  std::string name;
  int major = 0, minor = 0;        // compute capability
  std::size_t total_memory = 0;    // bytes
  int multiprocessors = 0;
};

struct CudaInfo {
  bool available = false;
  std::string reason;              // why not available: "built without CUDA", "no CUDA device", driver errors
  std::vector<CudaDevice> devices;
};

// Implemented by cuda/device_info.cu in CUDA builds (FMHA_HAVE_CUDA defined),
// else by native/core/cuda_info_stub.cc. Never throws; cached after the first call.
CudaInfo query_cuda();

}  // namespace fmha
