// The one mask/score mechanism both CPU kernels share (FlashInfer's "variant"
// idea): score transforms (softcap, ALiBi, bias) as hooks over a tile row, and
// every structural mask (causal, window, key padding) as a visible key interval
// [lo, hi) per query row, so whole tiles outside it are skipped and tiles fully
// inside it run with no per-element masking.
#pragma once
#include <cstdint>
#include "core/attention_params.h"
#include "core/sequence_view.h"

namespace fmha {

struct KeyRange {
  int64_t lo = 0, hi = 0;  // visible keys lo <= j < hi; empty when hi <= lo
};

class ScorePolicy {
 public:
  // For one (sequence, query head h); i and j below are rows of that sequence.
  ScorePolicy(const AttentionParams& p, const SequenceView& seq, int64_t h);

  // Visible keys of query row i (DESIGN §3, bottom-right aligned per sequence: offset = Sk − Sq).
  KeyRange keys(int64_t i) const;

  // Whether any score hook is active; when false apply() is a no-op.
  bool has_hooks() const { return softcap_ > 0 || alibi_slope_ != 0 || bias_ != nullptr; }

  // s[c] for keys j0 + c, c < n, of query row i: softcap, then ALiBi, then bias.
  // (q·k is already scaled.) Keys outside `visible` become -inf when mask is true.
  void apply(float* s, int64_t i, int64_t j0, int n, KeyRange visible, bool mask) const;

 private:
  const AttentionParams& p_;
  int64_t offset_, kv_len_;
  float softcap_, alibi_slope_ = 0;
  const void* bias_ = nullptr;  // this (b, h)'s [Sq, Sk] plane
};

}  // namespace fmha
