// Decode over a KV cache on CUDA: LeanAttention's stream-K schedule (DESIGN §5)
// with an in-kernel "last arriver merges" fix-up.
//
// Units. A unit is one (sequence, kv head, block of 16 query rows): the rows of
// kv head g are its group's Hq/Hkv query heads × Sq new tokens (row x: query
// head g·group + x / Sq, token x % Sq, the CPU's row order), so K/V are read
// once per 16 rows. For group·Sq ≤ 16 (every GQA/MHA decode with Sq·group ≤ 16)
// that is exactly DESIGN's (sequence, kv head) unit; larger groups (MQA with
// many heads, long speculative Sq) get ceil(group·Sq / 16) units per pair,
// which read the same K/V again (mostly from L2). A unit's cost is its key
// tiles: the union over its rows of the visible keys [lo, hi) (causal, window),
// cut into tiles of kN keys.
//
// Plan. The host enumerates units and spans from a host copy of the cache
// lengths, calls core/decode_partition's plan_decode (shared with the CPU),
// and uploads pieces (unit, first tile, end tile, partial slot), tasks and
// per-unit piece ranges. CTA t runs tasks[t]'s pieces in order: 'lean' is a
// persistent grid of `workers` CTAs each with one contiguous range of the
// global tile sequence (crossing unit boundaries); 'split'/'single' one CTA per
// piece. The same kernel serves all three.
//
// Piece. 128 threads. K and V tiles of kN keys stream through shared memory
// (double-buffered: cp.async of 16/8/4 bytes when every row start allows, else
// plain 2-byte copies), in the cache's dtype; one tile ahead is in flight while
// the current one is computed. fp32 math throughout:
//   scores   thread = (key, part): `parts` = 128 / kN lanes split a key's D by
//            16-byte vectors, each holding all 16 rows' partial dots; q is in
//            shared memory as fp32 [d][16 rows] (float4 broadcast reads); the
//            parts are combined by xor-shuffles. K rows are padded to an odd
//            number of 16-byte vectors, so 8 lanes reading 8 keys' vectors hit
//            32 distinct banks.
//   softmax  warp per row (rows w, w+4, ...): hooks and masks from
//            score_policy.cuh (scale, softcap, ALiBi; keys outside [lo, hi) of
//            the row's token -> −inf), online max/sum; the rescale factor is
//            exactly 1 while the row max holds (as on the CPU).
//   P·V      thread = (columns ct, ct + CT; rows rg, rg + RG, ...) with CT the
//            power of two ≥ Dv in [32, 128]; each tile's P·V goes to pv, then
//            acc = alpha·acc + pv (one rounding per tile at the accumulator's
//            magnitude, as on the CPU).
// A unit with one piece normalizes and writes out/lse itself.
//
// Fix-up ("last arriver merges", no spinning). A piece of a unit cut into k > 1
// pieces writes its unnormalized state (m, l, acc) to its fp32 slot, fences
// (__threadfence) and bumps the unit's counter (atomicAdd); the CTA that sees
// k − 1 there fences again and merges all k slots in piece order with the exact
// log-sum-exp rule (M = max m_i; c_i = exp(m_i − M); L = Σ l_i c_i;
// acc = Σ acc_i c_i), reading them through L2 (__ldcg). No CTA ever waits for
// another, so it cannot deadlock whether or not all CTAs are resident, and the
// result does not depend on which CTA arrived last (every slot, its own
// included, is read back in piece order). Counters are uploaded as zeros with
// the plan, so no memset is needed.
//
// Fused append (k_new/v_new): a small copy kernel on the same stream, before
// the attention kernel.
//
// Rows that see no key: m stays −inf, l 0 -> out 0, lse −inf.
//
// tools/decode_index_model.py replays this file's index math (plan, shared-memory
// layout, lane mappings, merge under random CTA orders) on the CPU: keep them in step.
#include <cuda_runtime.h>

#include <algorithm>
#include <cstdint>
#include <limits>
#include <string>
#include <vector>

#include "core/decode_partition.h"
#include "core/device.h"
#include "cuda_check.h"
#include "decode_cuda.h"
#include "kernel_args.h"
#include "mma_sm80.cuh"
#include "plan_upload.h"
#include "score_policy.cuh"

