// Inner loops of the bfloat16 path on CPUs with AVX512-BF16: vdpbf16ps does 32
// bf16 multiply-adds into float32 per instruction, twice the fp32 FMA rate
// (measured 232 vs 126 GFLOP/s on one Zen 4 core). Both GEMMs (and decode) read their
// operands as bf16 pairs along the reduction dimension, packed as uint32 (lower
// half first): Q·Kᵀ pairs along D, P·V pairs along keys. Accumulation is fp32;
// P is rounded to bf16 before P·V, as DESIGN §accuracy allows for 16-bit inputs.
#pragma once
#include <cstdint>

namespace fmha {

struct Bf16DotKernels {
  // C[M×N] = alpha·A·B, or with accumulate C = diag(row_scale)·C + A·B
  // (row_scale null: no scaling). A: M rows of Kp pairs, leading dimension lda
  // pairs; B: Kp rows of N pair-columns, leading dimension ldb. N need not be a
  // multiple of 16: the last vector is masked, nothing past column N is read or written.
  void (*gemm)(const uint32_t* A, int64_t lda, const uint32_t* B, int64_t ldb, float* C, int64_t ldc, int M,
               int N, int Kp, bool accumulate, const float* row_scale, float alpha);
  // Kᵀ as pairs along D: dst[(c/2)·ld + r] = (k_r[c], k_r[c+1]), r < rows,
  // c < cols (odd cols: upper half 0), k_r = src + r·row_stride; columns [rows, ld) zeroed.
  void (*pack_kt)(const uint16_t* src, int64_t row_stride, int rows, int cols, uint32_t* dst, int64_t ld);
  // V as pairs along keys: dst[(r/2)·ld + c] = (v_r[c], v_{r+1}[c]), r < rows
  // (odd rows: upper half 0), c < cols.
  void (*pack_v)(const uint16_t* src, int64_t row_stride, int rows, int cols, uint32_t* dst, int64_t ld);
  // dst[r·ldd + c] = bf16(src[r·lds + c]) rounded to nearest even, c < n; an odd n gets a 0 pad.
  void (*to_bf16)(const float* src, int64_t lds, int rows, int n, uint16_t* dst, int64_t ldd);
  // Decode straight from a bf16 [keys, heads, D] cache (key j of head h at
  // K + j·ldk + h·ldh elements), in CpuMicrokernels::decode_qk's order (four
  // keys at a time, heads inner): s[(h·R + r)·lds + j] = scale · q_(h·R + r) · k(j, h)
  // for H heads of R query rows, j < n. q: unscaled bf16 rows ldq apart, so
  // each product is exact in the fp32 accumulator. pf, pf_bytes: as CpuMicrokernels::decode_qk.
  void (*decode_qk)(const uint16_t* q, int64_t ldq, int H, int R, int D, const uint16_t* K, int64_t ldk, int64_t ldh,
                    int n, float scale, float* s, int64_t lds, const void* pf, int64_t pf_bytes);
  // acc[(h·R + r)·Dv + c] += Σ_j bf16(p[(h·R + r)·ldp + j]) · v(j, h)[c], j < n.
  void (*decode_pv)(const float* p, int64_t ldp, int H, int R, int Dv, const uint16_t* V, int64_t ldv, int64_t ldh,
                    int n, float* acc, const void* pf, int64_t pf_bytes);
};

// The kernels when this CPU has AVX512-BF16 and fmha's SIMD path is AVX-512; else null.
const Bf16DotKernels* bf16_dot_kernels();

}  // namespace fmha
