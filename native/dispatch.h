// Picks the backend and kernel for a validated call. The binding decides what is
// legal; this decides who computes it.
#pragma once
#include "core/attention_params.h"
#include "core/decode_params.h"

namespace fmha {

enum class AttentionKind { Fused, Vanilla };
enum class Backend { Cpu, Cuda };

Status run_attention(AttentionKind kind, Backend backend, const AttentionParams& p, const ExecContext& ctx);

Status run_decode(Backend backend, const DecodeParams& p, const ExecContext& ctx);

}  // namespace fmha
