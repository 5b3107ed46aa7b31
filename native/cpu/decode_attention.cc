// Decode over a KV cache on the CPU (LeanAttention, DESIGN §5). The total key
// tiles of all sequences are cut among workers by core/decode_partition (lean:
// equal contiguous ranges across sequence boundaries; split; single); a piece
// computes an unnormalized partial (running max m, sum l, accumulator), and
// sequences cut into several pieces are merged afterwards by an exact
// log-sum-exp reduction in piece order, so the result depends only on the
// plan, never on which thread ran what.
//
// A CPU unit is a whole sequence (all kv heads and all Hq × Sq query rows),
// not DESIGN's (sequence, kv head): a key's heads are adjacent in the cache
// ([B, capacity, Hkv, D]), and reading one head's rows Hkv·D apart measured
// 6 GB/s against 26 GB/s front to back on one core. So the decode
// microkernels (decode_qk, decode_pv) walk each tile four keys at a time with
// heads inner, straight from the cache (16-bit rows widened in registers):
// memory streams as four sequential runs, nothing is copied, and each key row
// serves its group's Hq/Hkv heads × Sq tokens, so K/V are read once. A bf16
// cache on a CPU with AVX512-BF16 takes vdpbf16ps kernels instead (q·k on the
// bf16 rows as they are, P rounded to bf16 for P·V, as DESIGN allows for 16-bit
// inputs): widening in registers made bf16 compute-bound at half fp32's bytes/s.
// While one kernel computes, it streams into L2 what the next one reads (Q·Kᵀ
// the tile's V, P·V the next tile's K): the hardware prefetchers alone leave
// decode latency-bound.
#include <algorithm>
#include <atomic>
#include <cmath>
#include <cstring>
#include <limits>
#include <memory>
#include <new>
#include <optional>
#include <vector>

#include "core/checked_math.h"
#include "core/decode_partition.h"
#include "core/sequence_view.h"
#include "cpu/attention_cpu.h"
#include "cpu/bf16_dot_kernels.h"
#include "cpu/cpu_features.h"
#include "cpu/kv_cache_write.h"
#include "cpu/microkernels.h"
#include "cpu/scratch.h"
#include "cpu/score_policy.h"
#include "cpu/thread_pool.h"
#include "cpu/tile_pack.h"

namespace fmha {
namespace {

constexpr int kTile = 64;                  // keys per tile: the unit of partitioned work
constexpr int64_t kMinTilesPerWorker = 4;  // below this an extra thread costs more than it saves

// A sequence: all its kv heads and query rows (row x is query head x / Sq, token x % Sq).
struct Unit {
  int64_t b;
  KeyRange keys;  // union of the rows' visible keys
  KeyRange all;   // their intersection: tiles inside it need no mask
};

SequenceView sequence_of(const DecodeParams& dp, int64_t b) {
  return SequenceView{b, dp.attn.Sq, dp.cache_seqlens[b], 0, 0};
}

std::vector<Unit> enumerate_units(const DecodeParams& dp) {
  const AttentionParams& p = dp.attn;
  std::vector<Unit> units;
  if (p.Sq == 0) return units;
  for (int64_t b = 0; b < p.B; ++b) {
    const ScorePolicy policy(p, sequence_of(dp, b), 0);  // visible keys depend on the token, not the head
    Unit u{b, {std::numeric_limits<int64_t>::max(), 0}, {0, std::numeric_limits<int64_t>::max()}};
    for (int64_t t = 0; t < p.Sq; ++t) {
      const KeyRange kr = policy.keys(t);
      if (kr.hi > kr.lo) { u.keys.lo = std::min(u.keys.lo, kr.lo); u.keys.hi = std::max(u.keys.hi, kr.hi); }
      u.all.lo = std::max(u.all.lo, kr.lo);
      u.all.hi = std::min(u.all.hi, kr.hi);
    }
    if (u.keys.hi <= u.keys.lo) u.keys = {0, 0};
    units.push_back(u);
  }
  return units;
}

// One thread's working set, carved from its persistent arena.
struct ThreadWork {
  float *q, *s, *acc, *m, *l, *alpha;
  KeyRange* ranges;                   // per new token
  std::vector<ScorePolicy> policies;  // per query head of the current sequence; capacity kept

