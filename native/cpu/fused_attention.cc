// FlashAttention-2-style forward pass on the CPU (Dao 2023, Alg. 1). A unit of
// work is (sequence, query head, block of kBlockQ query rows); K/V stream
// through in blocks of kKeyBlock keys with the online softmax (running max m,
// sum l, rescaled accumulator), so memory is O(S·D). Blocks outside every row's
// visible key interval are never touched; blocks inside all of them skip
// per-element masks. Padded [B, S, H, D] and packed varlen [T, H, D] batches
// run the same code: SequenceView gives each sequence's rows and lengths.
//
// Scheduling: units are ordered (sequence, kv head, query head of the group,
// query block), exist only for each sequence's real query rows, and are cut
// into contiguous chunks of equal cost (visible keys), claimed dynamically. So
// work is scheduled by cost, not batch × longest length (ByteTransformer):
// one long sequence among many short ones is split across threads by its query
// blocks. Units that share a kv head run back to back on one thread, so its
// KvBlockCache packs each K/V block once per thread instead of once per query
// block, and causal or ragged work stays balanced.
#include <algorithm>
#include <atomic>
#include <cmath>
#include <cstring>
#include <limits>
#include <optional>
#include <vector>

#include "core/sequence_view.h"
#include "cpu/attention_cpu.h"
#include "cpu/bf16_dot_kernels.h"
#include "cpu/cache_prefetch.h"
#include "cpu/cpu_features.h"
#include "cpu/kv_block_cache.h"
#include "cpu/microkernels.h"
#include "cpu/scratch.h"
#include "cpu/score_policy.h"
#include "cpu/thread_pool.h"
#include "cpu/tile_pack.h"
#include "cpu/work_partition.h"

namespace fmha {
namespace {

constexpr int kBlockQ = 64;
constexpr int kKeyBlock = KvBlockCache::kKeyBlock;
constexpr int kChunksPerThread = 4;           // slack for dynamic balancing on a shared machine
// Below this many FLOPs per thread an extra thread costs more than it saves
// (measured: 8.4 MFLOP is faster on 1 thread, 16.8 on 2).
constexpr double kMinFlopsPerThread = 6e6;

// One thread's working set: query block, score tile, accumulator and the K/V
// cache, carved out of the thread's persistent arena. With `pairs` (bfloat16
// on AVX512-BF16) q holds bf16 pairs and p16 the bf16 copy of P.
struct ThreadWork {
  float *q, *s, *acc, *m, *l, *alpha;
  uint16_t* p16;
  KeyRange* ranges;
  const Bf16DotKernels* pairs;
  std::optional<KvBlockCache> cache;

