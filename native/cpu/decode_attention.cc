// Decode over a KV cache on the CPU (LeanAttention, DESIGN §5). A unit is one
// (sequence, kv head) pair with all its query rows, the Hq/Hkv heads of the
// group × the Sq new tokens, so each K/V tile is read from memory once for the
// whole group. Units' key tiles are cut among workers by core/decode_partition
// (lean: equal contiguous ranges across unit boundaries; split; single); a
// piece computes an unnormalized partial (running max m, sum l, accumulator),
// and units cut into several pieces are merged afterwards by an exact
// log-sum-exp reduction in piece order, so the result depends only on the
// plan, never on which thread ran what.
//
// Decode is a stream over K and V: with G·Sq rows there are only G·Sq
// multiply-adds per cache element, so the tiles are read in place (float32,
// one page) and Q·Kᵀ runs as A·Bᵀ (gemm_nt) instead of packing a transposed K.
#include <algorithm>
#include <atomic>
#include <cmath>
#include <limits>
#include <memory>
#include <new>
#include <optional>
#include <vector>

#include "core/checked_math.h"
#include "core/decode_partition.h"
#include "core/sequence_view.h"
#include "cpu/attention_cpu.h"
#include "cpu/cpu_features.h"
#include "cpu/kv_cache_write.h"
#include "cpu/microkernels.h"
#include "cpu/scratch.h"
#include "cpu/score_policy.h"
#include "cpu/thread_pool.h"
#include "cpu/tile_pack.h"

namespace fmha {
namespace {

constexpr int kTile = 128;             // keys per tile: the unit of partitioned work
constexpr int kMaxUnitRows = 64;       // query rows per unit; a larger group × Sq is cut into row blocks
constexpr int64_t kMinTilesPerWorker = 4;  // below this an extra thread costs more than it saves

struct Unit {
  int64_t b, hk, r0;  // batch row, kv head, first row (row x is head g = x / Sq of the group, token t = x % Sq)
  int rows;
  KeyRange keys;      // union of the rows' visible keys
  KeyRange all;       // their intersection: tiles inside it need no mask
};

SequenceView sequence_of(const DecodeParams& dp, int64_t b) {
  return SequenceView{b, dp.attn.Sq, dp.cache_seqlens[b], 0, 0};
}

std::vector<Unit> enumerate_units(const DecodeParams& dp) {
  const AttentionParams& p = dp.attn;
  const int64_t G = p.Hq / p.Hkv, rows = G * p.Sq;
  std::vector<Unit> units;
  for (int64_t b = 0; b < p.B; ++b) {
    const SequenceView seq = sequence_of(dp, b);
    const ScorePolicy policy(p, seq, 0);  // visible keys depend on the token, not the head
    for (int64_t hk = 0; hk < p.Hkv; ++hk)
      for (int64_t r0 = 0; r0 < rows; r0 += kMaxUnitRows) {
        Unit u{b, hk, r0, int(std::min<int64_t>(kMaxUnitRows, rows - r0)), {std::numeric_limits<int64_t>::max(), 0},
               {0, std::numeric_limits<int64_t>::max()}};
        for (int64_t x = r0; x < r0 + u.rows; ++x) {
          const KeyRange kr = policy.keys(x % p.Sq);
          if (kr.hi > kr.lo) { u.keys.lo = std::min(u.keys.lo, kr.lo); u.keys.hi = std::max(u.keys.hi, kr.hi); }
          u.all.lo = std::max(u.all.lo, kr.lo);
          u.all.hi = std::min(u.all.hi, kr.hi);
        }
        if (u.keys.hi <= u.keys.lo) u.keys = {0, 0};
        units.push_back(u);
      }
  }
  return units;
}

TileSpan tile_span(const Unit& u) {
  if (u.keys.hi <= u.keys.lo) return {0, 0};
  return {u.keys.lo / kTile, (u.keys.hi + kTile - 1) / kTile};
}

// One thread's working set, carved from its persistent arena.
struct ThreadWork {
  float *q, *s, *acc, *m, *l, *alpha, *kbuf, *vbuf;
  KeyRange* ranges;
  std::vector<ScorePolicy> policies;  // the unit's heads; capacity kept across pieces

