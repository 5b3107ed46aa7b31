// FlashAttention-2 forward (Dao 2023, Alg. 1 with the FA2 work split) for
// float16 / bfloat16 and D == Dv in {32, 64, 96, 128, 192, 256}, on sm_80+
// tensor cores (mma.sync m16n8k16, fp32 accumulate).
//
// One CTA per (query block, head, sequence); each warp owns 16 query rows, so
// no inter-warp reduction exists. Per key block (processed last to first):
//   wait K(n); issue cp.async V(n) | S = Q·K(n)ᵀ (ldmatrix + mma) | masks/hooks
//   wait V(n); issue cp.async K(n−1) | online softmax in registers | O += P·V(n)
// so the V load overlaps Q·Kᵀ and the next K load overlaps softmax and P·V
// (FA2's schedule: one K and one V buffer, each refilled while the other is read).
// The tile shapes per head dim are the table below.
// P never leaves registers: the C fragments of S are the A fragments of P·V
// (see mma_sm80.cuh). exp2 with scale·log2(e) folded in (FA2 softmax_rescale_o).
//
// Masks and score hooks are one mechanism (score_policy.cuh): a key block that
// lies inside every row's visible interval runs with no per-element work; any
// other visited block, and every block when a score hook is on (softcap,
// ALiBi, bias), goes through mask_scores(). Blocks outside the union of the
// rows' intervals are never loaded (causal / window / seqlensK skipping).
// Varlen uses the same kernel: the sequence view gives rows and lengths, a CTA
// past its sequence's query count exits at once, and rows past a sequence's
// length are zero-filled by cp.async instead of read.
//
// Requirements checked by the dispatcher: q, k, v, out 16-byte aligned and all
// their strides multiples of 8 elements (cp.async and 16-byte stores).
#pragma once
#include <cuda_runtime.h>

#include <cstdint>

#include "cuda_check.h"
#include "kernel_args.h"
#include "mma_sm80.cuh"
#include "query_blocks.cuh"
#include "score_policy.cuh"

