// K and V of one (sequence, kv head), packed block by block on first use into
// float32: Kᵀ blocks (D × kKeyBlock, times the softmax scale, so that query
// rows need no scaled copy) and V blocks (kKeyBlock × Dv), each contiguous.
// Every query block of a GQA group then reads unit-stride, already-converted
// data, so packing and 16-bit conversion cost O(Sk·D) per head and thread
// instead of per query block. float32 V needs neither and may be read in place
// instead (see select).
// With Bf16DotKernels the blocks hold bf16 pairs instead (Kᵀ pairs along D,
// unscaled; V pairs along keys), in the same 4-byte units and never more of
// them than float32 needs.
#pragma once
#include <cstdint>
#include "core/attention_params.h"
#include "core/sequence_view.h"
#include "cpu/bf16_dot_kernels.h"
#include "cpu/microkernels.h"

namespace fmha {

class KvBlockCache {
 public:
  static constexpr int kKeyBlock = 128;

  // Floats of buffer the cache needs for these parameters (p.Sk: the longest sequence's keys).
  static int64_t floats(const AttentionParams& p);

  // pairs: pack bf16 pairs for these kernels (p.dtype must be bfloat16); null: float32.
  KvBlockCache(const AttentionParams& p, const CpuMicrokernels& mk, const Bf16DotKernels* pairs, float* buf);

  // Makes (seq, hk) current; its blocks packed so far stay valid. `v_reused`:
  // more than one query block will read these V blocks. float32 V read once is
  // read in place (a copy would cost as much as the read); read again, it is
  // packed, because rows a whole [T, H, D] row apart alias in the cache (all
  // of them in the same sets when H·D·4 is a multiple of 4 KiB) and are
  // evicted between query blocks.
  void select(const SequenceView& seq, int64_t hk, bool v_reused);

  // Key block j (the sequence's keys j·kKeyBlock onwards), packed on first use: Kᵀ with
  // leading dimension kKeyBlock, V with leading dimension v_ld() (in elements,
  // or in pairs for the bf16 layout).
  const float* kt(int64_t j) { ensure(j); return kt_ + j * kt_block_; }
  const float* v(int64_t j) {
    if (v_in_place()) return static_cast<const float*>(p_.v) + seq_.v_at(p_, j * kKeyBlock, hk_);
    ensure(j);
    return v_ + j * v_block_;
  }
  int64_t v_ld() const { return v_in_place() ? p_.v_stride[1] : p_.Dv; }

  // Asks for the K and V rows block j will read, unless it is packed already (or
  // past the sequence's keys): packing them on first use otherwise waits on
  // memory, row by row.
  void prefetch(int64_t j) const;

 private:
  bool v_in_place() const { return v_in_place_; }
  void ensure(int64_t j) { if (!packed_[j]) pack(j); }
  void pack(int64_t j);

  const AttentionParams& p_;
  const CpuMicrokernels& mk_;
  const Bf16DotKernels* pairs_;
  int64_t blocks_, kt_block_, v_block_, hk_ = -1;
  bool v_in_place_ = false;
  SequenceView seq_{-1};  // b = -1: none selected yet
  float *kt_, *v_, *row_tmp_;
  uint8_t* packed_;
};

}  // namespace fmha