  static int64_t floats(const AttentionParams& p) {
    return kMaxUnitRows * (sizeof(KeyRange) / sizeof(float)) + kMaxUnitRows * (p.D + kTile + p.Dv + 3) +
           kTile * (p.D + p.Dv);
  }
  explicit ThreadWork(const AttentionParams& p, float* base) {
    ranges = reinterpret_cast<KeyRange*>(base);
    base += kMaxUnitRows * (sizeof(KeyRange) / sizeof(float));
    q = base;     base += kMaxUnitRows * p.D;
    s = base;     base += kMaxUnitRows * kTile;
    acc = base;   base += kMaxUnitRows * p.Dv;
    m = base;     base += kMaxUnitRows;
    l = base;     base += kMaxUnitRows;
    alpha = base; base += kMaxUnitRows;
    kbuf = base;  base += kTile * p.D;
    vbuf = base;
    policies.reserve(size_t(p.Hq));
  }
};

// A partial softmax state of `rows` rows: m, l, then the accumulator (rows × Dv).
struct Partial {
  float *m, *l, *acc;
};

class DecodeRunner {
 public:
  DecodeRunner(const DecodeParams& dp, const ExecContext& ctx)
      : dp_(dp), p_(dp.attn), ctx_(ctx), mk_(cpu_microkernels(cpu_features().isa)), G_(p_.Hq / p_.Hkv) {}

  // Computes tiles [t0, t1) of unit u into out (unnormalized). False when aborted.
  bool piece(const Unit& u, int64_t t0, int64_t t1, ThreadWork& w, Partial out) const {
    const SequenceView seq = sequence_of(dp_, u.b);
    const KvCacheView& c = dp_.cache;
    const int64_t sid = dp_.sequence(u.b);
    const int D = int(p_.D), Dv = int(p_.Dv), rows = u.rows;
    const int64_t g0 = u.r0 / p_.Sq;
    w.policies.clear();
    for (int64_t g = g0; g <= (u.r0 + rows - 1) / p_.Sq; ++g) w.policies.emplace_back(p_, seq, u.hk * G_ + g);
    for (int x = 0; x < rows; ++x) {
      const int64_t g = (u.r0 + x) / p_.Sq, t = (u.r0 + x) % p_.Sq;
      pack_rows(mk_, row_ptr(p_.q, p_.dtype, seq.q_at(p_, t, u.hk * G_ + g)), p_.dtype, 0, 1, D, p_.scale,
                w.q + int64_t(x) * D, D);
      w.ranges[x] = w.policies[size_t(g - g0)].keys(t);
      out.m[x] = -std::numeric_limits<float>::infinity();
      out.l[x] = 0.0f;
    }
    std::fill(out.acc, out.acc + int64_t(rows) * Dv, 0.0f);
    bool hooks = false;
    for (const ScorePolicy& pol : w.policies) hooks = hooks || pol.has_hooks();

    for (int64_t tile = t0; tile < t1; ++tile) {
      if (ctx_.aborted()) return false;
      const int64_t j0 = tile * kTile;
      const int n = int(std::min<int64_t>(kTile, seq.sk - j0));
      const float *kp = w.kbuf, *vp = w.vbuf;
      int64_t ldk = D, ldv = Dv;
      if (p_.dtype == DType::F32 && c.run(j0, n) == n) {  // in place: one page, no conversion
        kp = static_cast<const float*>(c.k) + c.k_at(sid, j0, u.hk);
        vp = static_cast<const float*>(c.v) + c.v_at(sid, j0, u.hk);
        ldk = c.k_stride[1];
        ldv = c.v_stride[1];
      } else {
        for (int j = 0; j < n;) {
          const int len = int(c.run(j0 + j, n - j));
          pack_rows(mk_, row_ptr(c.k, c.dtype, c.k_at(sid, j0 + j, u.hk)), c.dtype, c.k_stride[1], len, D, 1.0f,
                    w.kbuf + int64_t(j) * D, D);
          pack_rows(mk_, row_ptr(c.v, c.dtype, c.v_at(sid, j0 + j, u.hk)), c.dtype, c.v_stride[1], len, Dv, 1.0f,
                    w.vbuf + int64_t(j) * Dv, Dv);
          j += len;
        }
      }
      mk_.gemm_nt(w.q, D, kp, ldk, w.s, kTile, rows, n, D);
      const bool needs_mask = j0 < u.all.lo || j0 + n > u.all.hi;
      if (needs_mask || hooks)
        for (int x = 0; x < rows; ++x) {
          const int64_t g = (u.r0 + x) / p_.Sq, t = (u.r0 + x) % p_.Sq;
          w.policies[size_t(g - g0)].apply(w.s + int64_t(x) * kTile, t, j0, n, w.ranges[x], needs_mask);
        }
      mk_.online_softmax(w.s, kTile, rows, n, out.m, out.l, w.alpha);
      mk_.gemm(w.s, kTile, vp, ldv, out.acc, Dv, rows, Dv, n, true, w.alpha);
    }
    return true;
  }