namespace fmha {
namespace cudak {

// ----------------------------------------------------------------- tile table
// {warps (16 query rows each, so BlockM = 16·warps), key block BlockN, min CTAs
// per SM for __launch_bounds__}. Shared memory = (BlockM + 2·BlockN)·D·2 bytes,
// kept <= 96 KiB so one instantiation serves sm_80 (164 KiB per SM), sm_86/89
// (99 KiB opt-in) and sm_90 (227 KiB). Per thread the accumulators are S (BlockN/2
// fp32) and O (D/2 fp32). Limits found with -Xptxas -v (sm_80 and sm_90a):
//   D 32: BlockN 64 fits 128 registers, no spill -> 2 CTAs x 8 warps per SM
//         (BlockN 128 needs 226 registers -> 1 CTA).
//   D 64: capped at 128 registers (2 x 8 warps) it spills 8-44 bytes (the softcap/bias
//         hooks); 4 warps with a 3-CTA bound fit 168 registers, no spill -> 12 warps per SM.
//   D 96/128: ~190-230 registers; capping at 128 spills, so 1 CTA x 8 warps.
//   D 192: 255 registers, no spill; 4 warps.
//   D 256: BlockN 64 spills (104 B) at 255 registers; BlockN 32 does not.
template <int kD> struct FlashTile;
template <> struct FlashTile<32>  { static constexpr int kWarps = 8, kBlockN = 64, kMinBlocks = 2; };  // 16 KiB
template <> struct FlashTile<64>  { static constexpr int kWarps = 4, kBlockN = 64, kMinBlocks = 3; };  // 24 KiB
template <> struct FlashTile<96>  { static constexpr int kWarps = 8, kBlockN = 64, kMinBlocks = 1; };  // 48 KiB
template <> struct FlashTile<128> { static constexpr int kWarps = 8, kBlockN = 64, kMinBlocks = 1; };  // 64 KiB
template <> struct FlashTile<192> { static constexpr int kWarps = 4, kBlockN = 64, kMinBlocks = 1; };  // 72 KiB
template <> struct FlashTile<256> { static constexpr int kWarps = 4, kBlockN = 32, kMinBlocks = 1; };  // 64 KiB

template <int kD>
struct FlashConfig {
  static constexpr int kWarps = FlashTile<kD>::kWarps;
  static constexpr int kThreads = 32 * kWarps;
  static constexpr int kBlockM = 16 * kWarps;
  static constexpr int kBlockN = FlashTile<kD>::kBlockN;
  static constexpr int kSmemBytes = (kBlockM + 2 * kBlockN) * kD * 2;
  static constexpr int kMinBlocks = FlashTile<kD>::kMinBlocks;
  static_assert(kD % 32 == 0 && kBlockN % 16 == 0, "tile shape");
};

constexpr float kLog2e = 1.4426950408889634f;

// A [kRows][D] tile of 16-bit values in shared memory, stored as D/32 column
// atoms of [kRows][32] (64-byte rows). The 16-byte chunk c (0..3) of row r sits
// at chunk c ^ ((r >> 1) & 3): the eight rows one ldmatrix phase reads (same
// logical chunk, rows r0..r0+7) then fall in eight distinct 16-byte bank groups
// of a 128-byte line, so ldmatrix (plain and .trans) is conflict-free.
// `col` may point inside a chunk (col & 7 is kept).
template <int kRows>
__device__ __forceinline__ int swz(int r, int col) {
  return (col >> 5) * (kRows * 32) + r * 32 + ((((col >> 3) & 3) ^ ((r >> 1) & 3)) << 3) + (col & 7);
}

// cp.async a [kRows][kD] tile whose row r starts at gmem + r·row_stride; rows
// >= rows_valid are zero-filled without reading global memory.
template <int kRows, int kD, int kThreads, typename T>
__device__ __forceinline__ void load_tile(T* smem, const T* gmem, int64_t row_stride, int rows_valid, int tid) {
  constexpr int kChunks = kD / 8;
  constexpr int kTotal = kRows * kChunks;
  static_assert(kTotal % kThreads == 0, "tile copy must divide evenly among threads");
#pragma unroll
  for (int it = 0; it < kTotal / kThreads; ++it) {
    const int id = tid + it * kThreads;
    const int r = id / kChunks, c = id % kChunks;
    const bool valid = r < rows_valid;
    const T* src = valid ? gmem + r * row_stride + c * 8 : gmem;
    cp_async_16(smem_u32(smem + swz<kRows>(r, c * 8)), src, valid);
  }
}

// Per-element masks and hooks for one warp's 16 x kBlockN score tile.
// row0: query row (in the sequence) of this thread's first row (g); key0: key of its column 2t in this block.
// The hook state (slope, bias plane) is rebuilt here from the kernel parameters, which live in the
// constant bank, instead of being held in registers across the main loop: held, it made the
// 128-register D = 64 kernel spill on sm_90a.
template <int kNT, typename T>
__device__ __forceinline__ void mask_scores(float (&s)[kNT][4], const KernelArgs& a, const MaskRule& rule, int b,
                                            int h, int row0, int sq, int key0) {
  const bool with_hooks = a.hooks != 0;
  ScoreHooks<T, true> hooks;
  if (with_hooks) hooks = score_hooks<T, true>(a, b, h);
#pragma unroll
  for (int rr = 0; rr < 2; ++rr) {
    const int i = row0 + 8 * rr;
    const int lo = rule.lo(i);
    const int hi = i < sq ? rule.hi(i) : lo;  // a tile row past the sequence sees nothing
    const int diag = i + rule.offset;
#pragma unroll
    for (int j = 0; j < kNT; ++j) {
#pragma unroll
      for (int e = 0; e < 2; ++e) {
        const int key = key0 + 8 * j + e;
        float& x = s[j][2 * rr + e];
        if (key < lo || key >= hi) x = -INFINITY;
        else if (with_hooks) x = hooks(x, i, key, diag);
      }
    }
  }
}

template <int kD, typename T>
__global__ void __launch_bounds__(FlashConfig<kD>::kThreads, FlashConfig<kD>::kMinBlocks)
    flash_fwd_kernel(const KernelArgs a) {
  using Cfg = FlashConfig<kD>;
  constexpr int BM = Cfg::kBlockM, BN = Cfg::kBlockN, kThreads = Cfg::kThreads;
  constexpr int kNT = BN / 8;  // n-tiles of S per warp
  constexpr int kDT = kD / 8;  // n-tiles of O per warp

  extern __shared__ __align__(128) unsigned char flash_smem[];
  T* sQ = reinterpret_cast<T*>(flash_smem);  // [BM][kD], reused for the output tile
  T* sK = sQ + BM * kD;                      // [BN][kD]
  T* sV = sK + BN * kD;                      // [BN][kD]

  const QueryBlock qb = cta_query_block(a);
  const int b = qb.b, h = qb.h, m_block = qb.m_block;
  const SeqRows seq = seq_rows(a, b);
  const int i0 = m_block * BM;
  if (i0 >= seq.sq) return;  // past this sequence's queries (varlen), CTA-uniform

  const int tid = int(threadIdx.x), warp = tid >> 5, lane = tid & 31;
  const int g = lane >> 2, t = lane & 3;
  const int rows_valid = min(BM, seq.sq - i0);
  const MaskRule rule = mask_rule(a, seq);
  const bool with_hooks = a.hooks != 0;
  // p = 2^(s·sm − m·sm): sm folds scale (raw q·k scores) unless the hooks already applied it.
  const float sm = with_hooks ? kLog2e : a.scale * kLog2e;

  // Key blocks: the union of the rows' visible intervals (lo, hi are monotone in i);
  // [full_lo, full_hi) is visible to every row of the block.
  const int i_last = i0 + rows_valid - 1;
  const int k_begin = rule.lo(i0), k_end = rule.hi(i_last);
  int n_min = 0, n_max = 0;
  if (k_end > k_begin) {
    n_min = k_begin / BN;
    n_max = (k_end + BN - 1) / BN;
  }
  const int full_lo = rule.lo(i_last), full_hi = rule.hi(i0);

  const int hk = h / a.group;
  const T* q = static_cast<const T*>(a.q) + (b * a.q_s0 + (seq.q_row0 + i0) * a.q_s1 + h * a.q_s2);
  const T* k = static_cast<const T*>(a.k) + (b * a.k_s0 + seq.k_row0 * a.k_s1 + hk * a.k_s2);
  const T* v = static_cast<const T*>(a.v) + (b * a.v_s0 + seq.k_row0 * a.v_s1 + hk * a.v_s2);

  float acc_o[kDT][4];
#pragma unroll
  for (int j = 0; j < kDT; ++j) acc_o[j][0] = acc_o[j][1] = acc_o[j][2] = acc_o[j][3] = 0.0f;
  float m_i[2] = {-INFINITY, -INFINITY}, l_i[2] = {0.0f, 0.0f};

  // ldmatrix row/column of this lane (see mma_sm80.cuh):
  //   Q (A, x4): lanes 0-7 rows 0-7 col k, 8-15 rows 8-15 col k, 16-23 rows 0-7 col k+8, 24-31 rows 8-15 col k+8.
  //   K (B, x4): lanes 0-7 keys 0-7 col k, 8-15 keys 0-7 col k+8, 16-23 keys 8-15 col k, 24-31 keys 8-15 col k+8
  //              -> b0, b1 of n-tile 2np, then b0, b1 of n-tile 2np+1.
  //   V (B, x4.trans): lanes 0-7 keys 0-7 col d, 8-15 keys 8-15 col d, 16-23 keys 0-7 col d+8, 24-31 keys 8-15 col d+8
  //              -> b0, b1 of dv n-tile 2dp, then b0, b1 of n-tile 2dp+1.
  const int a_row = warp * 16 + (lane & 7) + ((lane >> 3) & 1) * 8, a_col = (lane >> 4) * 8;
  const int kb_row = (lane & 7) + ((lane >> 4) & 1) * 8, kb_col = ((lane >> 3) & 1) * 8;
  const int vb_row = (lane & 7) + ((lane >> 3) & 1) * 8, vb_col = (lane >> 4) * 8;
  // Byte addresses. For a column 32·B + 16·P + c (c in {0, 8}) and a row 16·R + r (r < 16),
  // swz(16R + r, 32B + 16P + c) = swz(r, 16P + c) + B·rows·32 + R·512: the swizzle depends only on
  // the lane and the parity P, so two lane bases per operand cover every unrolled step.
  const uint32_t q_addr[2] = {smem_u32(sQ + swz<BM>(a_row, a_col)), smem_u32(sQ + swz<BM>(a_row, 16 + a_col))};
  const uint32_t k_addr[2] = {smem_u32(sK + swz<BN>(kb_row, kb_col)), smem_u32(sK + swz<BN>(kb_row, 16 + kb_col))};
  const uint32_t v_addr[2] = {smem_u32(sV + swz<BN>(vb_row, vb_col)), smem_u32(sV + swz<BN>(vb_row, 16 + vb_col))};

  if (n_max > n_min) {
    int n = n_max - 1;
    load_tile<BM, kD, kThreads>(sQ, q, a.q_s1, rows_valid, tid);
    load_tile<BN, kD, kThreads>(sK, k + (n * BN) * a.k_s1, a.k_s1, min(BN, seq.kv_len - n * BN), tid);
    cp_async_commit();

    for (; n >= n_min; --n) {
      const int key_base = n * BN;
      cp_async_wait<0>();
      __syncthreads();  // K(n) (and Q) landed; every warp finished reading V(n+1)
      load_tile<BN, kD, kThreads>(sV, v + key_base * a.v_s1, a.v_s1, min(BN, seq.kv_len - key_base), tid);
      cp_async_commit();

      // S = Q·K(n)ᵀ, 16 x BN per warp.
      float s[kNT][4];
#pragma unroll
      for (int j = 0; j < kNT; ++j) s[j][0] = s[j][1] = s[j][2] = s[j][3] = 0.0f;
#pragma unroll
      for (int kk = 0; kk < kD; kk += 16) {
        uint32_t af[4];
        ldmatrix_x4(af, q_addr[(kk >> 4) & 1] + 2 * ((kk >> 5) * BM * 32));
#pragma unroll
        for (int np = 0; np < kNT / 2; ++np) {
          uint32_t bf[4];
          ldmatrix_x4(bf, k_addr[(kk >> 4) & 1] + 2 * ((kk >> 5) * BN * 32 + np * 512));
          mma_16816<T>(s[2 * np], af, bf[0], bf[1]);
          mma_16816<T>(s[2 * np + 1], af, bf[2], bf[3]);
        }
      }

      if (with_hooks || key_base < full_lo || key_base + BN > full_hi)
        mask_scores<kNT, T>(s, a, rule, b, h, i0 + warp * 16 + g, seq.sq, key_base + 2 * t);

      cp_async_wait<0>();
      __syncthreads();  // V(n) landed; every warp finished reading K(n)
      if (n > n_min) {
        load_tile<BN, kD, kThreads>(sK, k + (key_base - BN) * a.k_s1, a.k_s1,
                                    min(BN, seq.kv_len - (key_base - BN)), tid);
        cp_async_commit();
      }

      // Online softmax on rows g (rr = 0) and g + 8 (rr = 1); a row is spread over the 4 lanes of a quad.
#pragma unroll
      for (int rr = 0; rr < 2; ++rr) {
        float mx = -INFINITY;
#pragma unroll
        for (int j = 0; j < kNT; ++j) mx = fmaxf(mx, fmaxf(s[j][2 * rr], s[j][2 * rr + 1]));
        mx = fmaxf(mx, __shfl_xor_sync(0xffffffffu, mx, 1));
        mx = fmaxf(mx, __shfl_xor_sync(0xffffffffu, mx, 2));
        const float m_new = fmaxf(m_i[rr], mx);
        // A row that has seen only masked keys keeps m = −inf: use 0 as its reference so
        // exp2(−inf − ref) is 0, never NaN (FA2's Check_inf).
        const float ref = m_new == -INFINITY ? 0.0f : m_new * sm;
        const float alpha = ex2(m_i[rr] * sm - ref);
        m_i[rr] = m_new;
        float sum = 0.0f;
#pragma unroll
        for (int j = 0; j < kNT; ++j) {
#pragma unroll
          for (int e = 0; e < 2; ++e) {
            const float p = ex2(fmaf(s[j][2 * rr + e], sm, -ref));
            s[j][2 * rr + e] = p;
            sum += p;
          }
        }
        l_i[rr] = l_i[rr] * alpha + sum;  // thread-partial; the quad sum happens once, at the end
#pragma unroll
        for (int j = 0; j < kDT; ++j) {
          acc_o[j][2 * rr] *= alpha;
          acc_o[j][2 * rr + 1] *= alpha;
        }
      }

      // O += P·V(n): P (16 x BN) from registers as A fragments, V through ldmatrix.trans.
#pragma unroll
      for (int ks = 0; ks < kNT / 2; ++ks) {
        const uint32_t pf[4] = {pack2<T>(s[2 * ks][0], s[2 * ks][1]), pack2<T>(s[2 * ks][2], s[2 * ks][3]),
                                pack2<T>(s[2 * ks + 1][0], s[2 * ks + 1][1]),
                                pack2<T>(s[2 * ks + 1][2], s[2 * ks + 1][3])};
#pragma unroll
        for (int dp = 0; dp < kDT / 2; ++dp) {
          uint32_t bf[4];
          ldmatrix_x4_trans(bf, v_addr[dp & 1] + 2 * ((dp >> 1) * BN * 32 + ks * 512));
          mma_16816<T>(acc_o[2 * dp], pf, bf[0], bf[1]);
          mma_16816<T>(acc_o[2 * dp + 1], pf, bf[2], bf[3]);
        }
      }
    }
  }

  // Epilogue: O / l (0 for a row that saw no key), staged through this warp's own
  // rows of sQ for 16-byte coalesced stores; lse = m·scale + ln l (natural log).
  float inv[2], lsum[2];
#pragma unroll
  for (int rr = 0; rr < 2; ++rr) {
    float l = l_i[rr];
    l += __shfl_xor_sync(0xffffffffu, l, 1);
    l += __shfl_xor_sync(0xffffffffu, l, 2);
    lsum[rr] = l;
    inv[rr] = l > 0.0f ? 1.0f / l : 0.0f;
  }
  __syncwarp();
#pragma unroll
  for (int j = 0; j < kDT; ++j) {
#pragma unroll
    for (int rr = 0; rr < 2; ++rr) {
      const int row = warp * 16 + g + 8 * rr;
      *reinterpret_cast<uint32_t*>(sQ + swz<BM>(row, j * 8 + 2 * t)) =
          pack2<T>(acc_o[j][2 * rr] * inv[rr], acc_o[j][2 * rr + 1] * inv[rr]);
    }
  }
  __syncwarp();
  T* out = static_cast<T*>(a.out) + (b * a.o_s0 + (seq.q_row0 + i0) * a.o_s1 + h * a.o_s2);
  constexpr int kChunks = kD / 8;
#pragma unroll
  for (int id = lane; id < 16 * kChunks; id += 32) {
    const int r = id / kChunks, c = id % kChunks;
    const int row = warp * 16 + r;
    if (row < rows_valid)
      *reinterpret_cast<uint4*>(out + row * a.o_s1 + c * 8) =
          *reinterpret_cast<const uint4*>(sQ + swz<BM>(row, c * 8));
  }
  if (a.lse && t == 0) {
#pragma unroll
    for (int rr = 0; rr < 2; ++rr) {
      const int row = warp * 16 + g + 8 * rr;
      if (row < rows_valid) {
        const float m_nat = with_hooks ? m_i[rr] : m_i[rr] * a.scale;
        a.lse[b * a.lse_s0 + h * a.lse_s1 + seq.q_row0 + i0 + row] =
            lsum[rr] > 0.0f ? m_nat + logf(lsum[rr]) : -INFINITY;
      }
    }
  }
}

// Enqueues the kernel for B sequences (query_blocks.cuh: the padded or the varlen grid).
template <int kD>
Status launch_flash_fwd_impl(bool bf16, const KernelArgs& args, int64_t B, cudaStream_t stream) {
  using Cfg = FlashConfig<kD>;
  void (*kernel)(KernelArgs) = bf16 ? flash_fwd_kernel<kD, __nv_bfloat16> : flash_fwd_kernel<kD, __half>;
  FMHA_CUDA_TRY(cudaFuncSetAttribute(kernel, cudaFuncAttributeMaxDynamicSharedMemorySize, Cfg::kSmemBytes),
                "flash attention: cudaFuncSetAttribute(MaxDynamicSharedMemorySize)");
  return launch_query_blocks(kernel, args, B, Cfg::kBlockM, Cfg::kThreads, Cfg::kSmemBytes, stream,
                             "flash attention kernel launch");
}

}  // namespace cudak
}  // namespace fmha