  static int64_t floats(const AttentionParams& p, int tile) {
    const int64_t rows = p.Hq * p.Sq;
    return p.Sq * int64_t(sizeof(KeyRange) / sizeof(float)) + rows * (p.D + tile + p.Dv + 3);
  }
  ThreadWork(const AttentionParams& p, int tile, float* base) {
    const int64_t rows = p.Hq * p.Sq;
    ranges = reinterpret_cast<KeyRange*>(base);  // first: the arena is 64-byte aligned
    base += p.Sq * int64_t(sizeof(KeyRange) / sizeof(float));
    q = base;     base += rows * p.D;
    s = base;     base += rows * tile;
    acc = base;   base += rows * p.Dv;
    m = base;     base += rows;
    l = base;     base += rows;
    alpha = base;
    policies.reserve(size_t(p.Hq));
  }
};

// A partial softmax state of a unit's rows: m, l, then the accumulator (rows × Dv).
struct Partial {
  float *m, *l, *acc;
};

class DecodeRunner {
 public:
  DecodeRunner(const DecodeParams& dp, const ExecContext& ctx, int tile)
      : dp_(dp), p_(dp.attn), ctx_(ctx), mk_(cpu_microkernels(cpu_features().isa)),
        bk_(p_.dtype == DType::BF16 ? bf16_dot_kernels() : nullptr), tile_(tile),
        group_rows_(p_.Hq / p_.Hkv * p_.Sq), rows_(p_.Hq * p_.Sq) {}

  int64_t rows() const { return rows_; }

