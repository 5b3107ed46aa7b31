// The baseline every benchmark compares against: per (batch, query head) task,
// S = (Q·scale)·Kᵀ is materialized in full (Sq × Sk), the score hooks and masks
// run over it, softmax row by row, then O = P·V. It uses the same microkernels
// as the fused kernel, so fused-vs-vanilla measures what fusion buys, no more.
// It skips nothing: fully masked regions are computed and then masked.
#include <algorithm>
#include <atomic>
#include <cmath>
#include <limits>

#include "core/sequence_view.h"
#include "cpu/attention_cpu.h"
#include "cpu/cpu_features.h"
#include "cpu/microkernels.h"
#include "cpu/scratch.h"
#include "cpu/score_policy.h"
#include "cpu/thread_pool.h"
#include "cpu/tile_pack.h"

namespace fmha {
namespace {

constexpr int kBlockK = 64;  // keys packed per Kᵀ / V block

struct VanillaScratch {
  float *s, *q, *kt, *v, *acc, *l, *row_tmp;

  static bool floats(const AttentionParams& p, int64_t* out) {
    int64_t scores;
    if (!checked_mul(p.Sq, p.Sk, &scores)) return false;
    return checked_add(scores, p.Sq * (p.D + p.Dv + 1) + kBlockK * (p.D + p.Dv) + kTransposeRows * std::max(p.D, p.Dv), out);
  }
  VanillaScratch(const AttentionParams& p, float* base) {
    s = base;        base += p.Sq * p.Sk;
    q = base;        base += p.Sq * p.D;
    kt = base;       base += p.D * kBlockK;
    v = base;        base += kBlockK * p.Dv;
    acc = base;      base += p.Sq * p.Dv;
    l = base;        base += p.Sq;
    row_tmp = base;
  }
};

// One (b, h). Returns false when aborted.
bool head(const AttentionParams& p, const ExecContext& ctx, const CpuMicrokernels& mk, int64_t b, int64_t h,
          VanillaScratch& w) {
  const int64_t hk = h / (p.Hq / p.Hkv);
  const SequenceView seq = sequence_view(p, b);
  const int64_t Sq = seq.sq, Sk = seq.sk;
  const int D = int(p.D), Dv = int(p.Dv);
  const ScorePolicy policy(p, seq, h);
  const float ninf = -std::numeric_limits<float>::infinity();

  // S = (Q·scale)·Kᵀ, one block of keys at a time.
  pack_rows(mk, row_ptr(p.q, p.dtype, seq.q_at(p, 0, h)), p.dtype, p.q_stride[1], int(Sq), D, p.scale, w.q, D);
  for (int64_t j0 = 0; j0 < Sk; j0 += kBlockK) {
    if (ctx.aborted()) return false;
    const int n = int(std::min<int64_t>(kBlockK, Sk - j0));
    pack_transposed(mk, row_ptr(p.k, p.dtype, seq.k_at(p, j0, hk)), p.dtype, p.k_stride[1], n, D, 1.0f,
                    w.kt, kBlockK, w.row_tmp);
    mk.gemm(w.q, D, w.kt, kBlockK, w.s + j0, Sk, int(Sq), n, D, false, nullptr);
  }

  // Row softmax; rows keep exp(s − m) and 1/l is applied when the output is stored.
  for (int64_t i = 0; i < Sq; ++i) {
    float* s = w.s + i * Sk;
    policy.apply(s, i, 0, int(Sk), policy.keys(i), true);
    const float m = mk.row_max(s, int(Sk));
    if (m == ninf) {
      std::fill(s, s + Sk, 0.0f);
      w.l[i] = 0.0f;
    } else {
      w.l[i] = mk.exp_sum(s, int(Sk), m);
    }
    if (p.lse) p.lse[seq.lse_at(p, i, h)] = w.l[i] > 0 ? m + std::log(w.l[i]) : ninf;
  }

  // O = P·V, accumulated over blocks of keys.
  std::fill(w.acc, w.acc + Sq * Dv, 0.0f);
  for (int64_t j0 = 0; j0 < Sk; j0 += kBlockK) {
    if (ctx.aborted()) return false;
    const int n = int(std::min<int64_t>(kBlockK, Sk - j0));
    const void* v0 = row_ptr(p.v, p.dtype, seq.v_at(p, j0, hk));
    const float* vb = static_cast<const float*>(v0);
    int64_t ldv = p.v_stride[1];
    if (p.dtype != DType::F32) {
      pack_rows(mk, v0, p.dtype, p.v_stride[1], n, Dv, 1.0f, w.v, Dv);
      vb = w.v;
      ldv = Dv;
    }
    mk.gemm(w.s + j0, Sk, vb, ldv, w.acc, Dv, int(Sq), Dv, n, true, nullptr);
  }
  for (int64_t i = 0; i < Sq; ++i) {
    void* o = static_cast<char*>(p.out) + seq.out_at(p, i, h) * dtype_size(p.dtype);
    mk.store_row(w.acc + i * Dv, w.l[i] > 0 ? 1.0f / w.l[i] : 0.0f, Dv, p.dtype, o);
  }
  return true;
}

}  // namespace

Status vanilla_attention_cpu(const AttentionParams& p, const ExecContext& ctx) {
  const int64_t tasks = p.B * p.Hq;
  if (tasks == 0 || p.Sq == 0) return {};
  const int threads = int(std::min<int64_t>(ctx.num_threads, tasks));
  int64_t floats = 0;
  ThreadScratch scratch;
  Status st = VanillaScratch::floats(p, &floats)
                  ? scratch.allocate(threads, floats, ctx.max_scratch_bytes, "vanillaAttention (Sq × Sk score matrix per thread)")
                  : Status{StatusCode::OutOfMemory, "vanillaAttention: Sq × Sk overflows 64 bits"};
  if (!st.ok()) return st;

  const CpuMicrokernels& mk = cpu_microkernels(cpu_features().isa);
  std::atomic<bool> aborted{false};
  parallel_for(threads, tasks, [&](int64_t t, int thread) {
    if (aborted.load(std::memory_order_relaxed)) return;
    VanillaScratch w(p, scratch.thread(thread));
    if (!head(p, ctx, mk, t / p.Hq, t % p.Hq, w)) aborted = true;
  });
  if (aborted) return {StatusCode::Aborted, "aborted"};
  return {};
}

}  // namespace fmha
