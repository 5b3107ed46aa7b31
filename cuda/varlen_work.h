// The varlen grid, planned on the host from cu_seqlens (ByteTransformer /
// FlashAttention-3 style): one entry per real query block of every sequence,
// so no CTA is launched for a pad, ordered costliest first (visible keys of the
// block), so that the long sequences of a ragged batch start before the short
// ones fill the tail.
#pragma once
#include <cuda_runtime_api.h>

#include "attention_cuda.h"
#include "kernel_args.h"

namespace fmha {
namespace cudak {

// Sets a->work (device memory from `scratch`, uploaded on `stream`) and
// a->work_items for p's varlen batch in blocks of block_m query rows. Needs
// p.host_cu_seqlens_q/k.
Status plan_varlen_work(const AttentionParams& p, int block_m, const CudaScratch& scratch, cudaStream_t stream,
                        KernelArgs* a);

}  // namespace cudak
}  // namespace fmha
