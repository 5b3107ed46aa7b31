// The CUDA decode entry point (DESIGN §3, §5; issue 6): a few new query tokens
// per sequence over a KV cache, contiguous or paged, with the stream-K
// (LeanAttention) partition of core/decode_partition. Kernels in
// decode_attention.cu; nothing here knows N-API.
#pragma once
#include "attention_cuda.h"  // CudaScratch
#include "core/decode_params.h"

namespace fmha {

// Every pointer in p — q, out, lse, cache.k/v, cache.block_table, cache_seqlens,
// seq_ids, k_new/v_new, attn.alibi_slopes — is a DEVICE pointer on the current
// device, except p.host_cache_seqlens, which must be a host copy of
// cache_seqlens (the partition is planned on the host from it). `stream` is the
// device's cudaStream_t as void*; the call only enqueues (the plan goes up
// through pinned staging when `stream` is the device's own stream, see
// core/device.h, else through a pageable cudaMemcpyAsync on `stream`).
//
// `num_sms`: the device's multiprocessor count. 'lean' runs a persistent grid of
// num_sms × (co-resident CTAs per SM, at most 2) CTAs, fewer when there are
// under 2 key tiles per CTA; 'split' and 'single' run one CTA per piece. 'auto'
// resolves by the CPU's rule with workers = num_sms: 'single' when every unit is
// at most 1/8 of a worker's share of the tiles (or no row sees a key), else 'lean'.
//
// Scratch (through scratch.alloc; must stay valid until the enqueued work has
// run, which stream order gives the caching allocator): the plan (16 bytes a
// piece, 8 a unit, 4 a task) and, for units cut into several pieces, one fp32
// partial state of 16 × (Dv + 2) floats per piece. alloc returning null ->
// StatusCode::OutOfMemory. A fused append (k_new/v_new) is enqueued after every
// host-side check and allocation, so a failing call never writes the cache.
//
// Results depend on the plan, which depends on the device (SM count, shared
// memory per SM pick the tile size and worker count): bitwise reproducible on
// one device for one strategy, not across devices.
Status cuda_decode(const DecodeParams& p, int num_sms, void* stream, const CudaScratch& scratch);

}  // namespace fmha