  // Normalizes a unit's final state into out (and lse).
  void write(const Unit& u, Partial st) const {
    const SequenceView seq = sequence_of(dp_, u.b);
    const float ninf = -std::numeric_limits<float>::infinity();
    for (int x = 0; x < u.rows; ++x) {
      const int64_t g = (u.r0 + x) / p_.Sq, t = (u.r0 + x) % p_.Sq, h = u.hk * G_ + g;
      const float l = st.l[x];
      void* o = static_cast<char*>(p_.out) + seq.out_at(p_, t, h) * dtype_size(p_.dtype);
      mk_.store_row(st.acc + int64_t(x) * p_.Dv, l > 0 ? 1.0f / l : 0.0f, int(p_.Dv), p_.dtype, o);
      if (p_.lse) p_.lse[seq.lse_at(p_, t, h)] = l > 0 ? st.m[x] + std::log(l) : ninf;
    }
  }

  // Exact log-sum-exp merge of a unit's pieces, in piece order, into parts[0].
  void merge(const Unit& u, const std::vector<Partial>& parts) const {
    const float ninf = -std::numeric_limits<float>::infinity();
    const int64_t Dv = p_.Dv;
    Partial dst = parts.front();
    for (int x = 0; x < u.rows; ++x) {
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
  const DecodeParams& dp_;
  const AttentionParams& p_;
  const ExecContext& ctx_;
  const CpuMicrokernels& mk_;
  int64_t G_;
};

void fused_append(const DecodeParams& dp) {
  const AttentionParams& p = dp.attn;
  for (int64_t b = 0; b < p.B; ++b) {
    const RowSource k{row_ptr(dp.k_new, p.dtype, b * dp.k_new_stride[0]), dp.k_new_stride[1], dp.k_new_stride[2]};
    const RowSource v{row_ptr(dp.v_new, p.dtype, b * dp.v_new_stride[0]), dp.v_new_stride[1], dp.v_new_stride[2]};
    write_cache_rows(dp.cache, dp.sequence(b), dp.cache_seqlens[b] - p.Sq, p.Sq, p.Hkv, p.D, p.Dv, k, v);
  }
}

DecodeStrategy resolve_strategy(DecodeStrategy s) {
  return s == DecodeStrategy::Auto ? DecodeStrategy::Lean : s;
}

}  // namespace

Status decode_attention_cpu(const DecodeParams& dp, const ExecContext& ctx) {
  const AttentionParams& p = dp.attn;
  if (dp.k_new) fused_append(dp);
  const std::vector<Unit> units = enumerate_units(dp);
  if (units.empty()) return {};

  std::vector<TileSpan> spans;
  int64_t total_tiles = 0;
  for (const Unit& u : units) {
    spans.push_back(tile_span(u));
    total_tiles += spans.back().end - spans.back().begin;
  }
  const int64_t workers = std::max<int64_t>(
      1, std::min<int64_t>(ctx.num_threads, (total_tiles + kMinTilesPerWorker - 1) / kMinTilesPerWorker));
  const DecodePlan plan = plan_decode(spans, resolve_strategy(dp.strategy), workers);
  const int threads = int(std::min<int64_t>(workers, int64_t(plan.tasks.size()) - 1));

  // Partial slots for units cut into several pieces.
  const int64_t slot_floats = int64_t(kMaxUnitRows) * (p.Dv + 2);
  std::vector<int64_t> slot(plan.pieces.size(), -1);
  int64_t slots = 0;
  for (size_t u = 0; u < units.size(); ++u)
    if (plan.unit_pieces[u + 1] - plan.unit_pieces[u] > 1)
      for (int64_t i = plan.unit_pieces[u]; i < plan.unit_pieces[u + 1]; ++i) slot[size_t(i)] = slots++;

  const int64_t floats = ThreadWork::floats(p);
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
    return Partial{base, base + kMaxUnitRows, base + 2 * kMaxUnitRows};
  };

  const DecodeRunner run(dp, ctx);
  std::vector<std::optional<ThreadWork>> work(static_cast<size_t>(threads));
  std::atomic<bool> aborted{false}, out_of_memory{false};
  parallel_for(threads, int64_t(plan.tasks.size()) - 1, [&](int64_t task, int thread) {
    if (aborted.load(std::memory_order_relaxed) || out_of_memory.load(std::memory_order_relaxed)) return;
    std::optional<ThreadWork>& w = work[size_t(thread)];
    if (!w) {
      float* arena = thread_arena(floats);
      if (!arena) { out_of_memory = true; return; }
      w.emplace(p, arena);
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
