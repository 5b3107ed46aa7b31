// The vanilla CUDA baseline (vanilla_attention.cu): padded batches, Sk > 0.
#pragma once
#include <cuda_runtime_api.h>

#include <cstdint>

#include "attention_cuda.h"
#include "kernel_args.h"

namespace fmha {
namespace cudak {

Status launch_vanilla_attention(DType dtype, const KernelArgs& a, int64_t B, cudaStream_t stream,
                                const CudaScratch& scratch);

}  // namespace cudak
}  // namespace fmha
