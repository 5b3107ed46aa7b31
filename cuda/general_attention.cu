// The general fused kernel: every dtype (float32 included), any D and Dv in
// 1..256, any alignment. FlashAttention's algorithm on CUDA cores: a CTA of 128
// threads owns 32 query rows; K/V stream through shared memory in blocks of
// 32 keys (fp32), with the online softmax (running max m, sum l, rescaled
// accumulator) in registers. Same semantics, masks, block skipping and varlen
// handling as the flash kernel (score_policy.cuh); fp32 throughout and the
// accurate expf/tanhf, so float32 meets DESIGN's 1e-5 bound.
//
// Thread layout: tid = 16·rg + kg (rg 0..7, kg 0..15). A thread owns query rows
// rg + 8·i (i < 4); in S it owns keys kg + 16·c (c < 2), in O columns
// kg + 16·c (c < kNC). So a row's 32 scores live on the 16 lanes sharing rg
// (one half-warp: row reductions are 4 xor-shuffles), and the rows of S a
// thread reduces are the rows of O it rescales.
#include <cuda_runtime.h>

#include "cuda_check.h"
#include "general_attention.h"
#include "query_blocks.cuh"
#include "score_policy.cuh"

namespace fmha {
namespace cudak {
namespace {

constexpr int kGM = 32, kGN = 32, kGThreads = 128;
constexpr int kPad = 33;  // transposed [d][row] tiles: stride 33 floats keeps column writes conflict-free

__host__ __device__ constexpr int general_kv_floats(int D, int Dv) {
  return D * kPad > kGN * Dv ? D * kPad : kGN * Dv;
}

int general_smem_bytes(int D, int Dv) {
  return int(sizeof(float)) * (D * kPad + general_kv_floats(D, Dv) + kGM * kPad);
}

template <typename T>
__device__ __forceinline__ float ld(const T* p, int64_t i) {
  return to_f32<T>(p[i]);
}

template <typename T, int kNC>
__global__ void __launch_bounds__(kGThreads) general_attention_kernel(const KernelArgs a) {
  extern __shared__ float general_smem[];
  const int D = a.D, Dv = a.Dv;
  float* sQ = general_smem;                 // Qᵀ [D][kPad]
  float* sKV = sQ + D * kPad;               // Kᵀ [D][kPad], then V [kGN][Dv]
  float* sP = sKV + general_kv_floats(D, Dv);  // P [kGM][kPad]

  const QueryBlock qb = cta_query_block(a);
  const int b = qb.b, h = qb.h, m_block = qb.m_block;
  const SeqRows seq = seq_rows(a, b);
  const int i0 = m_block * kGM;
  if (i0 >= seq.sq) return;

  const int tid = int(threadIdx.x), kg = tid & 15, rg = tid >> 4;
  const int rows_valid = min(kGM, seq.sq - i0);
  const MaskRule rule = mask_rule(a, seq);
  const ScoreHooks<T> hooks = score_hooks<T>(a, b, h);
  const int hk = h / a.group;

  const int i_last = i0 + rows_valid - 1;
  const int k_begin = rule.lo(i0), k_end = rule.hi(i_last);
  int n_min = 0, n_max = 0;
  if (k_end > k_begin) {
    n_min = k_begin / kGN;
    n_max = (k_end + kGN - 1) / kGN;
  }

  const T* q = static_cast<const T*>(a.q) + (b * a.q_s0 + (seq.q_row0 + i0) * a.q_s1 + h * a.q_s2);
  const T* k = static_cast<const T*>(a.k) + (b * a.k_s0 + seq.k_row0 * a.k_s1 + hk * a.k_s2);
  const T* v = static_cast<const T*>(a.v) + (b * a.v_s0 + seq.k_row0 * a.v_s1 + hk * a.v_s2);

  for (int idx = tid; idx < kGM * D; idx += kGThreads) {
    const int r = idx / D, d = idx - r * D;
    sQ[d * kPad + r] = r < rows_valid ? ld(q, r * a.q_s1 + d) : 0.0f;
  }

  float o[4][kNC];
  float m[4], l[4];
#pragma unroll
  for (int i = 0; i < 4; ++i) {
    m[i] = -INFINITY;
    l[i] = 0.0f;
#pragma unroll
    for (int c = 0; c < kNC; ++c) o[i][c] = 0.0f;
  }

  for (int n = n_min; n < n_max; ++n) {
    const int j0 = n * kGN;
    const int keys_valid = min(kGN, seq.kv_len - j0);
    __syncthreads();  // the previous block's P·V is done with sKV and sP (and sQ is written)
    for (int idx = tid; idx < kGN * D; idx += kGThreads) {
      const int key = idx / D, d = idx - key * D;
      sKV[d * kPad + key] = key < keys_valid ? ld(k, (j0 + key) * a.k_s1 + d) : 0.0f;
    }
    __syncthreads();

    float s[4][2];
#pragma unroll
    for (int i = 0; i < 4; ++i) s[i][0] = s[i][1] = 0.0f;
    for (int d = 0; d < D; ++d) {
      const float* qd = sQ + d * kPad + rg;
      const float* kd = sKV + d * kPad + kg;
      const float k0 = kd[0], k1 = kd[16];
#pragma unroll
      for (int i = 0; i < 4; ++i) {
        const float qv = qd[8 * i];
        s[i][0] = fmaf(qv, k0, s[i][0]);
        s[i][1] = fmaf(qv, k1, s[i][1]);
      }
    }

#pragma unroll
    for (int i = 0; i < 4; ++i) {
      const int row = i0 + rg + 8 * i;
      const int lo = rule.lo(row);
      const int hi = row < seq.sq ? rule.hi(row) : lo;
      const int diag = row + rule.offset;
      float mx = -INFINITY;
#pragma unroll
      for (int c = 0; c < 2; ++c) {
        const int key = j0 + kg + 16 * c;
        s[i][c] = (key < lo || key >= hi) ? -INFINITY : hooks(s[i][c], row, key, diag);
        mx = fmaxf(mx, s[i][c]);
      }
#pragma unroll
      for (int off = 1; off < 16; off <<= 1) mx = fmaxf(mx, __shfl_xor_sync(0xffffffffu, mx, off));
      const float m_new = fmaxf(m[i], mx);
      const float ref = m_new == -INFINITY ? 0.0f : m_new;  // a row with no visible key yet: p = 0, not NaN
      const float alpha = expf(m[i] - ref);
      m[i] = m_new;
      const float p0 = expf(s[i][0] - ref), p1 = expf(s[i][1] - ref);
      l[i] = l[i] * alpha + p0 + p1;  // thread-partial; reduced across the half-warp at the end
#pragma unroll
      for (int c = 0; c < kNC; ++c) o[i][c] *= alpha;
      sP[(rg + 8 * i) * kPad + kg] = p0;
      sP[(rg + 8 * i) * kPad + kg + 16] = p1;
    }
    __syncthreads();  // Kᵀ no longer read; P complete

    for (int idx = tid; idx < kGN * Dv; idx += kGThreads) {
      const int key = idx / Dv, c = idx - key * Dv;
      sKV[key * Dv + c] = key < keys_valid ? ld(v, (j0 + key) * a.v_s1 + c) : 0.0f;
    }
    __syncthreads();

    for (int key = 0; key < kGN; ++key) {
      float p[4];
#pragma unroll
      for (int i = 0; i < 4; ++i) p[i] = sP[(rg + 8 * i) * kPad + key];
      const float* vk = sKV + key * Dv;
#pragma unroll
      for (int c = 0; c < kNC; ++c) {
        const int col = kg + 16 * c;
        if (col < Dv) {
          const float vv = vk[col];
#pragma unroll
          for (int i = 0; i < 4; ++i) o[i][c] = fmaf(p[i], vv, o[i][c]);
        }
      }
    }
  }

  T* out = static_cast<T*>(a.out) + (b * a.o_s0 + (seq.q_row0 + i0) * a.o_s1 + h * a.o_s2);
#pragma unroll
  for (int i = 0; i < 4; ++i) {
    float lt = l[i];
#pragma unroll
    for (int off = 1; off < 16; off <<= 1) lt += __shfl_xor_sync(0xffffffffu, lt, off);
    const int r = rg + 8 * i;
    if (r < rows_valid) {
      const float inv = lt > 0.0f ? 1.0f / lt : 0.0f;
#pragma unroll
      for (int c = 0; c < kNC; ++c) {
        const int col = kg + 16 * c;
        if (col < Dv) out[r * a.o_s1 + col] = from_f32<T>(o[i][c] * inv);
      }
      if (a.lse && kg == 0)
        a.lse[b * a.lse_s0 + h * a.lse_s1 + seq.q_row0 + i0 + r] = lt > 0.0f ? m[i] + logf(lt) : -INFINITY;
    }
  }
}

template <typename T, int kNC>
Status launch(const KernelArgs& args, int64_t B, cudaStream_t stream) {
  void (*kernel)(KernelArgs) = general_attention_kernel<T, kNC>;
  const int smem = general_smem_bytes(args.D, args.Dv);
  FMHA_CUDA_TRY(cudaFuncSetAttribute(kernel, cudaFuncAttributeMaxDynamicSharedMemorySize, smem),
                "general attention: cudaFuncSetAttribute(MaxDynamicSharedMemorySize)");
  return launch_query_blocks(kernel, args, B, kGM, kGThreads, smem, stream, "general attention kernel launch");
}

template <typename T>
Status launch_dv(const KernelArgs& a, int64_t B, cudaStream_t stream) {
  if (a.Dv <= 64) return launch<T, 4>(a, B, stream);
  if (a.Dv <= 128) return launch<T, 8>(a, B, stream);
  return launch<T, 16>(a, B, stream);
}

}  // namespace

int general_attention_smem_bytes(int64_t D, int64_t Dv) { return general_smem_bytes(int(D), int(Dv)); }
int general_attention_block_m() { return kGM; }

Status launch_general_attention(DType dtype, const KernelArgs& a, int64_t B, cudaStream_t stream) {
  switch (dtype) {
    case DType::F32: return launch_dv<float>(a, B, stream);
    case DType::F16: return launch_dv<__half>(a, B, stream);
    default: return launch_dv<__nv_bfloat16>(a, B, stream);
  }
}

}  // namespace cudak
}  // namespace fmha
