// AVX512-BF16 implementation of Bf16DotKernels; compiled with -mavx512bf16.
#if defined(__x86_64__) || defined(_M_X64)
#include <immintrin.h>

#include <cstring>
#include <type_traits>

#include "core/dtype.h"
#include "cpu/bf16_dot_kernels.h"
#include "cpu/cache_prefetch.h"

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

// ---- Decode straight from the cache: K rows are already bf16 pairs along D;
// V rows are paired along keys in registers (two keys' rows interleaved). ----

inline __mmask32 first_words(int n) { return n >= 32 ? ~__mmask32(0) : n <= 0 ? 0 : (__mmask32(1) << n) - 1; }
inline __mmask16 first_lanes(int n) { return n >= 16 ? __mmask16(0xFFFF) : n <= 0 ? 0 : __mmask16((1u << n) - 1); }

// Whole tiles (Full) use plain loads and stores; edge tiles mask them.
template <bool Full>
inline __m512i load_words(const uint16_t* p, __mmask32 m) {
  if constexpr (Full) return _mm512_loadu_si512(p);
  else return _mm512_maskz_loadu_epi16(m, p);
}
template <bool Full>
inline __m512 load_lanes(const float* p, __mmask16 m) {
  if constexpr (Full) return _mm512_loadu_ps(p);
  else return _mm512_maskz_loadu_ps(m, p);
}
template <bool Full>
inline void store_lanes(float* p, __mmask16 m, __m512 v) {
  if constexpr (Full) _mm512_storeu_ps(p, v);
  else _mm512_mask_storeu_ps(p, m, v);
}

// Runs f(NR, Full) with both as compile-time constants (std::integral_constant), NR = min(rows, 4).
template <typename F>
inline void with_tile(int rows, bool full, F&& f) {
  auto go = [&](auto nr) {
    if (full) f(nr, std::true_type{});
    else f(nr, std::false_type{});
  };
  switch (rows < 4 ? rows : 4) {
    case 1: go(std::integral_constant<int, 1>{}); break;
    case 2: go(std::integral_constant<int, 2>{}); break;
    case 3: go(std::integral_constant<int, 3>{}); break;
    default: go(std::integral_constant<int, 4>{}); break;
  }
}

// The 16 dot products of a 4-row × 4-key tile from its accumulators, a[r][i]
// holding lane partials of q_r · k_i: one transposing reduction for all 16
// (each step adds two vectors' halves side by side), then row r's four sums
// stored at out + r·lds (the first nk of them). The maskz forms of the
// shuffles: GCC 12 warns on the plain ones (their undefined source operand).
template <int NR, bool Full>
inline void store_tile_sums(__m512 (&a)[NR][4], int nk, float scale, float* out, int64_t lds) {
  __m512 t[4];
#pragma GCC unroll 4
  for (int r = 0; r < 4; ++r) {
    if (r >= NR) { t[r] = _mm512_setzero_ps(); continue; }
    const __m512 s01 = _mm512_add_ps(_mm512_maskz_shuffle_f32x4(0xFFFF, a[r][0], a[r][1], 0x44),
                                     _mm512_maskz_shuffle_f32x4(0xFFFF, a[r][0], a[r][1], 0xEE));
    const __m512 s23 = _mm512_add_ps(_mm512_maskz_shuffle_f32x4(0xFFFF, a[r][2], a[r][3], 0x44),
                                     _mm512_maskz_shuffle_f32x4(0xFFFF, a[r][2], a[r][3], 0xEE));
    // 128-bit lane i: four partials of q_r · k_i
    t[r] = _mm512_add_ps(_mm512_maskz_shuffle_f32x4(0xFFFF, s01, s23, 0x88),
                         _mm512_maskz_shuffle_f32x4(0xFFFF, s01, s23, 0xDD));
  }
  const __m512 w01 = _mm512_add_ps(_mm512_maskz_shuffle_ps(0xFFFF, t[0], t[1], 0x44),
                                   _mm512_maskz_shuffle_ps(0xFFFF, t[0], t[1], 0xEE));
  const __m512 w23 = _mm512_add_ps(_mm512_maskz_shuffle_ps(0xFFFF, t[2], t[3], 0x44),
                                   _mm512_maskz_shuffle_ps(0xFFFF, t[2], t[3], 0xEE));
  // element 4i + r: q_r · k_i; regrouped so that 128-bit lane r holds row r's four keys
  const __m512 z = _mm512_add_ps(_mm512_maskz_shuffle_ps(0xFFFF, w01, w23, 0x88),
                                 _mm512_maskz_shuffle_ps(0xFFFF, w01, w23, 0xDD));
  const __m512 y = _mm512_mul_ps(
      _mm512_maskz_permutexvar_ps(0xFFFF, _mm512_setr_epi32(0, 4, 8, 12, 1, 5, 9, 13, 2, 6, 10, 14, 3, 7, 11, 15), z),
      _mm512_set1_ps(scale));
  typedef float v16 __attribute__((vector_size(64)));
  typedef float v4 __attribute__((vector_size(16)));
  const v16 yv = (v16)y;
  const v4 rows[4] = {__builtin_shufflevector(yv, yv, 0, 1, 2, 3), __builtin_shufflevector(yv, yv, 4, 5, 6, 7),
                      __builtin_shufflevector(yv, yv, 8, 9, 10, 11), __builtin_shufflevector(yv, yv, 12, 13, 14, 15)};
#pragma GCC unroll 4
  for (int r = 0; r < NR; ++r) {
    if constexpr (Full) __builtin_memcpy(out + r * lds, &rows[r], sizeof rows[r]);
    else _mm_mask_storeu_ps(out + r * lds, __mmask8(first_lanes(nk)), (__m128)rows[r]);
  }
}

