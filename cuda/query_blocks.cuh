// Which query block of which sequence a fused-kernel CTA computes, and the
// grids that say so, shared by the flash and the general kernel.
//   Padded: m_blocks × Hq × B (in slices of 65535 sequences through
//   KernelArgs::b_offset), the last query block of a sequence first.
//   Varlen: one CTA per (entry of KernelArgs::work, head): the list is planned
//   on the host from cu_seqlens (varlen_work.h), costliest first, so the grid
//   has no CTA for a block past its sequence's end.
#pragma once
#include <cuda_runtime.h>

#include <cstdint>

#include "cuda_check.h"
#include "kernel_args.h"

namespace fmha {
namespace cudak {

struct QueryBlock {
  int b, h, m_block;  // sequence, query head, query block (rows m_block·block_m onwards)
};

__device__ __forceinline__ QueryBlock cta_query_block(const KernelArgs& a) {
  if (a.work) return {a.work[2 * blockIdx.x], int(blockIdx.y), a.work[2 * blockIdx.x + 1]};
  return {a.b_offset + int(blockIdx.z), int(blockIdx.y), int(gridDim.x - 1 - blockIdx.x)};
}

// Enqueues `kernel` over the query blocks of B sequences (block_m query rows each).
inline Status launch_query_blocks(void (*kernel)(KernelArgs), const KernelArgs& args, int64_t B, int block_m,
                                  int threads, int smem, cudaStream_t stream, const char* what) {
  if (args.work) {
    if (args.work_items == 0) return {};
    kernel<<<dim3(unsigned(args.work_items), unsigned(args.Hq)), threads, smem, stream>>>(args);
    FMHA_CUDA_LAUNCHED(what);
    return {};
  }
  const unsigned m_blocks = unsigned((int64_t(args.Sq) + block_m - 1) / block_m);
  for (int64_t b0 = 0; b0 < B; b0 += 65535) {
    KernelArgs a = args;
    a.b_offset = int(b0);
    const dim3 grid(m_blocks, unsigned(a.Hq), unsigned(B - b0 < 65535 ? B - b0 : 65535));
    kernel<<<grid, threads, smem, stream>>>(a);
    FMHA_CUDA_LAUNCHED(what);
  }
  return {};
}

}  // namespace cudak
}  // namespace fmha
