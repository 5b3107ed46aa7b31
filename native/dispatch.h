// Picks the backend and kernel for a validated call. The binding decides what is
// legal; this decides who computes it.
#pragma once
#include "core/attention_params.h"
#include "core/decode_params.h"

namespace fmha {

enum class AttentionKind { Fused, Vanilla };
enum class Backend { Cpu, Cuda };

// Backend::Cuda: every pointer in p is a device pointer on ctx.device; only enqueues.
Status run_attention(AttentionKind kind, Backend backend, const AttentionParams& p, const ExecContext& ctx);

// Padding removal (unpack = false: padded [B, S, H, D] → packed [T, H, D]) or
// rebuild (zero-filled pad rows) on a CUDA device, both contiguous with HD = H·D
// elements per token; cu_seqlens is a device [B + 1] array. Only enqueues.
Status run_sequence_copy_cuda(int device, bool unpack, DType dtype, const void* src, void* dst,
                              const int32_t* cu_seqlens, int64_t B, int64_t S, int64_t HD);

Status run_decode(Backend backend, const DecodeParams& p, const ExecContext& ctx);

}  // namespace fmha