  // Computes tiles [t0, t1) of unit u into out (unnormalized). False when aborted.
  bool piece(const Unit& u, int64_t t0, int64_t t1, ThreadWork& w, Partial out) const {
    const SequenceView seq = sequence_of(dp_, u.b);
    const int64_t sid = dp_.sequence(u.b), D = p_.D, Dv = p_.Dv, T = tile_;
    w.policies.clear();
    bool hooks = false;
    for (int64_t h = 0; h < p_.Hq; ++h) {
      w.policies.emplace_back(p_, seq, h);
      hooks = hooks || w.policies.back().has_hooks();
    }
    for (int64_t t = 0; t < p_.Sq; ++t) w.ranges[t] = w.policies.front().keys(t);
    uint16_t* q16 = reinterpret_cast<uint16_t*>(w.q);  // bk_: q rows as bf16, unscaled (scale applies to the sums)
    for (int64_t x = 0; x < rows_; ++x) {
      const void* qx = row_ptr(p_.q, p_.dtype, seq.q_at(p_, x % p_.Sq, x / p_.Sq));
      if (bk_) std::memcpy(q16 + x * D, qx, size_t(D) * sizeof(uint16_t));
      else pack_rows(mk_, qx, p_.dtype, 0, 1, int(D), p_.scale, w.q + x * D, D);
      out.m[x] = -std::numeric_limits<float>::infinity();
      out.l[x] = 0.0f;
    }
    std::fill(out.acc, out.acc + rows_ * Dv, 0.0f);

    const KvCacheView& c = dp_.cache;
    for (int64_t tile = t0; tile < t1; ++tile) {
      if (ctx_.aborted()) return false;
      const int64_t j0 = tile * T;
      const int n = int(std::min<int64_t>(T, seq.sk - j0));
      for (int j = 0; j < n;) {  // runs of keys within one page; each asks for its V rows
        const int len = int(c.run(j0 + j, n - j));
        const void* k = row_ptr(c.k, c.dtype, c.k_at(sid, j0 + j, 0));
        const Span pf = dense_rows(c.v, c.v_stride, Dv, c.v_at(sid, j0 + j, 0), len);
        if (bk_)
          bk_->decode_qk(q16, D, int(p_.Hkv), int(group_rows_), int(D), static_cast<const uint16_t*>(k), c.k_stride[1],
                         c.k_stride[2], len, p_.scale, w.s + j, T, pf.p, pf.bytes);
        else
          mk_.decode_qk(w.q, int(p_.Hkv), int(group_rows_), int(D), k, c.dtype, c.k_stride[1], c.k_stride[2], len,
                        w.s + j, T, pf.p, pf.bytes);
        j += len;
      }
      const bool needs_mask = j0 < u.all.lo || j0 + n > u.all.hi;
      if (needs_mask || hooks)
        for (int64_t x = 0; x < rows_; ++x) {
          const int64_t t = x % p_.Sq;
          w.policies[size_t(x / p_.Sq)].apply(w.s + x * T, t, j0, n, w.ranges[t], needs_mask);
        }
      mk_.online_softmax(w.s, T, int(rows_), n, out.m, out.l, w.alpha);
      for (int64_t x = 0; x < rows_; ++x)  // acc = diag(alpha)·acc; alpha is exactly 1 while the max holds
        if (w.alpha[x] != 1.0f) mk_.scale(out.acc + x * Dv, int(Dv), w.alpha[x]);
      for (int j = 0; j < n;) {  // each run asks for the K rows of the next tile's matching run, if this piece has one
        const int len = int(c.run(j0 + j, n - j));
        const void* v = row_ptr(c.v, c.dtype, c.v_at(sid, j0 + j, 0));
        const int64_t next = j0 + T + j;
        const Span pf = tile + 1 < t1 && next < seq.sk
                            ? dense_rows(c.k, c.k_stride, D, c.k_at(sid, next, 0), c.run(next, std::min<int64_t>(len, seq.sk - next)))
                            : Span{};
        if (bk_)
          bk_->decode_pv(w.s + j, T, int(p_.Hkv), int(group_rows_), int(Dv), static_cast<const uint16_t*>(v),
                         c.v_stride[1], c.v_stride[2], len, out.acc, pf.p, pf.bytes);
        else
          mk_.decode_pv(w.s + j, T, int(p_.Hkv), int(group_rows_), int(Dv), v, c.dtype, c.v_stride[1], c.v_stride[2],
                        len, out.acc, pf.p, pf.bytes);
        j += len;
      }
    }
    return true;
  }

  // Normalizes a unit's final state into out (and lse).
  void write(const Unit& u, Partial st) const {
    const SequenceView seq = sequence_of(dp_, u.b);
    const float ninf = -std::numeric_limits<float>::infinity();
    for (int64_t x = 0; x < rows_; ++x) {
      const int64_t t = x % p_.Sq, h = x / p_.Sq;
      const float l = st.l[x];
      void* o = static_cast<char*>(p_.out) + seq.out_at(p_, t, h) * dtype_size(p_.dtype);
      mk_.store_row(st.acc + x * p_.Dv, l > 0 ? 1.0f / l : 0.0f, int(p_.Dv), p_.dtype, o);
      if (p_.lse) p_.lse[seq.lse_at(p_, t, h)] = l > 0 ? st.m[x] + std::log(l) : ninf;
    }
  }