  static int64_t floats(const AttentionParams& p) {
    return kBlockQ * (sizeof(KeyRange) / sizeof(float)) + kBlockQ * (p.D + 1) + kBlockQ * kKeyBlock +
           kBlockQ * p.Dv + 3 * kBlockQ + kBlockQ * kKeyBlock / 2 + KvBlockCache::floats(p);
  }
  ThreadWork(const AttentionParams& p, const CpuMicrokernels& mk, const Bf16DotKernels* pairs_, float* base)
      : pairs(pairs_) {
    ranges = reinterpret_cast<KeyRange*>(base);  // first: the arena is 64-byte aligned
    base += kBlockQ * (sizeof(KeyRange) / sizeof(float));
    q = base;    base += kBlockQ * (p.D + 1);
    s = base;    base += kBlockQ * kKeyBlock;
    acc = base;  base += kBlockQ * p.Dv;
    m = base;    base += kBlockQ;
    l = base;    base += kBlockQ;
    alpha = base; base += kBlockQ;
    p16 = reinterpret_cast<uint16_t*>(base);  base += kBlockQ * kKeyBlock / 2;
    cache.emplace(p, mk, pairs, base);
  }
};

struct Unit {
  int64_t b, h, i0;  // sequence, query head, first query row of the block (within the sequence)
};

// Every unit in (sequence, kv head, query head of the group, query block)
// order: h = hk·group + g, so (b, h) order is that order. An empty sequence has none.
std::vector<Unit> enumerate_units(const AttentionParams& p) {
  std::vector<Unit> units;
  for (int64_t b = 0; b < p.B; ++b) {
    const int64_t sq = sequence_view(p, b).sq;
    for (int64_t h = 0; h < p.Hq; ++h)
      for (int64_t i0 = 0; i0 < sq; i0 += kBlockQ) units.push_back({b, h, i0});
  }
  return units;
}

// Asks for the rows unit n reads and writes first (its query and output rows;
// its first key block's K and V rows unless it shares cur's kv head, whose
// blocks this thread has packed), so that a short sequence, all of whose data
// is new, does not wait on memory row by row.
void prefetch_unit(const AttentionParams& p, Unit n, Unit cur) {
  const SequenceView seq = sequence_view(p, n.b);
  const int64_t es = dtype_size(p.dtype), group = p.Hq / p.Hkv;
  const int64_t rows = std::min<int64_t>(kBlockQ, seq.sq - n.i0);
  prefetch_rows(row_ptr(p.q, p.dtype, seq.q_at(p, n.i0, n.h)), p.q_stride[1] * es, rows, p.D * es, false);
  prefetch_rows(row_ptr(p.out, p.dtype, seq.out_at(p, n.i0, n.h)), p.o_stride[1] * es, rows, p.Dv * es, true);
  if (n.b == cur.b && n.h / group == cur.h / group) return;
  const KeyRange kr = ScorePolicy(p, seq, n.h).keys(n.i0);
  if (kr.hi <= kr.lo) return;
  const int64_t j0 = kr.lo / kKeyBlock * kKeyBlock, keys = std::min<int64_t>(kKeyBlock, seq.sk - j0);
  prefetch_rows(row_ptr(p.k, p.dtype, seq.k_at(p, j0, n.h / group)), p.k_stride[1] * es, keys, p.D * es, false);
  prefetch_rows(row_ptr(p.v, p.dtype, seq.v_at(p, j0, n.h / group)), p.v_stride[1] * es, keys, p.Dv * es, false);
}

// One unit; `next` (or null) is the unit this thread runs after it. Returns false when aborted.
bool query_block(const AttentionParams& p, const ExecContext& ctx, const CpuMicrokernels& mk, Unit u,
                 const Unit* next, ThreadWork& w) {
  const SequenceView seq = sequence_view(p, u.b);
  const int rows = int(std::min<int64_t>(kBlockQ, seq.sq - u.i0));
  const int64_t hk = u.h / (p.Hq / p.Hkv);
  const int D = int(p.D), Dv = int(p.Dv);
  const ScorePolicy policy(p, seq, u.h);
  const float ninf = -std::numeric_limits<float>::infinity();

  // Union and intersection of the rows' visible key intervals.
  int64_t k_begin = std::numeric_limits<int64_t>::max(), k_end = 0;
  int64_t all_lo = 0, all_hi = std::numeric_limits<int64_t>::max();
  for (int r = 0; r < rows; ++r) {
    const KeyRange kr = policy.keys(u.i0 + r);
    w.ranges[r] = kr;
    if (kr.hi > kr.lo) { k_begin = std::min(k_begin, kr.lo); k_end = std::max(k_end, kr.hi); }
    all_lo = std::max(all_lo, kr.lo);
    all_hi = std::min(all_hi, kr.hi);
    w.m[r] = ninf;
    w.l[r] = 0.0f;
  }
  std::fill(w.acc, w.acc + int64_t(rows) * Dv, 0.0f);

  // Query rows as the gemm reads them; the softmax scale is in the cached Kᵀ
  // (float path) or applied to the scores (bf16 pairs). float32 rows are read
  // in place when one key block uses them; for more, they are copied, since
  // rows a [T, H, D] row apart alias in the cache and would be fetched again
  // for every key block.
  const void* q0 = row_ptr(p.q, p.dtype, seq.q_at(p, u.i0, u.h));
  const bool one_key_block = k_end <= k_begin || (k_end - 1) / kKeyBlock == k_begin / kKeyBlock;
  const int Dp = (D + 1) / 2;  // Q row length in bf16 pairs
  const float* qa = w.q;       // float32 query rows with leading dimension lda
  int64_t lda = D;
  if (w.pairs) {  // raw bf16 rows, zero-padded to whole pairs
    uint16_t* q16 = reinterpret_cast<uint16_t*>(w.q);
    for (int r = 0; r < rows; ++r) {
      std::memcpy(q16 + r * 2 * Dp, static_cast<const uint16_t*>(q0) + r * p.q_stride[1], sizeof(uint16_t) * D);
      if (D % 2) q16[r * 2 * Dp + D] = 0;
    }
  } else if (p.dtype == DType::F32 && one_key_block) {
    qa = static_cast<const float*>(q0);
    lda = p.q_stride[1];
  } else {
    pack_rows(mk, q0, p.dtype, p.q_stride[1], rows, D, 1.0f, w.q, D);
  }
  w.cache->select(seq, hk, seq.sq > kBlockQ || p.Hq > p.Hkv);

  // Whole cached blocks covering the visible keys; keys outside a row's interval are masked.
  for (int64_t blk = k_begin / kKeyBlock; blk * kKeyBlock < k_end; ++blk) {
    if (ctx.aborted()) return false;
    const int64_t j0 = blk * kKeyBlock;
    const int n = int(std::min<int64_t>(kKeyBlock, k_end - j0));  // keys past k_end are visible to no row
    if (w.pairs)
      w.pairs->gemm(reinterpret_cast<const uint32_t*>(w.q), Dp, reinterpret_cast<const uint32_t*>(w.cache->kt(blk)),
                    kKeyBlock, w.s, kKeyBlock, rows, n, Dp, false, nullptr, p.scale);
    else
      mk.gemm(qa, lda, w.cache->kt(blk), kKeyBlock, w.s, kKeyBlock, rows, n, D, false, nullptr);
    if ((blk + 1) * kKeyBlock < k_end) w.cache->prefetch(blk + 1);
    else if (next) prefetch_unit(p, *next, u);

    const bool needs_mask = j0 < all_lo || j0 + n > all_hi;
    if (needs_mask || policy.has_hooks())
      for (int r = 0; r < rows; ++r) policy.apply(w.s + r * kKeyBlock, u.i0 + r, j0, n, w.ranges[r], needs_mask);
    mk.online_softmax(w.s, kKeyBlock, rows, n, w.m, w.l, w.alpha);
    // acc = diag(alpha)·acc + P·V: the rescale rides on the accumulator load.
    if (w.pairs) {
      w.pairs->to_bf16(w.s, kKeyBlock, rows, n, w.p16, kKeyBlock);
      w.pairs->gemm(reinterpret_cast<const uint32_t*>(w.p16), kKeyBlock / 2,
                    reinterpret_cast<const uint32_t*>(w.cache->v(blk)), Dv, w.acc, Dv, rows, Dv, (n + 1) / 2, true,
                    w.alpha, 1.0f);
    } else {
      mk.gemm(w.s, kKeyBlock, w.cache->v(blk), w.cache->v_ld(), w.acc, Dv, rows, Dv, n, true, w.alpha);
    }
  }

  for (int r = 0; r < rows; ++r) {
    const int64_t i = u.i0 + r;
    const float l = w.l[r];
    void* o = static_cast<char*>(p.out) + seq.out_at(p, i, u.h) * dtype_size(p.dtype);
    mk.store_row(w.acc + int64_t(r) * Dv, l > 0 ? 1.0f / l : 0.0f, Dv, p.dtype, o);
    if (p.lse) p.lse[seq.lse_at(p, i, u.h)] = l > 0 ? w.m[r] + std::log(l) : ninf;
  }
  return true;
}

// Cost prefix over units: visible (query, key) pairs plus a per-row term for
// the softmax and output work that does not scale with keys. *pairs gets the
// total of visible pairs alone.
std::vector<int64_t> unit_cost_prefix(const AttentionParams& p, const std::vector<Unit>& units, int64_t* visible) {
  *visible = 0;
  std::vector<int64_t> prefix(units.size() + 1, 0);
  for (size_t u = 0; u < units.size(); ++u) {
    const Unit& un = units[u];
    const SequenceView seq = sequence_view(p, un.b);
    const ScorePolicy policy(p, seq, un.h);
    const int64_t rows = std::min<int64_t>(kBlockQ, seq.sq - un.i0);
    int64_t cost = rows * (p.D + p.Dv);
    for (int64_t r = 0; r < rows; ++r) {
      const KeyRange kr = policy.keys(un.i0 + r);
      cost += std::max<int64_t>(0, kr.hi - kr.lo);
      *visible += std::max<int64_t>(0, kr.hi - kr.lo);
    }
    prefix[u + 1] = prefix[u] + cost;
  }
  return prefix;
}

}  // namespace

Status fused_attention_cpu(const AttentionParams& p, const ExecContext& ctx) {
  const std::vector<Unit> units = enumerate_units(p);
  if (units.empty()) return {};

  int64_t visible = 0;
  const std::vector<int64_t> prefix = unit_cost_prefix(p, units, &visible);
  const double flops = 2.0 * double(p.D + p.Dv) * double(visible);
  const int threads = int(std::max<int64_t>(1, std::min<int64_t>(
      std::min<int64_t>(ctx.num_threads, int64_t(units.size())), int64_t(flops / kMinFlopsPerThread))));
  const std::vector<int64_t> chunks = equal_cost_chunks(prefix, int64_t(threads) * kChunksPerThread);

  const int64_t floats = ThreadWork::floats(p);
  Status st = check_scratch(threads, floats, ctx.max_scratch_bytes, "fused attention");
  if (!st.ok()) return st;

  const CpuMicrokernels& mk = cpu_microkernels(cpu_features().isa);
  const Bf16DotKernels* pairs = p.dtype == DType::BF16 ? bf16_dot_kernels() : nullptr;
  std::vector<std::optional<ThreadWork>> work(static_cast<size_t>(threads));  // built on each thread's first chunk
  std::atomic<bool> aborted{false}, out_of_memory{false};
  parallel_for(threads, int64_t(chunks.size()) - 1, [&](int64_t c, int thread) {
    if (aborted.load(std::memory_order_relaxed) || out_of_memory.load(std::memory_order_relaxed)) return;
    std::optional<ThreadWork>& w = work[size_t(thread)];
    if (!w) {
      float* arena = thread_arena(floats);
      if (!arena) { out_of_memory = true; return; }
      w.emplace(p, mk, pairs, arena);
    }
    const int64_t end = chunks[size_t(c) + 1];
    for (int64_t u = chunks[size_t(c)]; u < end; ++u)
      if (!query_block(p, ctx, mk, units[size_t(u)], u + 1 < end ? &units[size_t(u) + 1] : nullptr, *w)) {
        aborted = true;
        return;
      }
  });
  if (out_of_memory)
    return {StatusCode::OutOfMemory, "fused attention: allocating " + std::to_string(floats * 4) +
                                         " bytes of per-thread scratch failed"};
  if (aborted) return {StatusCode::Aborted, "aborted"};
  return {};
}

}  // namespace fmha