// One NR-row × 4-key tile of decode_qk (keys past nk read nothing and store
// nothing). Full: four keys and D a multiple of 32.
template <int NR, bool Full>
inline void qk_tile(const uint16_t* q, int64_t ldq, const uint16_t* const k[4], int nk, int D, float scale, float* out,
                    int64_t lds) {
  __m512 a[NR][4];
#pragma GCC unroll 4
  for (int r = 0; r < NR; ++r)
#pragma GCC unroll 4
    for (int i = 0; i < 4; ++i) a[r][i] = _mm512_setzero_ps();
  for (int d = 0; d < D; d += 32) {
    const __mmask32 m = first_words(D - d);
    __m512bh kv[4];
#pragma GCC unroll 4
    for (int i = 0; i < 4; ++i) kv[i] = (__m512bh)load_words<Full>(k[i] + d, i < nk ? m : 0);
#pragma GCC unroll 4
    for (int r = 0; r < NR; ++r) {
      const __m512bh qv = (__m512bh)load_words<Full>(q + r * ldq + d, m);
#pragma GCC unroll 4
      for (int i = 0; i < 4; ++i) a[r][i] = _mm512_dpbf16_ps(a[r][i], qv, kv[i]);
    }
  }
  store_tile_sums<NR, Full>(a, nk, scale, out, lds);
}

void decode_qk(const uint16_t* q, int64_t ldq, int H, int R, int D, const uint16_t* K, int64_t ldk, int64_t ldh, int n,
               float scale, float* s, int64_t lds, const void* pf, int64_t pf_bytes) {
  PrefetchStream ahead(pf, pf_bytes, int64_t((n + 3) / 4) * H);
  for (int j0 = 0; j0 < n; j0 += 4) {
    const int nk = n - j0 < 4 ? n - j0 : 4;
    for (int h = 0; h < H; ++h) {
      ahead.next();
      const uint16_t* k[4];
      for (int i = 0; i < 4; ++i) k[i] = K + (j0 + (i < nk ? i : 0)) * ldk + h * ldh;
      for (int r0 = 0; r0 < R; r0 += 4) {
        const uint16_t* qh = q + (int64_t(h) * R + r0) * ldq;
        float* out = s + (int64_t(h) * R + r0) * lds + j0;
        with_tile(R - r0, nk == 4 && D % 32 == 0, [&](auto nr, auto full) {
          qk_tile<decltype(nr)::value, decltype(full)::value>(qh, ldq, k, nk, D, scale, out, lds);
        });
      }
    }
  }
}

// Keys per decode_pv step (pairs of keys): the accumulator tile is loaded and stored once per step.
constexpr int kPvPairs = 8;
static_assert(kPvPairs <= 8, "p is converted 16 keys at a time");