  // Exact log-sum-exp merge of a unit's pieces, in piece order, into parts[0].
  void merge(const Unit& u, const std::vector<Partial>& parts) const {
    const float ninf = -std::numeric_limits<float>::infinity();
    const int64_t Dv = p_.Dv;
    Partial dst = parts.front();
    for (int64_t x = 0; x < rows_; ++x) {
      float M = ninf;
      for (const Partial& q : parts) M = std::max(M, q.m[x]);
      float* a = dst.acc + x * Dv;
      if (M == ninf) { dst.l[x] = 0.0f; continue; }
      float L = 0.0f;
      for (size_t i = 0; i < parts.size(); ++i) {
        const float c = std::exp(parts[i].m[x] - M);  // 0 for a piece that saw nothing
        L += parts[i].l[x] * c;
        const float* src = parts[i].acc + x * Dv;
        if (i == 0) for (int64_t d = 0; d < Dv; ++d) a[d] = src[d] * c;
        else for (int64_t d = 0; d < Dv; ++d) a[d] += src[d] * c;
      }
      dst.m[x] = M;
      dst.l[x] = L;
    }
    write(u, dst);
  }

 private:
  struct Span {
    const void* p = nullptr;
    int64_t bytes = 0;
  };
  // The bytes of `len` cache rows from element `at` on (all heads), for the
  // kernels to prefetch; empty where rows or heads are strided, since the gaps
  // would be fetched too.
  Span dense_rows(const void* base, const int64_t* stride, int64_t width, int64_t at, int64_t len) const {
    if (stride[2] != width || stride[1] != p_.Hkv * width) return {};
    return {row_ptr(base, dp_.cache.dtype, at), len * stride[1] * int64_t(dtype_size(dp_.cache.dtype))};
  }

