// The CUDA attention entry points: what native/dispatch and the device binding
// call. Kernels live behind this header; nothing here knows N-API.
#pragma once
#include <cstddef>
#include <cstdint>

#include "core/attention_params.h"
#include "dispatch.h"  // AttentionKind { Fused, Vanilla }

namespace fmha {

// Every pointer in p (q, k, v, out, lse, cu_seqlens_q/k, alibi_slopes, seqlens_k,
// bias) is a DEVICE pointer on the current device; `stream` is that device's
// cudaStream_t passed as void*. The calls only enqueue work (no sync, no
// cudaMalloc). p.Sq / p.Sk are the longest query / key lengths (for varlen the
// binding sets them to the real maxima). Varlen also needs p.host_cu_seqlens_q/k,
// host copies from which the grid is planned: one CTA per real query block.
//
// Fused handles padded and varlen (p.cu_seqlens_q != nullptr) layouts; Vanilla
// takes padded batches only. Vanilla's score buffer is requested through
// `scratch.alloc` once per call (at most 1 GiB, chunking (b, h) pairs and, for a
// single huge pair, query rows); the memory must stay valid until the work
// enqueued on `stream` has run (stream order makes reuse by the next call on
// the same stream safe). alloc returning null -> StatusCode::OutOfMemory.
// Fused allocates only varlen's work list (8 bytes per query block) the same way.
//
// Any CUDA failure -> Status{StatusCode::Cuda, "<what>: <cudaGetErrorString>"}.
struct CudaScratch {
  void* (*alloc)(void* self, size_t bytes);
  void* self;
};
Status cuda_attention(AttentionKind kind, const AttentionParams& p, void* stream, const CudaScratch& scratch);

// Remove / rebuild padding (issue 5): padded [B, S, H, D] <-> packed [T, H, D],
// both contiguous, HD = H·D elements per token; cu_seqlens is a device [B + 1]
// prefix sum with every length in [0, S]. Unpack zero-fills the pad rows.
Status cuda_pack_sequences(DType, const void* padded, void* packed, const int32_t* cu_seqlens, int64_t B, int64_t S,
                           int64_t HD, void* stream);
Status cuda_unpack_sequences(DType, const void* packed, void* padded, const int32_t* cu_seqlens, int64_t B, int64_t S,
                             int64_t HD, void* stream);

// Which kernel Fused runs for p (exposed for tests and benchmarks' labels).
enum class CudaFusedKernel { Flash, General };
// `smem_optin`: the device's cudaDevAttrMaxSharedMemoryPerBlockOptin in bytes.
CudaFusedKernel cuda_select_fused(const AttentionParams& p, int smem_optin);

}  // namespace fmha