// NR rows × 64 columns [c, c + 64) of decode_pv over one step's keys
// (v[i] for i < nk ≤ 2·kPvPairs), p already as bf16 pairs along keys.
// Full: all 2·kPvPairs keys and all 64 columns.
template <int NR, bool Full>
inline void pv_columns(const uint32_t (&pp)[4][8], const uint16_t* const v[2 * kPvPairs], int nk, int Dv, int c,
                       float* acc) {
  if constexpr (Full) nk = 2 * kPvPairs;
  // Interleaves two keys' 32 columns into pairs: columns 0-15, then 16-31.
  alignas(64) static constexpr uint16_t kInterleave[32] = {0, 32, 1, 33, 2, 34, 3, 35, 4, 36, 5, 37, 6, 38, 7, 39,
                                                          8, 40, 9, 41, 10, 42, 11, 43, 12, 44, 13, 45, 14, 46, 15, 47};
  const __m512i lo = _mm512_load_si512(kInterleave);
  const __m512i hi = _mm512_add_epi16(lo, _mm512_set1_epi16(16));
  const __mmask32 cw[2] = {first_words(Dv - c), first_words(Dv - c - 32)};
  __mmask16 cl[4];
  for (int x = 0; x < 4; ++x) cl[x] = first_lanes(Dv - c - 16 * x);
  __m512 a[NR][4];
#pragma GCC unroll 4
  for (int r = 0; r < NR; ++r)
#pragma GCC unroll 4
    for (int x = 0; x < 4; ++x) a[r][x] = load_lanes<Full>(acc + r * Dv + c + 16 * x, cl[x]);
#pragma GCC unroll 8
  for (int j = 0; j < kPvPairs; ++j) {
    if (!Full && 2 * j >= nk) break;
    __m512bh pairs[4];  // keys 2j and 2j + 1, paired per column
#pragma GCC unroll 2
    for (int half = 0; half < 2; ++half) {
      const __m512i v0 = load_words<Full>(v[2 * j] + c + 32 * half, cw[half]);
      const __m512i v1 = load_words<Full>(v[2 * j + 1] + c + 32 * half, 2 * j + 1 < nk ? cw[half] : 0);
      pairs[2 * half] = (__m512bh)_mm512_permutex2var_epi16(v0, lo, v1);
      pairs[2 * half + 1] = (__m512bh)_mm512_permutex2var_epi16(v0, hi, v1);
    }
#pragma GCC unroll 4
    for (int r = 0; r < NR; ++r) {
      const __m512bh b = (__m512bh)_mm512_set1_epi32(int(pp[r][j]));
#pragma GCC unroll 4
      for (int x = 0; x < 4; ++x) a[r][x] = _mm512_dpbf16_ps(a[r][x], b, pairs[x]);
    }
  }
#pragma GCC unroll 4
  for (int r = 0; r < NR; ++r)
#pragma GCC unroll 4
    for (int x = 0; x < 4; ++x) store_lanes<Full>(acc + r * Dv + c + 16 * x, cl[x], a[r][x]);
}

void decode_pv(const float* p, int64_t ldp, int H, int R, int Dv, const uint16_t* V, int64_t ldv, int64_t ldh, int n,
               float* acc, const void* pf, int64_t pf_bytes) {
  constexpr int kKeys = 2 * kPvPairs;
  PrefetchStream ahead(pf, pf_bytes, int64_t((n + kKeys - 1) / kKeys) * H);
  for (int j0 = 0; j0 < n; j0 += kKeys) {
    const int nk = n - j0 < kKeys ? n - j0 : kKeys;
    for (int h = 0; h < H; ++h) {
      ahead.next();
      const uint16_t* v[kKeys];
      for (int i = 0; i < kKeys; ++i) v[i] = V + (j0 + (i < nk ? i : 0)) * ldv + h * ldh;
      for (int r0 = 0; r0 < R; r0 += 4) {
        const int64_t row = int64_t(h) * R + r0;
        const int nr = R - r0 < 4 ? R - r0 : 4;
        uint32_t pp[4][8];  // p as bf16 pairs along keys; keys past nk: 0
        for (int r = 0; r < nr; ++r)
          _mm256_storeu_si256(reinterpret_cast<__m256i*>(pp[r]),
                              (__m256i)_mm512_cvtneps_pbh(_mm512_maskz_loadu_ps(first_lanes(nk), p + (row + r) * ldp + j0)));
        float* a = acc + row * Dv;
        for (int c = 0; c < Dv; c += 64)
          with_tile(nr, nk == kKeys && c + 64 <= Dv, [&](auto rows, auto full) {
            pv_columns<decltype(rows)::value, decltype(full)::value>(pp, v, nk, Dv, c, a);
          });
      }
    }
  }
}

}  // namespace

const Bf16DotKernels& bf16_dot_kernels_avx512bf16() {
  static const Bf16DotKernels k{gemm, pack_kt, pack_v, to_bf16, decode_qk, decode_pv};
  return k;
}

}  // namespace fmha
#endif