  const DecodeParams& dp_;
  const AttentionParams& p_;
  const ExecContext& ctx_;
  const CpuMicrokernels& mk_;
  const Bf16DotKernels* bk_;  // a bf16 cache on a CPU with AVX512-BF16: vdpbf16ps straight on the cache rows
  const int tile_;
  const int64_t group_rows_, rows_;
};

void fused_append(const DecodeParams& dp) {
  const AttentionParams& p = dp.attn;
  for (int64_t b = 0; b < p.B; ++b) {
    const RowSource k{row_ptr(dp.k_new, p.dtype, b * dp.k_new_stride[0]), dp.k_new_stride[1], dp.k_new_stride[2]};
    const RowSource v{row_ptr(dp.v_new, p.dtype, b * dp.v_new_stride[0]), dp.v_new_stride[1], dp.v_new_stride[2]};
    write_cache_rows(dp.cache, dp.sequence(b), dp.cache_seqlens[b] - p.Sq, p.Sq, p.Hkv, p.D, p.Dv, k, v);
  }
}

// 'auto': one worker per sequence when every sequence is small beside a
// worker's share (threads claim them as they free up, and no partial state is
// merged), else stream-K, whose equal shares keep every worker busy when work
// items are few or unequal.
DecodeStrategy resolve_strategy(DecodeStrategy s, const std::vector<TileSpan>& spans, int64_t total, int64_t workers) {
  if (s != DecodeStrategy::Auto) return s;
  int64_t largest = 0;
  for (const TileSpan& t : spans) largest = std::max(largest, t.end - t.begin);
  return largest * 8 * workers <= total ? DecodeStrategy::Single : DecodeStrategy::Lean;
}

}  // namespace

Status decode_attention_cpu(const DecodeParams& dp, const ExecContext& ctx) {
  const AttentionParams& p = dp.attn;
  if (dp.k_new) fused_append(dp);
  const std::vector<Unit> units = enumerate_units(dp);
  if (units.empty()) return {};

  const int tile = kTile;
  std::vector<TileSpan> spans;
  int64_t total_tiles = 0;
  for (const Unit& u : units) {
    spans.push_back(u.keys.hi > u.keys.lo ? TileSpan{u.keys.lo / tile, (u.keys.hi + tile - 1) / tile} : TileSpan{});
    total_tiles += spans.back().end - spans.back().begin;
  }
  const int64_t workers = std::max<int64_t>(
      1, std::min<int64_t>(ctx.num_threads, (total_tiles + kMinTilesPerWorker - 1) / kMinTilesPerWorker));
  const DecodePlan plan = plan_decode(spans, resolve_strategy(dp.strategy, spans, total_tiles, workers), workers);
  const int threads = int(std::max<int64_t>(1, std::min<int64_t>(workers, int64_t(plan.tasks.size()) - 1)));

  const DecodeRunner run(dp, ctx, tile);
  // Partial slots for units cut into several pieces.
  const int64_t slot_floats = run.rows() * (p.Dv + 2);
  std::vector<int64_t> slot(plan.pieces.size(), -1);
  int64_t slots = 0;
  for (size_t u = 0; u < units.size(); ++u)
    if (plan.unit_pieces[u + 1] - plan.unit_pieces[u] > 1)
      for (int64_t i = plan.unit_pieces[u]; i < plan.unit_pieces[u + 1]; ++i) slot[size_t(i)] = slots++;

  const int64_t floats = ThreadWork::floats(p, tile);
  int64_t total = 0;
  if (!checked_mul(slots, slot_floats, &total) || !checked_add(total, floats * threads, &total))
    total = std::numeric_limits<int64_t>::max() / 8;
  Status st = check_scratch(1, total, ctx.max_scratch_bytes, "decode attention");
  if (!st.ok()) return st;
  std::unique_ptr<float[]> partials(slots ? new (std::nothrow) float[size_t(slots * slot_floats)] : nullptr);
  if (slots && !partials)
    return {StatusCode::OutOfMemory, "decode attention: allocating " + std::to_string(slots * slot_floats * 4) +
                                         " bytes of partial results failed"};
  auto partial = [&](int64_t s) {
    float* base = partials.get() + s * slot_floats;
    return Partial{base, base + run.rows(), base + 2 * run.rows()};
  };

  std::vector<std::optional<ThreadWork>> work(static_cast<size_t>(threads));
  std::atomic<bool> aborted{false}, out_of_memory{false};
  parallel_for(threads, int64_t(plan.tasks.size()) - 1, [&](int64_t task, int thread) {
    if (aborted.load(std::memory_order_relaxed) || out_of_memory.load(std::memory_order_relaxed)) return;
    std::optional<ThreadWork>& w = work[size_t(thread)];
    if (!w) {
      float* arena = thread_arena(floats);
      if (!arena) { out_of_memory = true; return; }
      w.emplace(p, tile, arena);
    }
    for (int64_t i = plan.tasks[size_t(task)]; i < plan.tasks[size_t(task) + 1]; ++i) {
      const DecodePiece& pc = plan.pieces[size_t(i)];
      const Unit& u = units[size_t(pc.unit)];
      const bool whole = slot[size_t(i)] < 0;
      const Partial out = whole ? Partial{w->m, w->l, w->acc} : partial(slot[size_t(i)]);
      if (!run.piece(u, pc.begin, pc.end, *w, out)) { aborted = true; return; }
      if (whole) run.write(u, out);
    }
  });
  if (out_of_memory)
    return {StatusCode::OutOfMemory, "decode attention: allocating " + std::to_string(floats * 4) +
                                         " bytes of per-thread scratch failed"};
  if (aborted) return {StatusCode::Aborted, "aborted"};

  // The fix-up: units cut into pieces, merged in piece order (parallel over units).
  std::vector<int64_t> cut;
  for (size_t u = 0; u < units.size(); ++u)
    if (plan.unit_pieces[u + 1] - plan.unit_pieces[u] > 1) cut.push_back(int64_t(u));
  if (cut.empty()) return {};
  parallel_for(std::min<int>(threads, int(cut.size())), int64_t(cut.size()), [&](int64_t c, int) {
    const size_t u = size_t(cut[size_t(c)]);
    std::vector<Partial> parts;
    for (int64_t i = plan.unit_pieces[u]; i < plan.unit_pieces[u + 1]; ++i) parts.push_back(partial(slot[size_t(i)]));
    run.merge(units[u], parts);
  });
  return {};
}

}  // namespace fmha
