#include "dispatch.h"

#include "cpu/attention_cpu.h"

namespace fmha {

Status run_attention(AttentionKind kind, Backend backend, const AttentionParams& p, const ExecContext& ctx) {
  if (backend == Backend::Cuda)  // the binding rejects 'cuda' until the CUDA kernels land
    return {StatusCode::Backend, "CUDA attention kernels are not in this build"};
  return kind == AttentionKind::Fused ? fused_attention_cpu(p, ctx) : vanilla_attention_cpu(p, ctx);
}

Status run_decode(Backend backend, const DecodeParams& p, const ExecContext& ctx) {
  if (backend == Backend::Cuda) return {StatusCode::Backend, "CUDA decode kernels are not in this build"};
  return decode_attention_cpu(p, ctx);
}

}  // namespace fmha
