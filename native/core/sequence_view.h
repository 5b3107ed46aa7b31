// Where sequence b's rows live, for padded [B, S, H, D] and packed varlen
// [T, H, D] batches alike (ByteTransformer's padding-free layout, FlashAttention's
// cu_seqlens). The one place kernels read cu_seqlens: the score policy (per
// sequence lengths and the bottom-right alignment), the K/V block cache (key
// rows), unit enumeration and output/lse addressing all go through it, so one
// mainloop serves both layouts.
#pragma once
#include <cstdint>
#include "core/attention_params.h"

namespace fmha {

struct SequenceView {
  int64_t b = 0;
  int64_t sq = 0, sk = 0;          // this sequence's query and key counts
  int64_t q_row0 = 0, k_row0 = 0;  // its first query / key row in the S (or T) dimension

  // Element offsets of query row i / key row j of head h (rows within this sequence).
  int64_t q_at(const AttentionParams& p, int64_t i, int64_t h) const {
    return b * p.q_stride[0] + (q_row0 + i) * p.q_stride[1] + h * p.q_stride[2];
  }
  int64_t k_at(const AttentionParams& p, int64_t j, int64_t h) const {
    return b * p.k_stride[0] + (k_row0 + j) * p.k_stride[1] + h * p.k_stride[2];
  }
  int64_t v_at(const AttentionParams& p, int64_t j, int64_t h) const {
    return b * p.v_stride[0] + (k_row0 + j) * p.v_stride[1] + h * p.v_stride[2];
  }
  int64_t out_at(const AttentionParams& p, int64_t i, int64_t h) const {
    return b * p.o_stride[0] + (q_row0 + i) * p.o_stride[1] + h * p.o_stride[2];
  }
  int64_t lse_at(const AttentionParams& p, int64_t i, int64_t h) const {
    return b * p.lse_stride[0] + h * p.lse_stride[1] + q_row0 + i;
  }
};

inline SequenceView sequence_view(const AttentionParams& p, int64_t b) {
  if (!p.cu_seqlens_q) return {b, p.Sq, p.Sk, 0, 0};
  const int64_t q0 = p.cu_seqlens_q[b], k0 = p.cu_seqlens_k[b];
  return {b, p.cu_seqlens_q[b + 1] - q0, p.cu_seqlens_k[b + 1] - k0, q0, k0};
}

}  // namespace fmha
