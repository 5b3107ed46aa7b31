#include "cpu/score_policy.h"

#include <algorithm>
#include <cmath>
#include <limits>

namespace fmha {

ScorePolicy::ScorePolicy(const AttentionParams& p, const SequenceView& seq, int64_t h)
    : p_(p), offset_(seq.sk - seq.sq), kv_len_(p.seqlens_k ? p.seqlens_k[seq.b] : seq.sk), softcap_(p.softcap) {
  if (p.alibi_slopes) alibi_slope_ = p.alibi_slopes[h];
  if (p.bias) {  // padded only: the binding refuses bias for varlen, so the plane is [Sq, Sk]
    const int64_t off = seq.b * p.bias_stride_b + h * p.bias_stride_h;
    bias_ = static_cast<const char*>(p.bias) + off * dtype_size(p.dtype);
  }
}

KeyRange ScorePolicy::keys(int64_t i) const {
  const int64_t diag = i + offset_;  // the key aligned with query i
  KeyRange r{0, kv_len_};
  if (p_.causal) r.hi = std::min(r.hi, diag + 1);
  if (p_.window_left >= 0) r.lo = std::max(r.lo, diag - p_.window_left);
  if (p_.window_right >= 0) r.hi = std::min(r.hi, diag + p_.window_right + 1);
  r.lo = std::max<int64_t>(r.lo, 0);
  if (r.hi < r.lo) r.hi = r.lo;
  return r;
}

void ScorePolicy::apply(float* s, int64_t i, int64_t j0, int n, KeyRange visible, bool mask) const {
  if (softcap_ > 0) {
    const float inv = 1.0f / softcap_;
    for (int c = 0; c < n; ++c) s[c] = softcap_ * ::tanhf(s[c] * inv);
  }
  if (alibi_slope_ != 0) {
    const int64_t diag = i + offset_;
    for (int c = 0; c < n; ++c) s[c] -= alibi_slope_ * float(std::llabs(diag - (j0 + c)));
  }
  if (bias_) {
    const int64_t row = i * p_.Sk + j0;
    if (p_.dtype == DType::F32) {
      const float* bp = static_cast<const float*>(bias_) + row;
      for (int c = 0; c < n; ++c) s[c] += bp[c];
    } else {
      for (int c = 0; c < n; ++c) s[c] += load_as_f32(bias_, p_.dtype, row + c);
    }
  }
  if (mask) {
    const float ninf = -std::numeric_limits<float>::infinity();
    const int64_t lo = visible.lo - j0, hi = visible.hi - j0;
    for (int c = 0; c < n; ++c)
      if (c < lo || c >= hi) s[c] = ninf;
  }
}

}  // namespace fmha
