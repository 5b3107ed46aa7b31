// K and V of one (batch, kv head), packed block by block on first use into
// float32: Kᵀ blocks (D × kKeyBlock) and V blocks (kKeyBlock × Dv), each
// contiguous. Every query block of a GQA group then reads unit-stride,
// already-converted data, so packing and 16-bit conversion cost O(Sk·D) per
// head and thread instead of per query block.
#pragma once
#include <cstdint>
#include "core/attention_params.h"
#include "cpu/microkernels.h"

namespace fmha {

class KvBlockCache {
 public:
  static constexpr int kKeyBlock = 128;

  // Floats of buffer the cache needs for these parameters.
  static int64_t floats(const AttentionParams& p);

  KvBlockCache(const AttentionParams& p, const CpuMicrokernels& mk, float* buf);

  // Makes (b, hk) current; its blocks packed so far stay valid.
  void select(int64_t b, int64_t hk);

  // Key block j (keys j·kKeyBlock onwards), packed on first use:
  // Kᵀ with leading dimension kKeyBlock, V with leading dimension Dv.
  const float* kt(int64_t j) { ensure(j); return kt_ + j * kKeyBlock * p_.D; }
  const float* v(int64_t j) { ensure(j); return v_ + j * kKeyBlock * p_.Dv; }

 private:
  void ensure(int64_t j) { if (!packed_[j]) pack(j); }
  void pack(int64_t j);

  const AttentionParams& p_;
  const CpuMicrokernels& mk_;
  int64_t blocks_, b_ = -1, hk_ = -1;
  float *kt_, *v_, *row_tmp_;
  uint8_t* packed_;
};

}  // namespace fmha
