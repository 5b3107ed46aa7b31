// CPU attention entry points. Both take validated params and return a Status
// (OutOfMemory before allocating when scratch would exceed ctx.max_scratch_bytes,
// Aborted when ctx's flag is raised between tiles).
#pragma once
#include "core/attention_params.h"
#include "core/decode_params.h"

namespace fmha {

// FlashAttention-style: Q row blocks × streamed K/V blocks, online softmax, O(S·D) memory.
Status fused_attention_cpu(const AttentionParams& p, const ExecContext& ctx);

// Baseline: materializes one (b, h) Sq × Sk score matrix per thread.
Status vanilla_attention_cpu(const AttentionParams& p, const ExecContext& ctx);

// A few new tokens per sequence over a KV cache (after the fused append, if
// any): stream-K / split / single partitions of the cache's key tiles.
Status decode_attention_cpu(const DecodeParams& p, const ExecContext& ctx);

}  // namespace fmha
