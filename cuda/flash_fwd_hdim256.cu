// Flash forward instantiations for head dim 256 (float16 and bfloat16).
#include "flash_fwd.h"
#include "flash_fwd_kernel.cuh"

namespace fmha {
namespace cudak {

Status launch_flash_fwd_hdim256(bool bf16, const KernelArgs& a, int64_t B, cudaStream_t stream) {
  return launch_flash_fwd_impl<256>(bf16, a, B, stream);
}

}  // namespace cudak
}  // namespace fmha
