// FlashAttention-2-style forward pass on the CPU (Dao 2023, Alg. 1): a task is
// (batch, query head, block of kBlockQ query rows); K/V stream through in blocks
// of kBlockK keys with the online softmax (running max m, sum l, rescaled
// accumulator), so memory is O(S·D). Blocks outside every row's visible key
// interval are never touched; blocks inside all of them skip per-element masks.
#include <algorithm>
#include <atomic>
#include <cmath>
#include <limits>

#include "cpu/attention_cpu.h"
#include "cpu/cpu_features.h"
#include "cpu/microkernels.h"
#include "cpu/scratch.h"
#include "cpu/score_policy.h"
#include "cpu/thread_pool.h"
#include "cpu/tile_pack.h"

namespace fmha {
namespace {

constexpr int kBlockQ = 64;
constexpr int kBlockK = 64;

struct FusedScratch {
  float *q, *kt, *v, *s, *acc, *m, *l, *row_tmp;
  KeyRange* ranges;

  static int64_t floats(const AttentionParams& p) {
    const int64_t kr = sizeof(KeyRange) / sizeof(float);
    return kBlockQ * p.D + p.D * kBlockK + kBlockK * p.Dv + kBlockQ * kBlockK + kBlockQ * p.Dv +
           2 * kBlockQ + std::max(p.D, p.Dv) + kBlockQ * kr;
  }
  FusedScratch(const AttentionParams& p, float* base) {
    ranges = reinterpret_cast<KeyRange*>(base);  // first: the buffer start is aligned for int64
    base += kBlockQ * (sizeof(KeyRange) / sizeof(float));
    q = base;           base += kBlockQ * p.D;
    kt = base;          base += p.D * kBlockK;
    v = base;           base += kBlockK * p.Dv;
    s = base;           base += kBlockQ * kBlockK;
    acc = base;         base += kBlockQ * p.Dv;
    m = base;           base += kBlockQ;
    l = base;           base += kBlockQ;
    row_tmp = base;
  }
};

// One (b, h, query block). Returns false when aborted.
bool query_block(const AttentionParams& p, const ExecContext& ctx, const CpuMicrokernels& mk,
                 int64_t b, int64_t h, int64_t i0, FusedScratch& w) {
  const int rows = int(std::min<int64_t>(kBlockQ, p.Sq - i0));
  const int64_t hk = h / (p.Hq / p.Hkv);
  const int D = int(p.D), Dv = int(p.Dv);
  const ScorePolicy policy(p, b, h);
  const float ninf = -std::numeric_limits<float>::infinity();

  // Union and intersection of the rows' visible key intervals.
  int64_t k_begin = std::numeric_limits<int64_t>::max(), k_end = 0;
  int64_t all_lo = 0, all_hi = std::numeric_limits<int64_t>::max();
  for (int r = 0; r < rows; ++r) {
    const KeyRange kr = policy.keys(i0 + r);
    w.ranges[r] = kr;
    if (kr.hi > kr.lo) { k_begin = std::min(k_begin, kr.lo); k_end = std::max(k_end, kr.hi); }
    all_lo = std::max(all_lo, kr.lo);
    all_hi = std::min(all_hi, kr.hi);
    w.m[r] = ninf;
    w.l[r] = 0.0f;
  }
  std::fill(w.acc, w.acc + int64_t(rows) * Dv, 0.0f);

  const void* q0 = row_ptr(p.q, p.dtype, b * p.q_stride[0] + i0 * p.q_stride[1] + h * p.q_stride[2]);
  pack_rows(mk, q0, p.dtype, p.q_stride[1], rows, D, p.scale, w.q, D);

  const int64_t k_off = b * p.k_stride[0] + hk * p.k_stride[2];
  const int64_t v_off = b * p.v_stride[0] + hk * p.v_stride[2];
  for (int64_t j0 = k_begin; j0 < k_end; j0 += kBlockK) {
    if (ctx.aborted()) return false;
    const int n = int(std::min<int64_t>(kBlockK, k_end - j0));
    pack_transposed(mk, row_ptr(p.k, p.dtype, k_off + j0 * p.k_stride[1]), p.dtype, p.k_stride[1], n, D,
                    w.kt, kBlockK, w.row_tmp);
    mk.gemm(w.q, D, w.kt, kBlockK, w.s, kBlockK, rows, n, D, false);

    const bool needs_mask = j0 < all_lo || j0 + n > all_hi;
    for (int r = 0; r < rows; ++r) {
      float* s = w.s + r * kBlockK;
      if (needs_mask || policy.has_hooks()) policy.apply(s, i0 + r, j0, n, w.ranges[r], needs_mask);
      const float m_new = std::max(w.m[r], mk.row_max(s, n));
      if (m_new == ninf) {  // nothing visible yet in this row
        std::fill(s, s + n, 0.0f);
        continue;
      }
      const float alpha = std::exp(w.m[r] - m_new);  // 0 when m was -inf
      w.l[r] = w.l[r] * alpha + mk.exp_sum(s, n, m_new);
      if (alpha != 1.0f) mk.scale(w.acc + int64_t(r) * Dv, Dv, alpha);
      w.m[r] = m_new;
    }

    const float* vb;
    int64_t ldv;
    const void* v0 = row_ptr(p.v, p.dtype, v_off + j0 * p.v_stride[1]);
    if (p.dtype == DType::F32) {
      vb = static_cast<const float*>(v0);
      ldv = p.v_stride[1];
    } else {
      pack_rows(mk, v0, p.dtype, p.v_stride[1], n, Dv, 1.0f, w.v, Dv);
      vb = w.v;
      ldv = Dv;
    }
    mk.gemm(w.s, kBlockK, vb, ldv, w.acc, Dv, rows, Dv, n, true);
  }

  for (int r = 0; r < rows; ++r) {
    const int64_t i = i0 + r;
    const float l = w.l[r];
    void* o = static_cast<char*>(p.out) +
              (b * p.o_stride[0] + i * p.o_stride[1] + h * p.o_stride[2]) * dtype_size(p.dtype);
    mk.store_row(w.acc + int64_t(r) * Dv, l > 0 ? 1.0f / l : 0.0f, Dv, p.dtype, o);
    if (p.lse) p.lse[(b * p.Hq + h) * p.Sq + i] = l > 0 ? w.m[r] + std::log(l) : ninf;
  }
  return true;
}

}  // namespace

Status fused_attention_cpu(const AttentionParams& p, const ExecContext& ctx) {
  const int64_t q_blocks = (p.Sq + kBlockQ - 1) / kBlockQ;
  const int64_t heads = p.B * p.Hq;
  const int64_t tasks = q_blocks * heads;
  if (tasks == 0) return {};
  const int threads = int(std::min<int64_t>(ctx.num_threads, tasks));
  ThreadScratch scratch;
  Status st = scratch.allocate(threads, FusedScratch::floats(p), ctx.max_scratch_bytes, "fused attention");
  if (!st.ok()) return st;

  const CpuMicrokernels& mk = cpu_microkernels(cpu_features().isa);
  std::atomic<bool> aborted{false};
  // Query blocks are ordered last to first: with a causal mask the last blocks
  // see the most keys, so the longest tasks start first (LPT scheduling).
  parallel_for(threads, tasks, [&](int64_t t, int thread) {
    if (aborted.load(std::memory_order_relaxed)) return;
    const int64_t qb = q_blocks - 1 - t / heads, bh = t % heads;
    FusedScratch w(p, scratch.thread(thread));
    if (!query_block(p, ctx, mk, bh / p.Hq, bh % p.Hq, qb * kBlockQ, w)) aborted = true;
  });
  if (aborted) return {StatusCode::Aborted, "aborted"};
  return {};
}

}  // namespace fmha
