// query_cuda() for builds without CUDA (FMHA_HAVE_CUDA undefined). CUDA builds
// get it from cuda/device_info.cu instead; this file then compiles to nothing.
#include "core/cuda_info.h"

#ifndef FMHA_HAVE_CUDA

namespace fmha {

CudaInfo query_cuda() {
  CudaInfo info;
  info.available = false;
  info.reason = "built without CUDA";
  return info;
}

}  // namespace fmha

#endif  // FMHA_HAVE_CUDA
