// The inner loops of the CPU attention kernels, one table per SIMD path.
// The tiling drivers (fused_attention.cc, vanilla_attention.cc) are compiled for
// the baseline ISA and call these through the table chosen at run time, so the
// binary never requires the build machine's ISA.
#pragma once
#include <cstdint>
#include "core/dtype.h"
#include "cpu/cpu_features.h"

namespace fmha {

struct CpuMicrokernels {
  // C[M×N] = A[M×K] · B[K×N], or with accumulate C = diag(row_scale)·C + A·B
  // (row_scale null: no scaling); all row-major with leading dimensions lda, ldb, ldc.
  void (*gemm)(const float* A, int64_t lda, const float* B, int64_t ldb, float* C, int64_t ldc,
               int M, int N, int K, bool accumulate, const float* row_scale);
  // dst[c·ldd + r] = alpha · src[r·lds + c], r < rows, c < cols (float32 rows; a K tile becomes Kᵀ).
  void (*transpose)(const float* src, int64_t lds, int rows, int cols, float alpha, float* dst, int64_t ldd);
  // Decode, straight from a [keys, heads, D] cache (element type t, widened in
  // registers; key j of head h at K + j·ldk + h·ldh elements), four keys at a
  // time with heads inner so memory streams front to back.
  // s[(h·R + r)·lds + j] = q[h·R + r] · k(j, h), for H heads of R query rows each, j < n.
  // Both also prefetch [pf, pf + pf_bytes) (what the next kernel reads; pf may
  // be null), spread evenly over their own steps.
  void (*decode_qk)(const float* q, int H, int R, int D, const void* K, DType t, int64_t ldk, int64_t ldh, int n,
                    float* s, int64_t lds, const void* pf, int64_t pf_bytes);
  // acc[(h·R + r)·Dv + c] += Σ_j p[(h·R + r)·ldp + j] · v(j, h)[c].
  void (*decode_pv)(const float* p, int64_t ldp, int H, int R, int Dv, const void* V, DType t, int64_t ldv,
                    int64_t ldh, int n, float* acc, const void* pf, int64_t pf_bytes);
  // Largest of x[0..n); -inf for n == 0.
  float (*row_max)(const float* x, int n);
  // x[j] = exp(x[j] - m) in place (exactly 0 where x[j] - m < -87); returns the sum.
  float (*exp_sum)(float* x, int n, float m);
  // One key block of the online softmax over rows s[r·lds + c], r < rows, c < n
  // (masks already applied): m[r] becomes the running max, s = exp(s − m[r]),
  // l[r] = l[r]·alpha[r] + Σ s with alpha[r] = exp(m_old − m_new), the factor
  // the row's accumulator must be scaled by. Rows with nothing visible yet keep
  // m = -inf and get s = 0, alpha = 1.
  void (*online_softmax)(float* s, int64_t lds, int rows, int n, float* m, float* l, float* alpha);
  // x[j] *= a
  void (*scale)(float* x, int n, float a);
  // dst[j] = float(src[j]) for n elements of type t (src is contiguous).
  void (*load_row)(const void* src, DType t, int n, float* dst);
  // dst[j] = dtype(src[j] * a), rounded to nearest even.
  void (*store_row)(const float* src, float a, int n, DType t, void* dst);
  // `iters` rounds of independent multiply-adds at this path's vector width;
  // returns the FLOPs done. The machine limit the benchmarks report against.
  double (*fma_probe)(int64_t iters);
  // Sum of x[0..n) with several independent vector accumulators: a streaming
  // read at this path's width, for measuring read bandwidth.
  float (*read_sum)(const float* x, int64_t n);
};

const CpuMicrokernels& cpu_microkernels(Isa isa);

// Per-ISA tables; only those the target architecture compiles exist.
const CpuMicrokernels& microkernels_scalar();
#if defined(__x86_64__) || defined(_M_X64)
const CpuMicrokernels& microkernels_avx2();
const CpuMicrokernels& microkernels_avx512();
#endif

}  // namespace fmha
