// AVX512-BF16 implementation of Bf16DotKernels; compiled with -mavx512bf16.
#if defined(__x86_64__) || defined(_M_X64)
#include <immintrin.h>

#include <cstring>
#include <type_traits>

#include "core/dtype.h"
#include "cpu/bf16_dot_kernels.h"

namespace fmha {
namespace {

constexpr int kRows = 6;  // register tile: 6 rows × 4 vectors, as the fp32 AVX-512 tile

// C tile [R × NV·16] over Kp pairs; `last` masks the tile's last vector.
template <int R, int NV>
inline void gemm_tile(const uint32_t* A, int64_t lda, const uint32_t* B, int64_t ldb, float* C, int64_t ldc,
                      int Kp, bool accumulate, const float* row_scale, float alpha, __mmask16 last) {
  // Every loop over the tile is fully unrolled so the accumulators live in
  // registers (a loop GCC leaves rolled makes it keep them in memory).
  __mmask16 mask[NV];
#pragma GCC unroll 4
  for (int v = 0; v < NV; ++v) mask[v] = v == NV - 1 ? last : __mmask16(0xFFFF);
  __m512 acc[R][NV];
#pragma GCC unroll 6
  for (int r = 0; r < R; ++r) {
    const __m512 c = _mm512_set1_ps(row_scale ? row_scale[r] : 1.0f);
#pragma GCC unroll 4
    for (int v = 0; v < NV; ++v)
      acc[r][v] = accumulate ? _mm512_mul_ps(_mm512_maskz_loadu_ps(mask[v], C + r * ldc + v * 16), c) : _mm512_setzero_ps();
  }
  for (int k = 0; k < Kp; ++k) {
    __m512bh b[NV];
#pragma GCC unroll 4
    for (int v = 0; v < NV; ++v) b[v] = (__m512bh)_mm512_maskz_loadu_epi32(mask[v], B + k * ldb + v * 16);
#pragma GCC unroll 6
    for (int r = 0; r < R; ++r) {
      const __m512bh a = (__m512bh)_mm512_set1_epi32(int(A[r * lda + k]));
#pragma GCC unroll 4
      for (int v = 0; v < NV; ++v) acc[r][v] = _mm512_dpbf16_ps(acc[r][v], a, b[v]);
    }
  }
  const __m512 s = _mm512_set1_ps(alpha);
#pragma GCC unroll 6
  for (int r = 0; r < R; ++r)
#pragma GCC unroll 4
    for (int v = 0; v < NV; ++v)
      _mm512_mask_storeu_ps(C + r * ldc + v * 16, mask[v], alpha == 1.0f ? acc[r][v] : _mm512_mul_ps(acc[r][v], s));
}

template <int NV>
inline void gemm_columns(const uint32_t* A, int64_t lda, const uint32_t* B, int64_t ldb, float* C, int64_t ldc, int M,
                         int Kp, bool accumulate, const float* row_scale, float alpha, __mmask16 last) {
  int i = 0;
  auto tile = [&](auto rows) {
    constexpr int R = decltype(rows)::value;
    gemm_tile<R, NV>(A + i * lda, lda, B, ldb, C + i * ldc, ldc, Kp, accumulate, row_scale ? row_scale + i : nullptr,
                     alpha, last);
    i += R;
  };
  while (i + kRows <= M) tile(std::integral_constant<int, kRows>{});
  if (i + 4 <= M) tile(std::integral_constant<int, 4>{});
  if (i + 2 <= M) tile(std::integral_constant<int, 2>{});
  while (i < M) tile(std::integral_constant<int, 1>{});
}

void gemm(const uint32_t* A, int64_t lda, const uint32_t* B, int64_t ldb, float* C, int64_t ldc, int M, int N,
          int Kp, bool accumulate, const float* row_scale, float alpha) {
  int j = 0;
  for (; j + 64 <= N; j += 64)
    gemm_columns<4>(A, lda, B + j, ldb, C + j, ldc, M, Kp, accumulate, row_scale, alpha, 0xFFFF);
  for (; j < N; j += 16) {
    const int w = N - j < 16 ? N - j : 16;
    gemm_columns<1>(A, lda, B + j, ldb, C + j, ldc, M, Kp, accumulate, row_scale, alpha, __mmask16((1u << w) - 1));
  }
}

inline uint32_t pair(uint16_t lo, uint16_t hi) { return uint32_t(lo) | (uint32_t(hi) << 16); }

void pack_kt(const uint16_t* src, int64_t row_stride, int rows, int cols, uint32_t* dst, int64_t ld) {
  const int cp = (cols + 1) / 2;
  for (int c = 0; c < cp; ++c) std::memset(dst + c * ld + rows, 0, sizeof(uint32_t) * size_t(ld - rows));
  for (int r = 0; r < rows; ++r) {
    const uint16_t* k = src + r * row_stride;
    for (int c = 0; c < cp; ++c) dst[c * ld + r] = pair(k[2 * c], 2 * c + 1 < cols ? k[2 * c + 1] : 0);
  }
}

void pack_v(const uint16_t* src, int64_t row_stride, int rows, int cols, uint32_t* dst, int64_t ld) {
  for (int r = 0; r < rows; r += 2) {
    const uint16_t* v0 = src + r * row_stride;
    const uint16_t* v1 = r + 1 < rows ? v0 + row_stride : nullptr;
    uint32_t* d = dst + (r / 2) * ld;
    for (int c = 0; c < cols; ++c) d[c] = pair(v0[c], v1 ? v1[c] : 0);
  }
}

void to_bf16(const float* src, int64_t lds, int rows, int n, uint16_t* dst, int64_t ldd) {
  for (int r = 0; r < rows; ++r) {
    const float* s = src + r * lds;
    uint16_t* d = dst + r * ldd;
    int c = 0;
    for (; c + 16 <= n; c += 16) _mm256_storeu_si256(reinterpret_cast<__m256i*>(d + c), (__m256i)_mm512_cvtneps_pbh(_mm512_loadu_ps(s + c)));
    for (; c < n; ++c) d[c] = f32_to_bf16(s[c]);
    if (n % 2) d[n] = 0;
  }
}

}  // namespace

const Bf16DotKernels& bf16_dot_kernels_avx512bf16() {
  static const Bf16DotKernels k{gemm, pack_kt, pack_v, to_bf16};
  return k;
}

}  // namespace fmha
#endif
