// The general fused kernel (general_attention.cu): float32, float16 and
// bfloat16, any D, Dv in 1..256, any strides; padded and varlen.
#pragma once
#include <cuda_runtime_api.h>

#include <cstdint>

#include "kernel_args.h"

namespace fmha {
namespace cudak {

Status launch_general_attention(DType dtype, const KernelArgs& a, int64_t B, cudaStream_t stream);
int general_attention_smem_bytes(int64_t D, int64_t Dv);  // dynamic shared memory per CTA
int general_attention_block_m();                          // query rows per CTA

}  // namespace cudak
}  // namespace fmha
