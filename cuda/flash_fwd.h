// Launchers of the flash forward kernel, one translation unit per head dim
// (flash_fwd_hdim*.cu) so the six instantiation pairs compile in parallel.
#pragma once
#include <cuda_runtime_api.h>

#include <cstdint>

#include "kernel_args.h"

namespace fmha {
namespace cudak {

// D == Dv == the head dim in the name; bf16 selects bfloat16, else float16.
Status launch_flash_fwd_hdim32(bool bf16, const KernelArgs& a, int64_t B, cudaStream_t stream);
Status launch_flash_fwd_hdim64(bool bf16, const KernelArgs& a, int64_t B, cudaStream_t stream);
Status launch_flash_fwd_hdim96(bool bf16, const KernelArgs& a, int64_t B, cudaStream_t stream);
Status launch_flash_fwd_hdim128(bool bf16, const KernelArgs& a, int64_t B, cudaStream_t stream);
Status launch_flash_fwd_hdim192(bool bf16, const KernelArgs& a, int64_t B, cudaStream_t stream);
Status launch_flash_fwd_hdim256(bool bf16, const KernelArgs& a, int64_t B, cudaStream_t stream);

// Dynamic shared memory of the D kernel (bytes), or 0 when D has no flash kernel.
int flash_fwd_smem_bytes(int64_t D);
// Query rows per CTA of the D kernel (D one of the flash head dims).
int flash_fwd_block_m(int64_t D);

}  // namespace cudak
}  // namespace fmha
