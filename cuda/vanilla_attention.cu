// The vanilla CUDA baseline (DESIGN §5): materialize S = Q·Kᵀ·scale (+ hooks,
// masks) in fp32 scratch, softmax each row in place, then O = P·V. Three plain
// kernels: two smem-tiled SIMT GEMMs (64 x 64 tiles, 4 x 4 per thread) and a
// warp-per-row softmax. (b, h) pairs, and for one pair too large the query rows,
// are processed in chunks so the score buffer stays within kScratchBudget.
// Padded batches only; the score semantics are score_policy.cuh's, as in the
// fused kernels.
#include <cuda_runtime.h>

#include <algorithm>

#include "cuda_check.h"
#include "score_policy.cuh"
#include "vanilla_attention.h"

namespace fmha {
namespace cudak {
namespace {

constexpr int kT = 64;        // output tile edge
constexpr int kK = 16;        // reduction step
constexpr int kThreads = 256;  // 16 x 16, each 4 x 4 outputs: rows ty + 16·ii, cols tx + 16·jj
constexpr int64_t kScratchBudget = int64_t(1) << 30;

template <typename T>
__device__ __forceinline__ float ld(const T* p, int64_t i) {
  return to_f32<T>(p[i]);
}

// S[z][r][j] for pair pair0 + z, query row row0 + r (r < nrows), key j < Sk.
template <typename T>
__global__ void __launch_bounds__(kThreads) vanilla_scores_kernel(const KernelArgs a, float* S, int pair0, int row0,
                                                                  int nrows) {
  __shared__ float sA[kK][kT + 4];  // Qᵀ slice [d][row]
  __shared__ float sB[kK][kT + 4];  // Kᵀ slice [d][key]
  const int pair = pair0 + int(blockIdx.z);
  const int b = pair / a.Hq, h = pair - b * a.Hq, hk = h / a.group;
  const int r_base = int(blockIdx.y) * kT, j_base = int(blockIdx.x) * kT;
  const int tid = int(threadIdx.x), tx = tid & 15, ty = tid >> 4;
  const int rows_valid = min(kT, nrows - r_base), keys_valid = min(kT, a.Sk - j_base);
  const T* q = static_cast<const T*>(a.q) + (b * a.q_s0 + int64_t(row0 + r_base) * a.q_s1 + h * a.q_s2);
  const T* k = static_cast<const T*>(a.k) + (b * a.k_s0 + int64_t(j_base) * a.k_s1 + hk * a.k_s2);

  float acc[4][4] = {};
  for (int d0 = 0; d0 < a.D; d0 += kK) {
#pragma unroll
    for (int it = 0; it < kT * kK / kThreads; ++it) {
      const int idx = tid + it * kThreads, r = idx >> 4, dd = idx & 15;
      const bool in_d = d0 + dd < a.D;
      sA[dd][r] = r < rows_valid && in_d ? ld(q, r * a.q_s1 + d0 + dd) : 0.0f;
      sB[dd][r] = r < keys_valid && in_d ? ld(k, r * a.k_s1 + d0 + dd) : 0.0f;
    }
    __syncthreads();
#pragma unroll
    for (int dd = 0; dd < kK; ++dd) {
      float x[4], y[4];
#pragma unroll
      for (int u = 0; u < 4; ++u) {
        x[u] = sA[dd][ty + 16 * u];
        y[u] = sB[dd][tx + 16 * u];
      }
#pragma unroll
      for (int ii = 0; ii < 4; ++ii)
#pragma unroll
        for (int jj = 0; jj < 4; ++jj) acc[ii][jj] = fmaf(x[ii], y[jj], acc[ii][jj]);
    }
    __syncthreads();
  }

  const SeqRows seq = seq_rows(a, b);
  const MaskRule rule = mask_rule(a, seq);
  const ScoreHooks<T> hooks = score_hooks<T>(a, b, h);
#pragma unroll
  for (int ii = 0; ii < 4; ++ii) {
    const int r = r_base + ty + 16 * ii;
    if (r >= nrows) continue;
    const int i = row0 + r;
    const int lo = rule.lo(i), hi = rule.hi(i), diag = i + rule.offset;
    float* srow = S + (int64_t(blockIdx.z) * nrows + r) * a.Sk;
#pragma unroll
    for (int jj = 0; jj < 4; ++jj) {
      const int j = j_base + tx + 16 * jj;
      if (j < a.Sk) srow[j] = (j < lo || j >= hi) ? -INFINITY : hooks(acc[ii][jj], i, j, diag);
    }
  }
}

// One warp per score row: online (max, sum) per lane, merged across the warp, then P in place.
__global__ void __launch_bounds__(kThreads) vanilla_softmax_kernel(const KernelArgs a, float* S, int pair0, int row0,
                                                                   int nrows, int64_t total_rows) {
  const int64_t gw = int64_t(blockIdx.x) * (kThreads / 32) + (threadIdx.x >> 5);
  const int lane = int(threadIdx.x & 31);
  if (gw >= total_rows) return;
  float* row = S + gw * a.Sk;
  float m = -INFINITY, l = 0.0f;
  for (int j = lane; j < a.Sk; j += 32) {
    const float s = row[j];
    if (s == -INFINITY) continue;
    if (s > m) {
      l = l * expf(m - s) + 1.0f;
      m = s;
    } else {
      l += expf(s - m);
    }
  }
#pragma unroll
  for (int off = 16; off > 0; off >>= 1) {
    const float m2 = __shfl_xor_sync(0xffffffffu, m, off);
    const float l2 = __shfl_xor_sync(0xffffffffu, l, off);
    const float mm = fmaxf(m, m2);
    l = mm == -INFINITY ? 0.0f : l * expf(m - mm) + l2 * expf(m2 - mm);
    m = mm;
  }
  const float inv = l > 0.0f ? 1.0f / l : 0.0f;
  for (int j = lane; j < a.Sk; j += 32) row[j] = m == -INFINITY ? 0.0f : expf(row[j] - m) * inv;
  if (a.lse && lane == 0) {
    const int z = int(gw / nrows), r = int(gw - int64_t(z) * nrows);
    const int pair = pair0 + z, b = pair / a.Hq, h = pair - b * a.Hq;
    a.lse[b * a.lse_s0 + h * a.lse_s1 + row0 + r] = l > 0.0f ? m + logf(l) : -INFINITY;
  }
}

// O[b, row0 + r, h, :] = P[z][r][:] · V[b, :, hk, :].
template <typename T>
__global__ void __launch_bounds__(kThreads) vanilla_pv_kernel(const KernelArgs a, const float* P, int pair0, int row0,
                                                              int nrows) {
  __shared__ float sA[kK][kT + 4];  // Pᵀ slice [key][row]
  __shared__ float sB[kK][kT + 4];  // V slice [key][col]
  const int pair = pair0 + int(blockIdx.z);
  const int b = pair / a.Hq, h = pair - b * a.Hq, hk = h / a.group;
  const int r_base = int(blockIdx.y) * kT, c_base = int(blockIdx.x) * kT;
  const int tid = int(threadIdx.x), tx = tid & 15, ty = tid >> 4;
  const int rows_valid = min(kT, nrows - r_base), cols_valid = min(kT, a.Dv - c_base);
  const float* p = P + (int64_t(blockIdx.z) * nrows + r_base) * a.Sk;
  const T* v = static_cast<const T*>(a.v) + (b * a.v_s0 + hk * a.v_s2 + c_base);
  // Keys at or past seqlensK[b] have P = 0: stop there.
  const int kv_end = a.seqlens_k ? a.seqlens_k[b] : a.Sk;

  float acc[4][4] = {};
  for (int j0 = 0; j0 < kv_end; j0 += kK) {
#pragma unroll
    for (int it = 0; it < kT * kK / kThreads; ++it) {
      const int idx = tid + it * kThreads;
      const int r = idx >> 4, jj = idx & 15;  // P: 64 rows x 16 keys, keys fastest
      sA[jj][r] = r < rows_valid && j0 + jj < kv_end ? p[int64_t(r) * a.Sk + j0 + jj] : 0.0f;
      const int vj = idx >> 6, c = idx & 63;  // V: 16 keys x 64 columns, columns fastest
      sB[vj][c] = j0 + vj < kv_end && c < cols_valid ? ld(v, int64_t(j0 + vj) * a.v_s1 + c) : 0.0f;
    }
    __syncthreads();
#pragma unroll
    for (int jj = 0; jj < kK; ++jj) {
      float x[4], y[4];
#pragma unroll
      for (int u = 0; u < 4; ++u) {
        x[u] = sA[jj][ty + 16 * u];
        y[u] = sB[jj][tx + 16 * u];
      }
#pragma unroll
      for (int ii = 0; ii < 4; ++ii)
#pragma unroll
        for (int cc = 0; cc < 4; ++cc) acc[ii][cc] = fmaf(x[ii], y[cc], acc[ii][cc]);
    }
    __syncthreads();
  }

  T* out = static_cast<T*>(a.out) + (b * a.o_s0 + h * a.o_s2 + c_base);
#pragma unroll
  for (int ii = 0; ii < 4; ++ii) {
    const int r = ty + 16 * ii;
    if (r >= rows_valid) continue;
#pragma unroll
    for (int cc = 0; cc < 4; ++cc) {
      const int c = tx + 16 * cc;
      if (c < cols_valid) out[int64_t(row0 + r_base + r) * a.o_s1 + c] = from_f32<T>(acc[ii][cc]);
    }
  }
}

unsigned blocks(int64_t n, int64_t per) { return unsigned((n + per - 1) / per); }

template <typename T>
Status run(const KernelArgs& a, int64_t B, cudaStream_t stream, const CudaScratch& scratch) {
  const int64_t pairs = B * a.Hq, Sq = a.Sq, Sk = a.Sk;
  const int64_t row_bytes = Sk * int64_t(sizeof(float));
  if (row_bytes > kScratchBudget)
    return {StatusCode::OutOfMemory, "vanilla CUDA attention: one score row of " + std::to_string(Sk) +
                                         " keys exceeds the 1 GiB score buffer"};
  int64_t rows_chunk = Sq, pairs_chunk = 1;
  if (Sq * row_bytes <= kScratchBudget)
    pairs_chunk = std::min<int64_t>({pairs, kScratchBudget / (Sq * row_bytes), 65535});
  else
    rows_chunk = kScratchBudget / row_bytes;
  rows_chunk = std::min<int64_t>(rows_chunk, int64_t(65535) * kT);  // grid.y of the GEMMs
  const size_t bytes = size_t(pairs_chunk * rows_chunk * row_bytes);
  if (!scratch.alloc) return {StatusCode::OutOfMemory, "vanilla CUDA attention: no scratch allocator"};
  float* S = static_cast<float*>(scratch.alloc(scratch.self, bytes));
  if (!S)
    return {StatusCode::OutOfMemory,
            "vanilla CUDA attention: could not allocate a " + std::to_string(bytes) + "-byte score buffer"};

  for (int64_t pair0 = 0; pair0 < pairs; pair0 += pairs_chunk) {
    const int np = int(std::min(pairs_chunk, pairs - pair0));
    for (int64_t row0 = 0; row0 < Sq; row0 += rows_chunk) {
      const int nr = int(std::min(rows_chunk, Sq - row0));
      vanilla_scores_kernel<T><<<dim3(blocks(Sk, kT), blocks(nr, kT), unsigned(np)), kThreads, 0, stream>>>(
          a, S, int(pair0), int(row0), nr);
      FMHA_CUDA_LAUNCHED("vanilla attention: scores kernel launch");
      const int64_t total_rows = int64_t(np) * nr;
      vanilla_softmax_kernel<<<blocks(total_rows, kThreads / 32), kThreads, 0, stream>>>(a, S, int(pair0),
                                                                                         int(row0), nr, total_rows);
      FMHA_CUDA_LAUNCHED("vanilla attention: softmax kernel launch");
      vanilla_pv_kernel<T><<<dim3(blocks(a.Dv, kT), blocks(nr, kT), unsigned(np)), kThreads, 0, stream>>>(
          a, S, int(pair0), int(row0), nr);
      FMHA_CUDA_LAUNCHED("vanilla attention: P·V kernel launch");
    }
  }
  return {};
}

}  // namespace

Status launch_vanilla_attention(DType dtype, const KernelArgs& a, int64_t B, cudaStream_t stream,
                                const CudaScratch& scratch) {
  switch (dtype) {
    case DType::F32: return run<float>(a, B, stream, scratch);
    case DType::F16: return run<__half>(a, B, stream, scratch);
    default: return run<__nv_bfloat16>(a, B, stream, scratch);
  }
}

}  // namespace cudak
}  // namespace fmha
