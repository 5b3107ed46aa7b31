// The plain parameter block of a decode call (DESIGN §3, §5): a few new query
// tokens per sequence attending over a KV cache, contiguous or paged. Filled by
// the binding after validation; kernels know nothing of N-API.
#pragma once
#include <cstdint>
#include "core/attention_params.h"

namespace fmha {

enum class DecodeStrategy { Auto, Lean, Split, Single };

// A KV cache as the kernels address it: contiguous [B, capacity, Hkv, D] or
// paged [numPages, pageSize, Hkv, D] with a block table. One reader of the
// block table, as SequenceView is for cu_seqlens.
struct KvCacheView {
  DType dtype = DType::F32;
  void* k = nullptr;
  void* v = nullptr;
  int64_t k_stride[3] = {0, 0, 0};  // (sequence or page, row, head), in elements
  int64_t v_stride[3] = {0, 0, 0};
  const int32_t* block_table = nullptr;  // [sequences, max_pages], or null: contiguous
  int64_t max_pages = 0, page_size = 0;  // paged only

  bool paged() const { return block_table != nullptr; }
  // (sequence or page, row within it) of key j of cache sequence s.
  void locate(int64_t s, int64_t j, int64_t* outer, int64_t* row) const {
    if (!paged()) { *outer = s; *row = j; return; }
    *outer = block_table[s * max_pages + j / page_size];
    *row = j % page_size;
  }
  int64_t k_at(int64_t s, int64_t j, int64_t h) const {
    int64_t o, r; locate(s, j, &o, &r);
    return o * k_stride[0] + r * k_stride[1] + h * k_stride[2];
  }
  int64_t v_at(int64_t s, int64_t j, int64_t h) const {
    int64_t o, r; locate(s, j, &o, &r);
    return o * v_stride[0] + r * v_stride[1] + h * v_stride[2];
  }
  // How many of the n keys from j on lie in j's page (rows at a fixed stride).
  int64_t run(int64_t j, int64_t n) const {
    if (!paged()) return n;
    const int64_t left = page_size - j % page_size;
    return n < left ? n : left;
  }
};

struct DecodeParams {
  // q [B, Sq, Hq, D] (a rank-3 q is Sq = 1), out, lse and the score options
  // (causal, scale, window, softcap, alibi). attn.Sk is the longest cache
  // length; attn.k/v, seqlens_k, bias and cu_seqlens are unused.
  AttentionParams attn;
  KvCacheView cache;
  const int32_t* seq_ids = nullptr;        // [B]: batch row b reads cache sequence seq_ids[b]; null: b
  const int32_t* cache_seqlens = nullptr;  // [B]: valid keys of row b's sequence, new tokens included
  // Backend::Cuda only: a HOST copy of cache_seqlens, which is a device pointer
  // there like every pointer in these params. cuda_decode plans the partition on
  // the host from it (cuda/decode_cuda.h); it must equal the device array. Unused
  // by the CPU path, whose cache_seqlens is host memory already.
  const int32_t* host_cache_seqlens = nullptr;
  // Fused append: kNew/vNew [B, Sq, Hkv, D] written at cache_seqlens[b] − Sq before attending; null: none.
  const void* k_new = nullptr;
  const void* v_new = nullptr;
  int64_t k_new_stride[3] = {0, 0, 0};
  int64_t v_new_stride[3] = {0, 0, 0};
  DecodeStrategy strategy = DecodeStrategy::Auto;

  int64_t sequence(int64_t b) const { return seq_ids ? seq_ids[b] : b; }
};

}  // namespace fmha