namespace fmha {
namespace cudak {
namespace {

constexpr int kThreads = 128;
constexpr int kRows = 16;                   // query rows per unit
constexpr int kSPitch = 128;                // s_s row pitch in floats (the largest kN): immediate offsets
constexpr int kStageBytes = 40 << 10;       // K + V bytes of one tile (the pipeline has two)
constexpr int64_t kMinTilesPerCta = 2;      // 'lean': fewer CTAs when tiles are scarce
constexpr int kMaxCtasPerSm = 2;            // 'lean' workers = SMs × min(this, occupancy)

// ------------------------------------------------------------------ arguments

struct DecodeArgs {
  const void* q;
  void* out;
  float* lse;  // null: not requested
  int64_t q_s0, q_s1, q_s2, o_s0, o_s1, o_s2, lse_s0, lse_s1;
  const void* k;
  const void* v;
  int64_t k_s0, k_s1, k_s2, v_s0, v_s1, v_s2;  // (sequence or page, row, head), elements
  const int32_t* block_table;                  // null: contiguous
  int64_t max_pages;
  int page_size;
  const int32_t* seq_ids;        // null: row b reads sequence b
  const int32_t* cache_seqlens;  // device
  const float* alibi;            // [Hq] or null
  int Sq, Hkv, group, rows, row_blocks, D, Dv;
  int causal, window_left, window_right;  // windows clamped (kernel_args.h's clamp_window)
  float scale, softcap, softcap_inv;
  // Tile geometry (host: pick_geometry).
  int kN;              // keys per tile: 16, 32, 64 or 128
  int k_ld, v_ld;      // shared-memory row pitch, bytes (multiples of 16)
  int k_vecs;          // 16-byte vectors of a K row that hold data (D·es rounded up)
  int q_dims;          // k_vecs · (16 / es): rows of sQ (zero past D)
  int k_chunk, v_chunk;  // bytes per global->shared copy: 16/8/4 cp.async, 2 plain
  int pv_cols;         // CT
  int off_v, off_q, off_s, off_off, off_small;  // shared-memory carve-up, bytes
  // The plan.
  const int4* pieces;      // (unit, tile begin, tile end, partial slot or -1)
  const int* tasks;        // [tasks + 1]
  const int* unit_pieces;  // [units + 1]
  int* counters;           // [units], zero
  float* partials;         // slots × slot_floats: m[16], l[16], acc[16][Dv]
  int64_t slot_floats;
};

struct AppendArgs {
  const void* k_new;
  const void* v_new;
  int64_t kn0, kn1, kn2, vn0, vn1, vn2;
  void* k;
  void* v;
  int64_t k_s0, k_s1, k_s2, v_s0, v_s1, v_s2;
  const int32_t* block_table;
  int64_t max_pages;
  int page_size;
  const int32_t* seq_ids;
  const int32_t* cache_seqlens;
  int B, Sq, Hkv, D, Dv;
};

// ------------------------------------------------------------ device helpers

// 16 bytes of the cache's dtype as floats.
template <typename T> struct Vec16;
template <> struct Vec16<float> {
  static constexpr int kE = 4;
  __device__ __forceinline__ static void unpack(const uint4& r, float (&f)[kE]) {
    f[0] = __uint_as_float(r.x); f[1] = __uint_as_float(r.y);
    f[2] = __uint_as_float(r.z); f[3] = __uint_as_float(r.w);
  }
};
template <> struct Vec16<__half> {
  static constexpr int kE = 8;
  __device__ __forceinline__ static void unpack(const uint4& r, float (&f)[kE]) {
    const uint32_t w[4] = {r.x, r.y, r.z, r.w};
#pragma unroll
    for (int i = 0; i < 4; ++i) {
      __half2 h;
      memcpy(&h, &w[i], 4);
      const float2 x = __half22float2(h);
      f[2 * i] = x.x;
      f[2 * i + 1] = x.y;
    }
  }
};
template <> struct Vec16<__nv_bfloat16> {
  static constexpr int kE = 8;
  __device__ __forceinline__ static void unpack(const uint4& r, float (&f)[kE]) {
    const uint32_t w[4] = {r.x, r.y, r.z, r.w};
#pragma unroll
    for (int i = 0; i < 4; ++i) {  // bf16 -> f32 is a shift
      f[2 * i] = __uint_as_float(w[i] << 16);
      f[2 * i + 1] = __uint_as_float(w[i] & 0xffff0000u);
    }
  }
};

template <int kBytes>
__device__ __forceinline__ void copy_chunk(char* dst, const char* src) {
  if constexpr (kBytes == 16) {
    asm volatile("cp.async.cg.shared.global [%0], [%1], 16;\n" ::"r"(smem_u32(dst)), "l"(src));
  } else if constexpr (kBytes == 8 || kBytes == 4) {
    asm volatile("cp.async.ca.shared.global [%0], [%1], %2;\n" ::"r"(smem_u32(dst)), "l"(src), "n"(kBytes));
  } else {
    *reinterpret_cast<uint16_t*>(dst) = *reinterpret_cast<const uint16_t*>(src);
  }
}

// n rows of nch chunks each: row r from base + off[r]·es bytes into dst + r·ld.
// Consecutive threads take consecutive chunks of a row (coalesced); the
// (row, chunk) pair advances by 128 chunks per step without a division.
template <int kBytes>
__device__ __forceinline__ void copy_rows(char* dst, int ld, const char* base, const int64_t* off, int es, int n,
                                          int nch) {
  int key = int(threadIdx.x) / nch, c = int(threadIdx.x) - key * nch;
  const int dk = kThreads / nch, dc = kThreads - dk * nch;
  while (key < n) {
    copy_chunk<kBytes>(dst + key * ld + c * kBytes, base + off[key] * es + c * kBytes);
    c += dc;
    key += dk;
    if (c >= nch) {
      c -= nch;
      ++key;
    }
  }
}

__device__ __forceinline__ void copy_rows_any(int chunk, char* dst, int ld, const char* base, const int64_t* off,
                                              int es, int n, int row_bytes) {
  switch (chunk) {
    case 16: copy_rows<16>(dst, ld, base, off, es, n, row_bytes / 16); break;
    case 8: copy_rows<8>(dst, ld, base, off, es, n, row_bytes / 8); break;
    case 4: copy_rows<4>(dst, ld, base, off, es, n, row_bytes / 4); break;
    default: copy_rows<2>(dst, ld, base, off, es, n, row_bytes / 2); break;
  }
}

// Enqueues the copy of keys [j0, j0 + n) of (sequence seq, kv head g) into
// pipeline stage `stage` and commits one cp.async group. Block-wide (one barrier).
template <typename T>
__device__ __forceinline__ void issue_tile(const DecodeArgs& a, char* smem, int64_t* s_off, int stage, int seq, int g,
                                           int j0, int n) {
  const int tid = int(threadIdx.x);
  int64_t* ko = s_off + 2 * stage * a.kN;
  int64_t* vo = ko + a.kN;
  if (tid < n) {
    const int j = j0 + tid;
    int64_t outer = seq, row = j;
    if (a.block_table) {
      outer = a.block_table[int64_t(seq) * a.max_pages + j / a.page_size];
      row = j % a.page_size;
    }
    ko[tid] = outer * a.k_s0 + row * a.k_s1 + int64_t(g) * a.k_s2;
    vo[tid] = outer * a.v_s0 + row * a.v_s1 + int64_t(g) * a.v_s2;
  }
  __syncthreads();
  constexpr int es = int(sizeof(T));
  copy_rows_any(a.k_chunk, smem + stage * a.kN * a.k_ld, a.k_ld, static_cast<const char*>(a.k), ko, es, n, a.D * es);
  copy_rows_any(a.v_chunk, smem + a.off_v + stage * a.kN * a.v_ld, a.v_ld, static_cast<const char*>(a.v), vo, es, n,
                a.Dv * es);
  cp_async_commit();
}

__device__ __forceinline__ float warp_max(float x) {
#pragma unroll
  for (int off = 16; off > 0; off >>= 1) x = fmaxf(x, __shfl_xor_sync(0xffffffffu, x, off));
  return x;
}
__device__ __forceinline__ float warp_sum(float x) {
#pragma unroll
  for (int off = 16; off > 0; off >>= 1) x += __shfl_xor_sync(0xffffffffu, x, off);
  return x;
}

// The P·V / merge / output thread mapping: columns ct + CT·ci (ci < 2), rows
// row0 + jj (jj < rpt = 16 / RG): a contiguous run, so a row's shared-memory
// address is one base plus an immediate offset.
struct PvMap {
  int ct, CT, row0, rpt;
  __device__ __forceinline__ int row(int jj) const { return row0 + jj; }
  __device__ __forceinline__ bool has(int jj, int nrows) const { return jj < rpt && row0 + jj < nrows; }
  __device__ __forceinline__ int col(int ci) const { return ct + CT * ci; }
};

// Normalizes a unit's rows into out (q's dtype) and lse.
template <typename T>
__device__ __forceinline__ void write_output(const DecodeArgs& a, const PvMap& pm, const float (&o)[2][kRows],
                                             const float* s_m, const float* s_l, int b, int g, int x0, int nrows) {
  T* out = static_cast<T*>(a.out);
#pragma unroll
  for (int jj = 0; jj < kRows; ++jj) {
    const int j = pm.row(jj);
    if (pm.has(jj, nrows)) {
      const int x = x0 + j, h = g * a.group + x / a.Sq, t = x % a.Sq;
      const float l = s_l[j];
      const float inv = l > 0.0f ? 1.0f / l : 0.0f;
      T* orow = out + (int64_t(b) * a.o_s0 + int64_t(t) * a.o_s1 + int64_t(h) * a.o_s2);
#pragma unroll
      for (int ci = 0; ci < 2; ++ci) {
        const int c = pm.col(ci);
        if (c < a.Dv) orow[c] = from_f32<T>(o[ci][jj] * inv);
      }
    }
  }
  const int tid = int(threadIdx.x);
  if (a.lse && tid < nrows) {
    const int x = x0 + tid, h = g * a.group + x / a.Sq, t = x % a.Sq;
    const float l = s_l[tid];
    a.lse[int64_t(b) * a.lse_s0 + int64_t(h) * a.lse_s1 + t] = l > 0.0f ? s_m[tid] + logf(l) : -INFINITY;
  }
}

// ------------------------------------------------------------------- kernels

template <typename T>
__global__ void __launch_bounds__(kThreads, kMaxCtasPerSm) decode_kernel(const DecodeArgs a) {
  extern __shared__ __align__(16) char smem[];
  float* s_q = reinterpret_cast<float*>(smem + a.off_q);  // [q_dims][kRows]
  float* s_s = reinterpret_cast<float*>(smem + a.off_s);  // [kRows][kSPitch]: scores, then P; merge coefficients
  int64_t* s_off = reinterpret_cast<int64_t*>(smem + a.off_off);  // [stage][k | v][kN]
  float* s_alpha = reinterpret_cast<float*>(smem + a.off_small);
  float* s_m = s_alpha + kRows;
  float* s_l = s_m + kRows;
  float* s_slope = s_l + kRows;  // per row: ALiBi slope, token, visible keys [lo, hi)
  int* s_t = reinterpret_cast<int*>(s_slope + kRows);
  int* s_lo = s_t + kRows;
  int* s_hi = s_lo + kRows;
  int* s_flag = s_hi + kRows;

  const int tid = int(threadIdx.x), lane = tid & 31, warp = tid >> 5;
  const int kN = a.kN;
  constexpr int kE = Vec16<T>::kE;

  // K pad columns (past D in the last 16-byte vector) meet zero q entries and
  // are never written by the copies: zero them once (0·garbage could be NaN).
  for (int i = tid * 16; i < a.off_v; i += kThreads * 16) *reinterpret_cast<uint4*>(smem + i) = make_uint4(0, 0, 0, 0);

  // Score mapping: lane = part·kpw + kl; key = warp·kpw + kl.
  const int kpw = kN >> 2, parts = 32 / kpw;
  const int kl = lane & (kpw - 1), part = lane / kpw;
  const int skey = warp * kpw + kl;
  PvMap pm;
  pm.CT = a.pv_cols;
  pm.rpt = kRows * pm.CT / kThreads;
  pm.ct = tid & (pm.CT - 1);
  pm.row0 = tid / pm.CT * pm.rpt;

  const int p_end = a.tasks[blockIdx.x + 1];
  for (int pi = a.tasks[blockIdx.x]; pi < p_end; ++pi) {
    const int4 pc = a.pieces[pi];
    const int unit = pc.x;
    const int rb = unit % a.row_blocks, bg = unit / a.row_blocks;
    const int g = bg % a.Hkv, b = bg / a.Hkv;
    const int x0 = rb * kRows, nrows = min(kRows, a.rows - x0);
    const int sk = a.cache_seqlens[b];
    const int seq = a.seq_ids ? a.seq_ids[b] : b;
    const MaskRule rule{sk - a.Sq, sk, a.causal, a.window_left, a.window_right};
    const int first = a.unit_pieces[unit], npieces = a.unit_pieces[unit + 1] - first;

    __syncthreads();  // the previous piece is done with shared memory (and the K zero-fill is visible)
    const T* q = static_cast<const T*>(a.q);
    for (int i = tid; i < a.q_dims * kRows; i += kThreads) {
      const int d = i >> 4, j = i & (kRows - 1);
      float val = 0.0f;
      if (j < nrows && d < a.D) {
        const int x = x0 + j, h = g * a.group + x / a.Sq, t = x % a.Sq;
        val = to_f32<T>(q[int64_t(b) * a.q_s0 + int64_t(t) * a.q_s1 + int64_t(h) * a.q_s2 + d]);
      }
      s_q[i] = val;
    }

    if (tid < nrows) {  // the rows' constants (read after the first tile's barrier)
      const int x = x0 + tid, h = g * a.group + x / a.Sq, t = x % a.Sq;
      s_t[tid] = t;
      s_lo[tid] = rule.lo(t);
      s_hi[tid] = rule.hi(t);
      s_slope[tid] = a.alibi ? a.alibi[h] : 0.0f;
    }
    // Softmax state: warp w owns rows w + 4r.
    float m_r[4], l_r[4];
#pragma unroll
    for (int r = 0; r < 4; ++r) {
      m_r[r] = -INFINITY;
      l_r[r] = 0.0f;
    }

    float o[2][kRows];
#pragma unroll
    for (int ci = 0; ci < 2; ++ci)
#pragma unroll
      for (int jj = 0; jj < kRows; ++jj) o[ci][jj] = 0.0f;

    const int nt = pc.z - pc.y;
    if (nt > 0) issue_tile<T>(a, smem, s_off, 0, seq, g, pc.y * kN, min(kN, sk - pc.y * kN));
    for (int it = 0; it < nt; ++it) {
      const int stage = it & 1;
      const int j0 = (pc.y + it) * kN, n = min(kN, sk - j0);
      if (it + 1 < nt) issue_tile<T>(a, smem, s_off, stage ^ 1, seq, g, j0 + kN, min(kN, sk - j0 - kN));
      else cp_async_commit();  // an empty group keeps wait_group<1> meaning "this tile has landed"
      cp_async_wait<1>();
      __syncthreads();

      // ---- scores: s[j] = q_j · k_key over this lane's vectors, then across parts.
      {
        const char* krow = smem + (stage * kN + skey) * a.k_ld;
        const int nq4 = (nrows + 3) >> 2;
        float s[kRows];
#pragma unroll
        for (int j = 0; j < kRows; ++j) s[j] = 0.0f;
        for (int vi = part; vi < a.k_vecs; vi += parts) {
          const uint4 raw = *reinterpret_cast<const uint4*>(krow + vi * 16);
          float kf[kE];
          Vec16<T>::unpack(raw, kf);
          const float4* q4 = reinterpret_cast<const float4*>(s_q + vi * kE * kRows);
#pragma unroll
          for (int e = 0; e < kE; ++e) {
#pragma unroll
            for (int j4 = 0; j4 < kRows / 4; ++j4) {
              if (j4 < nq4) {
                const float4 qq = q4[e * (kRows / 4) + j4];
                s[4 * j4 + 0] = fmaf(qq.x, kf[e], s[4 * j4 + 0]);
                s[4 * j4 + 1] = fmaf(qq.y, kf[e], s[4 * j4 + 1]);
                s[4 * j4 + 2] = fmaf(qq.z, kf[e], s[4 * j4 + 2]);
                s[4 * j4 + 3] = fmaf(qq.w, kf[e], s[4 * j4 + 3]);
              }
            }
          }
        }
        for (int off = kpw; off < 32; off <<= 1) {
#pragma unroll
          for (int j = 0; j < kRows; ++j)
            if (j < nrows) s[j] += __shfl_xor_sync(0xffffffffu, s[j], off);
        }
#pragma unroll
        for (int j = 0; j < kRows; ++j)
          if (j < nrows && (j & (parts - 1)) == part) s_s[j * kSPitch + skey] = s[j];
      }
      __syncthreads();

      // ---- softmax: warp per row; hooks, masks, online max / sum; P into s_s.
#pragma unroll
      for (int r = 0; r < 4; ++r) {
        const int j = warp + 4 * r;
        if (j < nrows) {
          ScoreHooks<T> hk;
          hk.scale = a.scale;
          hk.softcap = a.softcap;
          hk.softcap_inv = a.softcap_inv;
          hk.slope = s_slope[j];
          hk.bias = nullptr;
          hk.bias_row = 0;
          const int t = s_t[j], lo = s_lo[j], hi = s_hi[j], diag = t + rule.offset;
          float sv[4];
          float mx = -INFINITY;
#pragma unroll
          for (int c = 0; c < 4; ++c) {
            const int kk = lane + 32 * c, key = j0 + kk;
            float val = -INFINITY;
            if (kk < n && key >= lo && key < hi) val = hk(s_s[j * kSPitch + kk], t, key, diag);
            sv[c] = val;
            mx = fmaxf(mx, val);
          }
          mx = warp_max(mx);
          const float m_new = fmaxf(m_r[r], mx);
          float alpha = 1.0f, sum = 0.0f;
          if (m_new != -INFINITY) {  // else nothing visible yet: P = 0, alpha = 1
            alpha = m_r[r] == m_new ? 1.0f : expf(m_r[r] - m_new);  // 0 when m was −inf
#pragma unroll
            for (int c = 0; c < 4; ++c) {
              sv[c] = expf(sv[c] - m_new);
              sum += sv[c];
            }
          } else {
#pragma unroll
            for (int c = 0; c < 4; ++c) sv[c] = 0.0f;
          }
          sum = warp_sum(sum);
          l_r[r] = l_r[r] * alpha + sum;
          m_r[r] = m_new;
#pragma unroll
          for (int c = 0; c < 4; ++c) {
            const int kk = lane + 32 * c;
            if (kk < kN) s_s[j * kSPitch + kk] = sv[c];
          }
          if (lane == 0) s_alpha[j] = alpha;
        }
      }
      __syncthreads();

      // ---- P·V of this tile into pv, then acc = alpha·acc + pv.
      {
        const char* vt = smem + a.off_v + stage * kN * a.v_ld;
        float pv[2][kRows];
#pragma unroll
        for (int ci = 0; ci < 2; ++ci)
#pragma unroll
          for (int jj = 0; jj < kRows; ++jj) pv[ci][jj] = 0.0f;
        int kk = 0;
        for (; kk + 4 <= n; kk += 4) {
          float vv[2][4];
#pragma unroll
          for (int ci = 0; ci < 2; ++ci) {
            const int c = pm.col(ci);
#pragma unroll
            for (int u = 0; u < 4; ++u)
              vv[ci][u] = c < a.Dv ? to_f32<T>(reinterpret_cast<const T*>(vt + (kk + u) * a.v_ld)[c]) : 0.0f;
          }
#pragma unroll
          for (int jj = 0; jj < kRows; ++jj) {
            const int j = pm.row(jj);
            if (pm.has(jj, nrows)) {
              const float4 p4 = *reinterpret_cast<const float4*>(s_s + j * kSPitch + kk);
#pragma unroll
              for (int ci = 0; ci < 2; ++ci) {
                float acc = pv[ci][jj];
                acc = fmaf(p4.x, vv[ci][0], acc);
                acc = fmaf(p4.y, vv[ci][1], acc);
                acc = fmaf(p4.z, vv[ci][2], acc);
                acc = fmaf(p4.w, vv[ci][3], acc);
                pv[ci][jj] = acc;
              }
            }
          }
        }
        for (; kk < n; ++kk) {
          float vv[2];
#pragma unroll
          for (int ci = 0; ci < 2; ++ci) {
            const int c = pm.col(ci);
            vv[ci] = c < a.Dv ? to_f32<T>(reinterpret_cast<const T*>(vt + kk * a.v_ld)[c]) : 0.0f;
          }
#pragma unroll
          for (int jj = 0; jj < kRows; ++jj) {
            const int j = pm.row(jj);
            if (pm.has(jj, nrows)) {
              const float p = s_s[j * kSPitch + kk];
#pragma unroll
              for (int ci = 0; ci < 2; ++ci) pv[ci][jj] = fmaf(p, vv[ci], pv[ci][jj]);
            }
          }
        }
#pragma unroll
        for (int jj = 0; jj < kRows; ++jj) {
          const int j = pm.row(jj);
          if (pm.has(jj, nrows)) {
            const float al = s_alpha[j];
#pragma unroll
            for (int ci = 0; ci < 2; ++ci) o[ci][jj] = fmaf(o[ci][jj], al, pv[ci][jj]);
          }
        }
      }
      __syncthreads();  // this stage and s_s are free for the next issue / scores
    }

    // Row state to shared memory for the P·V-mapped threads.
#pragma unroll
    for (int r = 0; r < 4; ++r) {
      const int j = warp + 4 * r;
      if (j < nrows && lane == 0) {
        s_m[j] = m_r[r];
        s_l[j] = l_r[r];
      }
    }
    __syncthreads();
    if (npieces == 1) {
      write_output<T>(a, pm, o, s_m, s_l, b, g, x0, nrows);
      continue;
    }

    // ---- fix-up: publish this piece's partial; the last of the unit's pieces to arrive merges.
    float* mine = a.partials + int64_t(pc.w) * a.slot_floats;
    if (tid < nrows) {
      mine[tid] = s_m[tid];
      mine[kRows + tid] = s_l[tid];
    }
#pragma unroll
    for (int jj = 0; jj < kRows; ++jj) {
      const int j = pm.row(jj);
      if (pm.has(jj, nrows)) {
#pragma unroll
        for (int ci = 0; ci < 2; ++ci) {
          const int c = pm.col(ci);
          if (c < a.Dv) mine[2 * kRows + j * a.Dv + c] = o[ci][jj];
        }
      }
    }
    __threadfence();  // every thread's partial writes are visible device-wide before the count
    __syncthreads();
    if (tid == 0) {
      const int prev = atomicAdd(a.counters + unit, 1);
      __threadfence();  // order the slot reads below after every other piece's fenced writes
      *s_flag = prev == npieces - 1;
    }
    __syncthreads();
    if (!*s_flag) continue;

    const float* slots = a.partials + int64_t(a.pieces[first].w) * a.slot_floats;  // the unit's slots are consecutive
    const int64_t sf = a.slot_floats;
#pragma unroll
    for (int r = 0; r < 4; ++r) {  // M = max over pieces (order-free)
      const int j = warp + 4 * r;
      if (j < nrows) {
        float mx = -INFINITY;
        for (int i = lane; i < npieces; i += 32) mx = fmaxf(mx, __ldcg(slots + i * sf + j));
        mx = warp_max(mx);
        if (lane == 0) s_m[j] = mx;
      }
    }
#pragma unroll
    for (int ci = 0; ci < 2; ++ci)
#pragma unroll
      for (int jj = 0; jj < kRows; ++jj) o[ci][jj] = 0.0f;
    float L = 0.0f;  // thread tid < nrows: row tid's sum
    for (int i0 = 0; i0 < npieces; i0 += kSPitch) {  // chunks of 128 pieces: coefficients in s_s [kRows][kSPitch]
      __syncthreads();  // s_m written; the previous chunk's coefficients consumed
      const int cnt = min(kSPitch, npieces - i0);
      for (int idx = tid; idx < kRows * kSPitch; idx += kThreads) {
        const int j = idx / kSPitch, ii = idx % kSPitch;
        if (j < nrows && ii < cnt) {
          const float M = s_m[j];
          s_s[idx] = M == -INFINITY ? 0.0f : expf(__ldcg(slots + (i0 + ii) * sf + j) - M);
        }
      }
      __syncthreads();
      if (tid < nrows)
        for (int ii = 0; ii < cnt; ++ii) L = fmaf(__ldcg(slots + (i0 + ii) * sf + kRows + tid), s_s[tid * kSPitch + ii], L);
      for (int ii = 0; ii < cnt; ++ii) {
        const float* acc = slots + (i0 + ii) * sf + 2 * kRows;
#pragma unroll
        for (int jj = 0; jj < kRows; ++jj) {
          const int j = pm.row(jj);
          if (pm.has(jj, nrows)) {
            const float cf = s_s[j * kSPitch + ii];
#pragma unroll
            for (int ci = 0; ci < 2; ++ci) {
              const int c = pm.col(ci);
              if (c < a.Dv) o[ci][jj] = fmaf(__ldcg(acc + j * a.Dv + c), cf, o[ci][jj]);
            }
          }
        }
      }
    }
    __syncthreads();  // the last chunk's coefficients are consumed before s_l is written
    if (tid < nrows) s_l[tid] = L;
    __syncthreads();
    write_output<T>(a, pm, o, s_m, s_l, b, g, x0, nrows);
  }
}

// Fused append: k_new/v_new [B, Sq, Hkv, D|Dv] into the cache at cache_seqlens[b] − Sq + t.
// E is a same-size stand-in for the dtype (a bit copy).
template <typename E>
__global__ void __launch_bounds__(kThreads) decode_append_kernel(const AppendArgs a) {
  const int64_t total = int64_t(a.B) * a.Sq;
  for (int64_t r = blockIdx.x; r < total; r += gridDim.x) {
    const int b = int(r / a.Sq), t = int(r - int64_t(b) * a.Sq);
    const int seq = a.seq_ids ? a.seq_ids[b] : b;
    const int j = a.cache_seqlens[b] - a.Sq + t;
    if (j < 0) continue;  // the binding guarantees cache_seqlens[b] >= Sq when appending
    int64_t outer = seq, row = j;
    if (a.block_table) {
      outer = a.block_table[int64_t(seq) * a.max_pages + j / a.page_size];
      row = j % a.page_size;
    }
    const E* kn = static_cast<const E*>(a.k_new) + (int64_t(b) * a.kn0 + int64_t(t) * a.kn1);
    const E* vn = static_cast<const E*>(a.v_new) + (int64_t(b) * a.vn0 + int64_t(t) * a.vn1);
    E* kc = static_cast<E*>(a.k) + (outer * a.k_s0 + row * a.k_s1);
    E* vc = static_cast<E*>(a.v) + (outer * a.v_s0 + row * a.v_s1);
    for (int i = int(threadIdx.x); i < a.Hkv * a.D; i += int(blockDim.x)) {
      const int h = i / a.D, d = i - h * a.D;
      kc[h * a.k_s2 + d] = kn[h * a.kn2 + d];
    }
    for (int i = int(threadIdx.x); i < a.Hkv * a.Dv; i += int(blockDim.x)) {
      const int h = i / a.Dv, d = i - h * a.Dv;
      vc[h * a.v_s2 + d] = vn[h * a.vn2 + d];
    }
  }
}

// ---------------------------------------------------------------------- host

Status unsupported(const std::string& what) { return {StatusCode::Backend, "CUDA decode: " + what}; }

struct Geometry {
  int kN = 0, k_ld = 0, v_ld = 0, k_vecs = 0, q_dims = 0;
  int off_v = 0, off_q = 0, off_s = 0, off_off = 0, off_small = 0, smem = 0;
};

Geometry geometry(int D, int Dv, int es, int kN) {
  Geometry g;
  g.kN = kN;
  g.k_vecs = (D * es + 15) / 16;
  g.k_ld = (g.k_vecs | 1) * 16;  // an odd number of 16-byte vectors: conflict-free column reads
  g.v_ld = (Dv * es + 15) / 16 * 16;
  g.q_dims = g.k_vecs * 16 / es;
  g.off_v = 2 * kN * g.k_ld;
  g.off_q = g.off_v + 2 * kN * g.v_ld;
  g.off_s = g.off_q + g.q_dims * kRows * 4;
  g.off_off = g.off_s + kRows * kSPitch * 4;
  g.off_small = g.off_off + 4 * kN * 8;
  g.smem = g.off_small + (7 * kRows + 4) * 4;  // alpha, m, l, slope, t, lo, hi; flag
  return g;
}

// The largest tile (128, 64, 32, 16 keys) whose stage stays within kStageBytes
// and whose footprint lets kMaxCtasPerSm CTAs share an SM; failing that, the
// largest the opt-in limit allows.
bool pick_geometry(int D, int Dv, int es, int smem_per_sm, int smem_optin, Geometry* out) {
  const int shared_budget = std::min(smem_optin, smem_per_sm / kMaxCtasPerSm - 1024);
  for (const int budget : {shared_budget, smem_optin})
    for (const int kN : {128, 64, 32, 16}) {
      const Geometry g = geometry(D, Dv, es, kN);
      if ((kN * (g.k_ld + g.v_ld) <= kStageBytes || kN == 16) && g.smem <= budget) {
        *out = g;
        return true;
      }
    }
  return false;
}

// The widest copy (16, 8, 4 bytes; else 2) that every row start and row length allows.
int copy_chunk_bytes(const void* base, const int64_t (&stride)[3], int64_t row_bytes, int es) {
  for (const int c : {16, 8, 4}) {
    bool ok = reinterpret_cast<uintptr_t>(base) % c == 0 && row_bytes % c == 0;
    for (int i = 0; i < 3; ++i) ok = ok && (stride[i] * es) % c == 0;
    if (ok) return c;
  }
  return 2;
}

int pv_columns(int64_t Dv) {
  int c = 32;
  while (c < Dv && c < kThreads) c <<= 1;
  return c;
}

template <typename T>
Status launch_decode_kernel(const DecodeArgs& a, int grid, int smem, cudaStream_t stream) {
  decode_kernel<T><<<grid, kThreads, smem, stream>>>(a);
  FMHA_CUDA_LAUNCHED("CUDA decode kernel launch");
  return {};
}

void (*decode_kernel_for(DType t))(DecodeArgs) {
  switch (t) {
    case DType::F32: return decode_kernel<float>;
    case DType::F16: return decode_kernel<__half>;
    default: return decode_kernel<__nv_bfloat16>;
  }
}

Status launch_append(const DecodeParams& dp, cudaStream_t stream) {
  const AttentionParams& p = dp.attn;
  const KvCacheView& c = dp.cache;
  AppendArgs a{};
  a.k_new = dp.k_new;
  a.v_new = dp.v_new;
  a.kn0 = dp.k_new_stride[0]; a.kn1 = dp.k_new_stride[1]; a.kn2 = dp.k_new_stride[2];
  a.vn0 = dp.v_new_stride[0]; a.vn1 = dp.v_new_stride[1]; a.vn2 = dp.v_new_stride[2];
  a.k = c.k;
  a.v = c.v;
  a.k_s0 = c.k_stride[0]; a.k_s1 = c.k_stride[1]; a.k_s2 = c.k_stride[2];
  a.v_s0 = c.v_stride[0]; a.v_s1 = c.v_stride[1]; a.v_s2 = c.v_stride[2];
  a.block_table = c.block_table;
  a.max_pages = c.max_pages;
  a.page_size = int(c.page_size);
  a.seq_ids = dp.seq_ids;
  a.cache_seqlens = dp.cache_seqlens;
  a.B = int(p.B); a.Sq = int(p.Sq); a.Hkv = int(p.Hkv); a.D = int(p.D); a.Dv = int(p.Dv);
  const int grid = int(std::min<int64_t>(p.B * p.Sq, int64_t(1) << 16));
  if (dtype_size(c.dtype) == 4) decode_append_kernel<uint32_t><<<grid, kThreads, 0, stream>>>(a);
  else decode_append_kernel<uint16_t><<<grid, kThreads, 0, stream>>>(a);
  FMHA_CUDA_LAUNCHED("CUDA decode: append kernel launch");
  return {};
}

}  // namespace
}  // namespace cudak

Status cuda_decode(const DecodeParams& dp, int num_sms, void* stream_ptr, const CudaScratch& scratch) {
  using namespace cudak;
  const AttentionParams& p = dp.attn;
  const KvCacheView& cache = dp.cache;
  if (p.B <= 0 || p.Sq <= 0) return {};
  // What the binding already guarantees, re-checked where a violation would mean out-of-bounds indexing.
  if (p.Hkv <= 0 || p.Hq <= 0 || p.Hq % p.Hkv != 0) return unsupported("Hq must be a positive multiple of Hkv");
  if (p.D < 1 || p.D > 256 || p.Dv < 1 || p.Dv > 256) return unsupported("head dims must be in [1, 256]");
  if (cache.dtype != p.dtype) return unsupported("the cache's dtype must be q's");
  if (!dp.host_cache_seqlens) return unsupported("DecodeParams.host_cache_seqlens (a host copy of the lengths) is required");
  if (cache.paged() && (cache.page_size < 1 || cache.page_size >= (int64_t(1) << 31)))
    return unsupported("page size out of range");
  if (p.B >= (int64_t(1) << 31) / std::max<int64_t>(1, p.Sq)) return unsupported("B·Sq must be below 2^31");
  int64_t max_len = 0;
  for (int64_t b = 0; b < p.B; ++b) {
    const int64_t len = dp.host_cache_seqlens[b];
    if (len < 0) return unsupported("cache lengths must be ≥ 0");
    max_len = std::max(max_len, len);
  }
  if (p.Sq + max_len >= (int64_t(1) << 30)) return unsupported("Sq + the longest cache length must be below 2^30");
  const int64_t group = p.Hq / p.Hkv, rows = group * p.Sq;
  if (rows >= (int64_t(1) << 30)) return unsupported("(Hq / Hkv)·Sq must be below 2^30");
  const int64_t row_blocks = (rows + kRows - 1) / kRows;
  int64_t n_units = 0;
  if (__builtin_mul_overflow(p.B * p.Hkv, row_blocks, &n_units) || n_units >= (int64_t(1) << 31) - 1)
    return unsupported("B·Hkv·ceil((Hq / Hkv)·Sq / 16) must be below 2^31");

  const cudaStream_t stream = static_cast<cudaStream_t>(stream_ptr);
  const int es = dtype_size(p.dtype);
  int device = 0, smem_per_sm = 0, smem_optin = 0;
  FMHA_CUDA_TRY(cudaGetDevice(&device), "CUDA decode: cudaGetDevice");
  FMHA_CUDA_TRY(cudaDeviceGetAttribute(&smem_per_sm, cudaDevAttrMaxSharedMemoryPerMultiprocessor, device),
                "CUDA decode: cudaDeviceGetAttribute(MaxSharedMemoryPerMultiprocessor)");
  FMHA_CUDA_TRY(cudaDeviceGetAttribute(&smem_optin, cudaDevAttrMaxSharedMemoryPerBlockOptin, device),
                "CUDA decode: cudaDeviceGetAttribute(MaxSharedMemoryPerBlockOptin)");
  Geometry geo;
  if (!pick_geometry(int(p.D), int(p.Dv), es, smem_per_sm, smem_optin, &geo))
    return unsupported("the kernel needs " + std::to_string(geometry(int(p.D), int(p.Dv), es, 16).smem) +
                       " bytes of shared memory per block, the device allows " + std::to_string(smem_optin));
  void (*kernel)(DecodeArgs) = decode_kernel_for(p.dtype);
  FMHA_CUDA_TRY(cudaFuncSetAttribute(kernel, cudaFuncAttributeMaxDynamicSharedMemorySize, geo.smem),
                "CUDA decode: cudaFuncSetAttribute(MaxDynamicSharedMemorySize)");
  int per_sm = 0;
  FMHA_CUDA_TRY(cudaOccupancyMaxActiveBlocksPerMultiprocessor(&per_sm, kernel, kThreads, geo.smem),
                "CUDA decode: cudaOccupancyMaxActiveBlocksPerMultiprocessor");
  if (per_sm < 1) return unsupported("the decode kernel cannot be resident on this device");
  const int64_t max_workers = int64_t(std::max(1, num_sms)) * std::min(per_sm, kMaxCtasPerSm);

  // Units (b, g, row block) and their key tiles; the visible keys depend on the token, not the head.
  const int64_t kN = geo.kN;
  const int wl = clamp_window(p.window_left, p.Sq + max_len), wr = clamp_window(p.window_right, p.Sq + max_len);
  std::vector<TileSpan> spans;
  spans.reserve(size_t(n_units));
  std::vector<TileSpan> block_span(static_cast<size_t>(row_blocks));  // per row block of one sequence
  int64_t total = 0, largest = 0;
  for (int64_t b = 0; b < p.B; ++b) {
    const int64_t sk = dp.host_cache_seqlens[b], offset = sk - p.Sq;
    for (int64_t rb = 0; rb < row_blocks; ++rb) {
      int64_t lo = std::numeric_limits<int64_t>::max(), hi = 0;
      for (int64_t x = rb * kRows; x < std::min(rows, (rb + 1) * kRows); ++x) {
        const int64_t diag = x % p.Sq + offset;  // MaskRule's lo / hi (score_policy.cuh)
        const int64_t l = wl >= 0 ? std::max<int64_t>(0, diag - wl) : 0;
        int64_t h = sk;
        if (p.causal) h = std::min(h, diag + 1);
        if (wr >= 0) h = std::min(h, diag + wr + 1);
        if (h > l) { lo = std::min(lo, l); hi = std::max(hi, h); }
      }
      block_span[size_t(rb)] = hi > lo ? TileSpan{lo / kN, (hi + kN - 1) / kN} : TileSpan{};
    }
    for (int64_t g = 0; g < p.Hkv; ++g)
      for (int64_t rb = 0; rb < row_blocks; ++rb) {
        const TileSpan& s = block_span[size_t(rb)];
        spans.push_back(s);
        total += s.end - s.begin;
        largest = std::max(largest, s.end - s.begin);
      }
  }

  DecodeStrategy strategy = dp.strategy;
  if (strategy == DecodeStrategy::Auto)  // the CPU's rule (cpu/decode_attention.cc) with workers = SMs
    strategy = total == 0 || largest * 8 * std::max(1, num_sms) <= total ? DecodeStrategy::Single : DecodeStrategy::Lean;
  int64_t workers = max_workers;
  if (strategy == DecodeStrategy::Lean)
    workers = std::max<int64_t>(1, std::min(max_workers, (total + kMinTilesPerCta - 1) / kMinTilesPerCta));
  const DecodePlan plan = plan_decode(spans, strategy, workers);
  const int64_t n_pieces = int64_t(plan.pieces.size()), n_tasks = int64_t(plan.tasks.size()) - 1;
  if (n_pieces >= (int64_t(1) << 31) - 1 || n_tasks < 1) return unsupported("too many pieces");

  // The plan as int32: pieces (unit, begin, end, slot) | tasks | unit_pieces | counters.
  const int64_t slot_floats = 2 * kRows + kRows * p.Dv;
  std::vector<int32_t> host;
  host.reserve(size_t(4 * n_pieces + n_tasks + 1 + 2 * n_units + 1 + 4));
  int64_t slots = 0;
  for (int64_t u = 0; u < n_units; ++u) {
    const int64_t first = plan.unit_pieces[size_t(u)], last = plan.unit_pieces[size_t(u) + 1];
    for (int64_t i = first; i < last; ++i) {
      const DecodePiece& pc = plan.pieces[size_t(i)];
      host.push_back(int32_t(pc.unit));
      host.push_back(int32_t(pc.begin));
      host.push_back(int32_t(pc.end));
      host.push_back(last - first > 1 ? int32_t(slots++) : -1);
    }
  }
  const size_t tasks_at = host.size();
  for (const int64_t t : plan.tasks) host.push_back(int32_t(t));
  const size_t units_at = host.size();
  for (const int64_t u : plan.unit_pieces) host.push_back(int32_t(u));
  const size_t counters_at = host.size();
  host.resize(host.size() + size_t(n_units), 0);

  void* plan_dev = scratch.alloc(scratch.self, host.size() * sizeof(int32_t));
  if (!plan_dev)
    return {StatusCode::OutOfMemory,
            "CUDA decode: allocating " + std::to_string(host.size() * sizeof(int32_t)) + " bytes for the plan failed"};
  float* partials = nullptr;
  if (slots > 0) {
    const int64_t bytes = slots * slot_floats * int64_t(sizeof(float));
    partials = static_cast<float*>(scratch.alloc(scratch.self, size_t(bytes)));
    if (!partials)
      return {StatusCode::OutOfMemory,
              "CUDA decode: allocating " + std::to_string(bytes) + " bytes of partial results failed"};
  }
  int32_t* plan_i = static_cast<int32_t*>(plan_dev);

  DecodeArgs a{};
  a.q = p.q; a.out = p.out; a.lse = p.lse;
  a.q_s0 = p.q_stride[0]; a.q_s1 = p.q_stride[1]; a.q_s2 = p.q_stride[2];
  a.o_s0 = p.o_stride[0]; a.o_s1 = p.o_stride[1]; a.o_s2 = p.o_stride[2];
  a.lse_s0 = p.lse_stride[0]; a.lse_s1 = p.lse_stride[1];
  a.k = cache.k; a.v = cache.v;
  a.k_s0 = cache.k_stride[0]; a.k_s1 = cache.k_stride[1]; a.k_s2 = cache.k_stride[2];
  a.v_s0 = cache.v_stride[0]; a.v_s1 = cache.v_stride[1]; a.v_s2 = cache.v_stride[2];
  a.block_table = cache.block_table;
  a.max_pages = cache.max_pages;
  a.page_size = cache.paged() ? int(cache.page_size) : 1;
  a.seq_ids = dp.seq_ids;
  a.cache_seqlens = dp.cache_seqlens;
  a.alibi = p.alibi_slopes;
  a.Sq = int(p.Sq); a.Hkv = int(p.Hkv); a.group = int(group); a.rows = int(rows); a.row_blocks = int(row_blocks);
  a.D = int(p.D); a.Dv = int(p.Dv);
  a.causal = p.causal ? 1 : 0;
  a.window_left = wl; a.window_right = wr;
  a.scale = p.scale;
  a.softcap = p.softcap > 0 ? p.softcap : 0.0f;
  a.softcap_inv = p.softcap > 0 ? 1.0f / p.softcap : 0.0f;
  a.kN = geo.kN; a.k_ld = geo.k_ld; a.v_ld = geo.v_ld; a.k_vecs = geo.k_vecs; a.q_dims = geo.q_dims;
  a.k_chunk = copy_chunk_bytes(cache.k, cache.k_stride, p.D * es, es);
  a.v_chunk = copy_chunk_bytes(cache.v, cache.v_stride, p.Dv * es, es);
  a.pv_cols = pv_columns(p.Dv);
  a.off_v = geo.off_v; a.off_q = geo.off_q; a.off_s = geo.off_s; a.off_off = geo.off_off; a.off_small = geo.off_small;
  a.pieces = reinterpret_cast<const int4*>(plan_i);
  a.tasks = plan_i + tasks_at;
  a.unit_pieces = plan_i + units_at;
  a.counters = plan_i + counters_at;
  a.partials = partials;
  a.slot_floats = slot_floats;

  // Every check and allocation is done: enqueue the plan, the append, the attention.
  Status st = upload_plan(plan_dev, host.data(), host.size() * sizeof(int32_t), stream);
  if (!st.ok()) return st;
  if (dp.k_new && dp.v_new) {
    st = launch_append(dp, stream);
    if (!st.ok()) return st;
  }
  switch (p.dtype) {
    case DType::F32: return launch_decode_kernel<float>(a, int(n_tasks), geo.smem, stream);
    case DType::F16: return launch_decode_kernel<__half>(a, int(n_tasks), geo.smem, stream);
    default: return launch_decode_kernel<__nv_bfloat16>(a, int(n_tasks), geo.smem, stream);
  }
}

}  // namespace fmha
