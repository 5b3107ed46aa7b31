// Generic SIMD inner loops written with GCC/Clang vector extensions, compiled
// once per ISA by microkernels_<isa>.cc, which define:
//   FMHA_ISA_NS      namespace for this copy (internal linkage inside it)
//   FMHA_VEC_BYTES   vector width in bytes (16 SSE2/NEON, 32 AVX2, 64 AVX-512)
//   FMHA_GEMM_ROWS   register tile rows; FMHA_GEMM_VECS vectors per tile row
// Nothing here may use inline functions with external linkage (std:: templates,
// <cmath> overloads): the linker could merge an AVX-512 copy into the baseline
// path. Everything lives in an anonymous namespace.
#include <cstdint>
#include <type_traits>
#include <utility>
#include "core/dtype.h"
#include "cpu/cache_prefetch.h"
#include "cpu/microkernels.h"
#if defined(__F16C__) || defined(__AVX2__) || FMHA_VEC_BYTES == 64
#include <immintrin.h>
#endif

namespace fmha {
namespace FMHA_ISA_NS {
namespace {

constexpr int VL = FMHA_VEC_BYTES / 4;
typedef float vf __attribute__((vector_size(FMHA_VEC_BYTES)));
typedef int32_t vi __attribute__((vector_size(FMHA_VEC_BYTES)));

inline vf loadv(const float* p) { vf v; __builtin_memcpy(&v, p, sizeof v); return v; }
inline void storev(float* p, vf v) { __builtin_memcpy(p, &v, sizeof v); }
inline vf splat(float x) { return x - vf{}; }  // x - (+0) is x for every x, so this folds to a broadcast

// The first n < VL lanes of a vector, the rest zero / untouched: masked
// instructions where the ISA has them, so a partial vector never touches
// memory past p + n.
inline vf loadv_first(const float* p, int n) {
#if FMHA_VEC_BYTES == 64
  return (vf)_mm512_maskz_loadu_ps(__mmask16((1u << n) - 1), p);
#elif defined(__AVX2__)
  const __m256i lanes = _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7);
  return (vf)_mm256_maskload_ps(p, _mm256_cmpgt_epi32(_mm256_set1_epi32(n), lanes));
#else
  vf v{};
  __builtin_memcpy(&v, p, sizeof(float) * size_t(n));
  return v;
#endif
}
inline void storev_first(float* p, vf v, int n) {
#if FMHA_VEC_BYTES == 64
  _mm512_mask_storeu_ps(p, __mmask16((1u << n) - 1), (__m512)v);
#elif defined(__AVX2__)
  const __m256i lanes = _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7);
  _mm256_maskstore_ps(p, _mm256_cmpgt_epi32(_mm256_set1_epi32(n), lanes), (__m256)v);
#else
  __builtin_memcpy(p, &v, sizeof(float) * size_t(n));
#endif
}

// One register tile: C[R × NV·VL] (+)= A[R × K] · B[K × NV·VL]. With Tail the
// last vector holds only `tail` < VL columns (masked loads and stores), so a
// column count that is not a multiple of VL stays vectorized.
template <int R, int NV, bool Tail>
inline void gemm_tile(const float* A, int64_t lda, const float* B, int64_t ldb, float* C, int64_t ldc,
                      int K, bool accumulate, const float* row_scale, int tail) {
  auto load = [&](const float* p, int v) { return Tail && v == NV - 1 ? loadv_first(p, tail) : loadv(p); };
  vf acc[R][NV];
#pragma GCC unroll 16
  for (int r = 0; r < R; ++r)
#pragma GCC unroll 16
    for (int v = 0; v < NV; ++v) acc[r][v] = vf{};
  if (accumulate) {
#pragma GCC unroll 16
    for (int r = 0; r < R; ++r) {
      const vf c = splat(row_scale ? row_scale[r] : 1.0f);
#pragma GCC unroll 16
      for (int v = 0; v < NV; ++v) acc[r][v] = load(C + r * ldc + v * VL, v) * c;
    }
  }
  for (int k = 0; k < K; ++k) {
    vf b[NV];
#pragma GCC unroll 16
    for (int v = 0; v < NV; ++v) b[v] = load(B + k * ldb + v * VL, v);
#pragma GCC unroll 16
    for (int r = 0; r < R; ++r) {
      const vf a = splat(A[r * lda + k]);
#pragma GCC unroll 16
      for (int v = 0; v < NV; ++v) acc[r][v] += a * b[v];
    }
  }
#pragma GCC unroll 16
  for (int r = 0; r < R; ++r)
#pragma GCC unroll 16
    for (int v = 0; v < NV; ++v) {
      if (Tail && v == NV - 1) storev_first(C + r * ldc + v * VL, acc[r][v], tail);
      else storev(C + r * ldc + v * VL, acc[r][v]);
    }
}

// Columns [j, j + w) for all M rows with a fixed vector count per tile row.
template <int NV, bool Tail = false>
inline void gemm_columns(const float* A, int64_t lda, const float* B, int64_t ldb, float* C, int64_t ldc,
                         int M, int K, bool accumulate, const float* row_scale, int tail = VL) {
  int i = 0;
  auto tile = [&](auto rows) {
    constexpr int R = decltype(rows)::value;
    gemm_tile<R, NV, Tail>(A + i * lda, lda, B, ldb, C + i * ldc, ldc, K, accumulate,
                           row_scale ? row_scale + i : nullptr, tail);
    i += R;
  };
  while (i + FMHA_GEMM_ROWS <= M) tile(std::integral_constant<int, FMHA_GEMM_ROWS>{});
  // Leftover rows in halving tiles, so a block size that is not a multiple of the tile stays fast.
  if (FMHA_GEMM_ROWS > 4 && i + 4 <= M) tile(std::integral_constant<int, 4>{});
  if (FMHA_GEMM_ROWS > 2 && i + 2 <= M) tile(std::integral_constant<int, 2>{});
  while (i < M) tile(std::integral_constant<int, 1>{});
}

// The last `cols` < FMHA_GEMM_VECS·VL columns in one pass of tiles ceil(cols / VL)
// vectors wide, the last vector partial (masked) when cols is not a multiple of VL.
template <int NV = 1>
inline void gemm_last_columns(const float* A, int64_t lda, const float* B, int64_t ldb, float* C, int64_t ldc,
                              int M, int cols, int K, bool accumulate, const float* row_scale) {
  if constexpr (NV < FMHA_GEMM_VECS)
    if (cols > NV * VL) return gemm_last_columns<NV + 1>(A, lda, B, ldb, C, ldc, M, cols, K, accumulate, row_scale);
  if (cols == NV * VL) gemm_columns<NV>(A, lda, B, ldb, C, ldc, M, K, accumulate, row_scale);
  else gemm_columns<NV, true>(A, lda, B, ldb, C, ldc, M, K, accumulate, row_scale, cols - (NV - 1) * VL);
}

void gemm(const float* A, int64_t lda, const float* B, int64_t ldb, float* C, int64_t ldc,
          int M, int N, int K, bool accumulate, const float* row_scale) {
  int j = 0;
  for (; j + FMHA_GEMM_VECS * VL <= N; j += FMHA_GEMM_VECS * VL)
    gemm_columns<FMHA_GEMM_VECS>(A, lda, B + j, ldb, C + j, ldc, M, K, accumulate, row_scale);
  if (j < N) gemm_last_columns(A, lda, B + j, ldb, C + j, ldc, M, N - j, K, accumulate, row_scale);
}

// In-register transpose of a VL × VL block held as VL row vectors: stage B
// swaps the off-diagonal B × B sub-blocks of every 2B × 2B block (rows i and
// i + B exchange lanes), and the stages B = VL/2 … 1 together transpose.
template <int B, int... L>
inline void transpose_stage(vf (&x)[VL], std::integer_sequence<int, L...>) {
#pragma GCC unroll 16
  for (int i = 0; i < VL; ++i) {
    if (i & B) continue;
    const vf lo = __builtin_shufflevector(x[i], x[i + B], ((L & B) ? VL + L - B : L)...);
    const vf hi = __builtin_shufflevector(x[i], x[i + B], ((L & B) ? VL + L : L + B)...);
    x[i] = lo;
    x[i + B] = hi;
  }
  if constexpr (B > 1) transpose_stage<B / 2>(x, std::integer_sequence<int, L...>{});
}

void transpose(const float* src, int64_t lds, int rows, int cols, float alpha, float* dst, int64_t ldd) {
  for (int r0 = 0; r0 < rows; r0 += VL) {
    const int nr = rows - r0 < VL ? rows - r0 : VL;
    for (int c0 = 0; c0 < cols; c0 += VL) {
      const int nc = cols - c0 < VL ? cols - c0 : VL;
      vf x[VL];
#pragma GCC unroll 16
      for (int i = 0; i < VL; ++i) {
        const float* s = src + (r0 + i) * lds + c0;
        x[i] = i >= nr ? vf{} : (nc == VL ? loadv(s) : loadv_first(s, nc)) * alpha;
      }
      transpose_stage<VL / 2>(x, std::make_integer_sequence<int, VL>{});
      for (int c = 0; c < nc; ++c) {
        float* d = dst + (c0 + c) * ldd + r0;
        if (nr == VL) storev(d, x[c]);
        else storev_first(d, x[c], nr);
      }
    }
  }
}

// Horizontal reductions by halving: fold lanes [W, 2W) onto [0, W) for
// W = VL/2 … 1, with compile-time shuffles that stay in registers (a memcpy
// split spills the vector; GCC 12 warns on the extract intrinsics).
template <int W, int... L>
inline vf rotate_lanes(vf v, std::integer_sequence<int, L...>) {
  return __builtin_shufflevector(v, v, ((L + W) % VL)...);
}

// Lanes rotated by W within groups of G lanes.
template <int G, int W, int... L>
inline vf rotate_in_groups(vf v, std::integer_sequence<int, L...>) {
  return __builtin_shufflevector(v, v, ((L / G) * G + (L % G + W) % G)...);
}

template <int W = VL / 2, typename Op>
inline float reduce(vf v, Op op) {
  v = op(v, rotate_lanes<W>(v, std::make_integer_sequence<int, VL>{}));
  if constexpr (W > 1) return reduce<W / 2>(v, op);
  else return v[0];
}

inline float reduce_add(vf v) { return reduce(v, [](vf a, vf b) { return a + b; }); }
inline float reduce_max(vf v) { return reduce(v, [](vf a, vf b) { return a > b ? a : b; }); }

// One step of a transposing reduction (several vectors' lane sums at once
// instead of one horizontal sum each): a fold at half-width W takes two vectors
// whose lanes hold groups of 2W partial sums, one group per key, and returns
// one with groups of W: x's keys, then y's.
template <int W, int... O>
__attribute__((always_inline)) inline vf fold_pair(vf x, vf y, std::integer_sequence<int, O...>) {
  constexpr int H = VL / 2;
  return __builtin_shufflevector(x, y, ((O < H ? 0 : VL) + (O % H) / W * 2 * W + O % W)...) +
         __builtin_shufflevector(x, y, ((O < H ? 0 : VL) + (O % H) / W * 2 * W + O % W + W)...);
}

// Lane sums of four vectors: lane i·(VL/4) of the result holds Σ lanes of a[i].
// Two folds leave VL/4 partial sums per vector side by side; halving within
// those groups finishes them.
inline vf reduce4(vf a0, vf a1, vf a2, vf a3) {
  constexpr int G = VL / 4;
  vf y = fold_pair<G>(fold_pair<VL / 2>(a0, a1, std::make_integer_sequence<int, VL>{}),
                      fold_pair<VL / 2>(a2, a3, std::make_integer_sequence<int, VL>{}),
                      std::make_integer_sequence<int, VL>{});
  if constexpr (G >= 8) y += rotate_in_groups<G, 4>(y, std::make_integer_sequence<int, VL>{});
  if constexpr (G >= 4) y += rotate_in_groups<G, 2>(y, std::make_integer_sequence<int, VL>{});
  if constexpr (G >= 2) y += rotate_in_groups<G, 1>(y, std::make_integer_sequence<int, VL>{});
  return y;
}

// exp(x) for x <= 0 (softmax arguments) as 2^t, t = x·log2(e) = n + r with
// n = round(t), |r| ≤ 1/2: a degree-5 minimax polynomial for 2^r (relative
// error 2.3e-7 with float rounding; t's own rounding costs at most ~1e-7 of the
// largest weight), times 2^n. x < -87 (including -inf) gives exactly 0.
// AVX-512 does the rounding and the 2^n scaling in one instruction each (the
// maskz forms: GCC 12 warns on the plain ones' undefined-register source).
inline vf exp_neg(vf x) {
  const vf t = x * 1.44269504088896341f;
#if FMHA_VEC_BYTES == 64
  const vf n = (vf)_mm512_maskz_roundscale_ps(0xFFFF, (__m512)t, _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
#else
  const vf n = (t + 12582912.0f) - 12582912.0f;  // round to nearest integer
#endif
  const vf r = t - n;
  vf p = splat(1.327645848505199e-3f);
  p = p * r + 9.675541892647743e-3f;
  p = p * r + 5.550713464617729e-2f;
  p = p * r + 2.4022120237350464e-1f;
  p = p * r + 6.931469440460205e-1f;
  p = p * r + 1.0000001192092896f;
#if FMHA_VEC_BYTES == 64
  // Lanes below -87 (and -inf, whose r is NaN) are zeroed, as in the other paths.
  const __mmask16 keep = _mm512_cmp_ps_mask((__m512)x, _mm512_set1_ps(-87.0f), _CMP_GE_OQ);
  return (vf)_mm512_maskz_scalef_ps(keep, (__m512)p, (__m512)n);
#else
  const vi ni = __builtin_convertvector(n, vi);
  vi bits = (vi)p + (ni << 23);
  bits &= (vi)(x >= -87.0f);  // comparison gives all-ones lanes where kept
  return (vf)bits;
#endif
}

// Lanes [n, VL) of v replaced by `fill`.
template <int... L>
inline vf fill_from(vf v, int n, float fill, std::integer_sequence<int, L...>) {
  const vi lane = {L...};
  return lane < n ? v : splat(fill);
}
inline vf fill_from(vf v, int n, float fill) { return fill_from(v, n, fill, std::make_integer_sequence<int, VL>{}); }

// Row-group forms of the softmax passes over G rows x[g·ldx + j], j < n: G
// independent chains, so each row's horizontal reduction and the exp's long
// dependency chain overlap with the other rows' work instead of stalling.
// mx[g] = max of row g (-inf for n == 0).
template <int G>
inline void rows_max(const float* x, int64_t ldx, int n, float* mx) {
  vf v[G];
  for (int g = 0; g < G; ++g) v[g] = splat(-__builtin_inff());
  int j = 0;
  for (; j + VL <= n; j += VL)
    for (int g = 0; g < G; ++g) { const vf y = loadv(x + g * ldx + j); v[g] = v[g] > y ? v[g] : y; }
  if (j < n)
    for (int g = 0; g < G; ++g) {
      const vf y = fill_from(loadv_first(x + g * ldx + j, n - j), n - j, -__builtin_inff());
      v[g] = v[g] > y ? v[g] : y;
    }
  for (int g = 0; g < G; ++g) mx[g] = reduce_max(v[g]);
}

// x = exp(x - base[g]) in place, row by row; sum[g] = the row's sum.
template <int G>
inline void rows_exp_sum(float* x, int64_t ldx, int n, const float* base, float* sum) {
  vf acc[G];
  for (int g = 0; g < G; ++g) acc[g] = vf{};
  int j = 0;
  for (; j + VL <= n; j += VL)
    for (int g = 0; g < G; ++g) {
      const vf e = exp_neg(loadv(x + g * ldx + j) - base[g]);
      storev(x + g * ldx + j, e);
      acc[g] += e;
    }
  if (j < n)
    for (int g = 0; g < G; ++g) {
      const vf e = fill_from(exp_neg(loadv_first(x + g * ldx + j, n - j) - base[g]), n - j, 0.0f);
      storev_first(x + g * ldx + j, e, n - j);
      acc[g] += e;
    }
  for (int g = 0; g < G; ++g) sum[g] = reduce_add(acc[g]);
}

float row_max(const float* x, int n) {
  float m;
  rows_max<1>(x, 0, n, &m);
  return m;
}

float exp_sum(float* x, int n, float m) {
  float sum;
  rows_exp_sum<1>(x, 0, n, &m, &sum);
  return sum;
}

// One key block of the online softmax (FlashAttention-2) for G rows: per row,
// the new running max, the rescale factor of the old state, exp in place, the
// new sum.
template <int G>
inline void softmax_rows(float* s, int64_t lds, int n, float* m, float* l, float* alpha) {
  const float ninf = -__builtin_inff();
  float mx[G], base[G], sum[G];
  rows_max<G>(s, lds, n, mx);
  for (int g = 0; g < G; ++g) {
    const float m_new = m[g] > mx[g] ? m[g] : mx[g];
    // Exactly 1 while the max holds: the polynomial gives 1 + 2^-23 at 0, and a
    // factor applied once per key block compounds (1e-4 over 100k keys).
    alpha[g] = m[g] == m_new ? 1.0f : exp_neg(splat(m[g] - m_new))[0];  // 0 when m was -inf
    m[g] = m_new;
    // A row with nothing visible yet keeps m = -inf; its scores are all -inf,
    // and exp(-inf - 0) is 0.
    base[g] = m_new == ninf ? 0.0f : m_new;
  }
  rows_exp_sum<G>(s, lds, n, base, sum);
  for (int g = 0; g < G; ++g) l[g] = l[g] * alpha[g] + sum[g];
}

void online_softmax(float* s, int64_t lds, int rows, int n, float* m, float* l, float* alpha) {
  constexpr int G = 4;
  int r = 0;
  for (; r + G <= rows; r += G) softmax_rows<G>(s + r * lds, lds, n, m + r, l + r, alpha + r);
  for (; r < rows; ++r) softmax_rows<1>(s + r * lds, lds, n, m + r, l + r, alpha + r);
}

void scale(float* x, int n, float a) {
  int j = 0;
  for (; j + VL <= n; j += VL) storev(x + j, loadv(x + j) * a);
  for (; j < n; ++j) x[j] *= a;
}

void load_row(const void* src, DType t, int n, float* dst) {
  if (t == DType::F32) {
    __builtin_memcpy(dst, src, sizeof(float) * n);
    return;
  }
  const uint16_t* h = static_cast<const uint16_t*>(src);
  int j = 0;
  if (t == DType::BF16) {
    for (; j < n; ++j) dst[j] = bits_f32(uint32_t(h[j]) << 16);
    return;
  }
#if defined(__F16C__)
  for (; j + 8 <= n; j += 8)
    _mm256_storeu_ps(dst + j, _mm256_cvtph_ps(_mm_loadu_si128(reinterpret_cast<const __m128i*>(h + j))));
#endif
  for (; j < n; ++j) dst[j] = f16_to_f32(h[j]);
}

void store_row(const float* src, float a, int n, DType t, void* dst) {
  if (t == DType::F32) {
    float* o = static_cast<float*>(dst);
    for (int j = 0; j < n; ++j) o[j] = src[j] * a;
    return;
  }
  uint16_t* h = static_cast<uint16_t*>(dst);
  int j = 0;
  if (t == DType::BF16) {
    for (; j < n; ++j) h[j] = f32_to_bf16(src[j] * a);
    return;
  }
#if defined(__F16C__)
  for (; j + 8 <= n; j += 8) {
    const __m256 v = _mm256_mul_ps(_mm256_loadu_ps(src + j), _mm256_set1_ps(a));
    _mm_storeu_si128(reinterpret_cast<__m128i*>(h + j), _mm256_cvtps_ph(v, _MM_FROUND_TO_NEAREST_INT));
  }
#endif
  for (; j < n; ++j) h[j] = f32_to_f16(src[j] * a);
}

// VL elements of a cache row from element d on, as float32: 16-bit types are
// widened in registers, so decode never writes a converted copy.
template <DType T>
inline vf load_f32(const void* row, int64_t d) {
  if constexpr (T == DType::F32) {
    return loadv(static_cast<const float*>(row) + d);
  } else {
    typedef uint16_t vh __attribute__((vector_size(FMHA_VEC_BYTES / 2)));
    vh h;
    __builtin_memcpy(&h, static_cast<const uint16_t*>(row) + d, sizeof h);
    if constexpr (T == DType::BF16) {
      return (vf)(__builtin_convertvector(h, vi) << 16);
    } else {
#if FMHA_VEC_BYTES == 64
      return (vf)_mm512_maskz_cvtph_ps(0xFFFF, (__m256i)h);  // maskz: GCC 12 warns on the plain form
#elif FMHA_VEC_BYTES == 32 && defined(__F16C__)
      return (vf)_mm256_cvtph_ps((__m128i)h);
#else
      vf r;
      for (int l = 0; l < VL; ++l) r[l] = f16_to_f32(h[l]);
      return r;
#endif
    }
  }
}

// N cache rows from `base` (key j0's row of one head), ld elements apart; rows
// past `count` repeat row 0 so register tiles stay full (their results are dropped).
template <int N>
inline void key_rows(const void* base, DType t, int64_t ld, int count, const void* rows[N]) {
  const int es = t == DType::F32 ? 4 : 2;
  for (int i = 0; i < N; ++i) rows[i] = static_cast<const char*>(base) + int64_t(i < count ? i : 0) * ld * es;
}

// Lanes 0, G, 2G, 3G of reduce4's result (G = VL/4) stored as four contiguous floats.
template <int... L>
inline void store_sums4(vf y, float* out, std::integer_sequence<int, L...>) {
  const vf z = __builtin_shufflevector(y, y, (L < 4 ? L * (VL / 4) : 0)...);
  __builtin_memcpy(out, &z, 4 * sizeof(float));
}

// One 4-row × 4-key block of decode_qk: out[r·lds + i] = q_r · k_i.
template <DType T, bool Full>
__attribute__((always_inline)) inline void qk_block(const float* q, int D, int Dvec, const void* const k[4], int nk,
                                                    int nr, float* out, int64_t lds) {
  constexpr int G = VL / 4;
  if constexpr (Full) nk = nr = 4;
  const float* qr[4];
  for (int r = 0; r < 4; ++r) qr[r] = q + int64_t(Full || r < nr ? r : 0) * D;
  vf acc[4][4];
#pragma GCC unroll 4
  for (int r = 0; r < 4; ++r)
#pragma GCC unroll 4
    for (int i = 0; i < 4; ++i) acc[r][i] = vf{};
  for (int d = 0; d < Dvec; d += VL) {
    vf kv[4];
#pragma GCC unroll 4
    for (int i = 0; i < 4; ++i) kv[i] = load_f32<T>(k[i], d);
#pragma GCC unroll 4
    for (int r = 0; r < 4; ++r) {
      const vf qv = loadv(qr[r] + d);
#pragma GCC unroll 4
      for (int i = 0; i < 4; ++i) acc[r][i] += qv * kv[i];
    }
  }
#pragma GCC unroll 4
  for (int r = 0; r < 4; ++r) {
    if (!Full && r >= nr) break;
    const vf y = reduce4(acc[r][0], acc[r][1], acc[r][2], acc[r][3]);
    if (Full && Dvec == D) {  // the four sums side by side, one store
      store_sums4(y, out + r * lds, std::make_integer_sequence<int, VL>{});
      continue;
    }
#pragma GCC unroll 4
    for (int i = 0; i < 4; ++i) {
      if (!Full && i >= nk) break;
      float x = y[i * G];
      for (int d = Dvec; d < D; ++d) x += qr[r][d] * load_as_f32(k[i], T, d);
      out[r * lds + i] = x;
    }
  }
}

// Decode's Q·Kᵀ straight from a [keys, heads, D] cache (element type T; key
// j of head h at K + j·ldk + h·ldh elements): s[(h·R + r)·lds + j] =
// Σ_d q[(h·R + r)·D + d]·k(j, h)[d], for H heads of R rows, j < n. Four keys
// at a time, heads inner, so memory streams as four sequential runs; each K
// vector is loaded (and widened) once for a 4-row × 4-key register tile, whose
// sums are reduced together.
template <DType T>
void decode_qk_t(const float* q, int H, int R, int D, const void* K, int64_t ldk, int64_t ldh, int n, float* s,
                 int64_t lds, const void* pf, int64_t pf_bytes) {
  const int Dvec = D - D % VL, es = T == DType::F32 ? 4 : 2;
  PrefetchStream ahead(pf, pf_bytes, int64_t((n + 3) / 4) * H);
  for (int j0 = 0; j0 < n; j0 += 4) {
    const int nk = n - j0 < 4 ? n - j0 : 4;
    for (int h = 0; h < H; ++h) {
      ahead.next();
      const void* k[4];
      key_rows<4>(static_cast<const char*>(K) + (j0 * ldk + h * ldh) * es, T, ldk, nk, k);
      for (int r0 = 0; r0 < R; r0 += 4) {
        const int nr = R - r0 < 4 ? R - r0 : 4;
        float* out = s + (int64_t(h) * R + r0) * lds + j0;
        const float* qh = q + (int64_t(h) * R + r0) * D;
        if (nk == 4 && nr == 4) qk_block<T, true>(qh, D, Dvec, k, 4, 4, out, lds);
        else qk_block<T, false>(qh, D, Dvec, k, nk, nr, out, lds);
      }
    }
  }
}

// Keys per decode_pv step: the accumulator tile is loaded and stored once per
// this many keys (8: 23.1 GB/s against 22.1 with 4, B=1 L=32k fp32, 2 threads).
constexpr int kPvKeys = 8;

// A 4-row × NV-vector accumulator tile of decode_pv over kPvKeys keys' rows:
// acc[r·Dv + c0 + c] += Σ_i p[r·ldp + i]·v_i[c0 + c].
template <DType T, int NV, bool Full>
__attribute__((always_inline)) inline void pv_columns(const float* p, int64_t ldp, const void* const v[kPvKeys],
                                                      int nk, int nr, float* acc, int64_t Dv, int c0) {
  if constexpr (Full) { nk = kPvKeys; nr = 4; }
  vf a[4][NV];
#pragma GCC unroll 4
  for (int r = 0; r < 4; ++r)
#pragma GCC unroll 4
    for (int c = 0; c < NV; ++c) a[r][c] = (Full || r < nr) ? loadv(acc + r * Dv + c0 + c * VL) : vf{};
#pragma GCC unroll 8
  for (int i = 0; i < kPvKeys; ++i) {
    if (!Full && i >= nk) break;
    vf vv[NV];
#pragma GCC unroll 4
    for (int c = 0; c < NV; ++c) vv[c] = load_f32<T>(v[i], c0 + c * VL);
#pragma GCC unroll 4
    for (int r = 0; r < 4; ++r) {
      const float w = (Full || r < nr) ? p[r * ldp + i] : 0.0f;
#pragma GCC unroll 4
      for (int c = 0; c < NV; ++c) a[r][c] += w * vv[c];
    }
  }
#pragma GCC unroll 4
  for (int r = 0; r < 4; ++r) {
    if (!Full && r >= nr) break;
#pragma GCC unroll 4
    for (int c = 0; c < NV; ++c) storev(acc + r * Dv + c0 + c * VL, a[r][c]);
  }
}

template <DType T, bool Full>
inline void pv_row_block(const float* pr, int64_t ldp, const void* const v[kPvKeys], int nk, int nr, float* a, int Dv) {
  int c = 0;
  for (; c + 4 * VL <= Dv; c += 4 * VL) pv_columns<T, 4, Full>(pr, ldp, v, nk, nr, a, Dv, c);
  for (; c + VL <= Dv; c += VL) pv_columns<T, 1, Full>(pr, ldp, v, nk, nr, a, Dv, c);
  for (; c < Dv; ++c)
    for (int r = 0; r < nr; ++r)
      for (int i = 0; i < nk; ++i) a[r * Dv + c] += pr[r * ldp + i] * load_as_f32(v[i], T, c);
}

// Decode's P·V straight from the cache, in decode_qk's order (key groups,
// heads inner): acc[(h·R + r)·Dv + c] += Σ_j p[(h·R + r)·ldp + j]·v(j, h)[c].
template <DType T>
void decode_pv_t(const float* p, int64_t ldp, int H, int R, int Dv, const void* V, int64_t ldv, int64_t ldh, int n,
                 float* acc, const void* pf, int64_t pf_bytes) {
  const int es = T == DType::F32 ? 4 : 2;
  PrefetchStream ahead(pf, pf_bytes, int64_t((n + kPvKeys - 1) / kPvKeys) * H);
  for (int j0 = 0; j0 < n; j0 += kPvKeys) {
    const int nk = n - j0 < kPvKeys ? n - j0 : kPvKeys;
    for (int h = 0; h < H; ++h) {
      ahead.next();
      const void* v[kPvKeys];
      key_rows<kPvKeys>(static_cast<const char*>(V) + (j0 * ldv + h * ldh) * es, T, ldv, nk, v);
      for (int r0 = 0; r0 < R; r0 += 4) {
        const int nr = R - r0 < 4 ? R - r0 : 4;
        const int64_t row = int64_t(h) * R + r0;
        if (nk == kPvKeys && nr == 4) pv_row_block<T, true>(p + row * ldp + j0, ldp, v, nk, 4, acc + row * Dv, Dv);
        else pv_row_block<T, false>(p + row * ldp + j0, ldp, v, nk, nr, acc + row * Dv, Dv);
      }
    }
  }
}

void decode_qk(const float* q, int H, int R, int D, const void* K, DType t, int64_t ldk, int64_t ldh, int n, float* s,
               int64_t lds, const void* pf, int64_t pf_bytes) {
  if (t == DType::F32) decode_qk_t<DType::F32>(q, H, R, D, K, ldk, ldh, n, s, lds, pf, pf_bytes);
  else if (t == DType::BF16) decode_qk_t<DType::BF16>(q, H, R, D, K, ldk, ldh, n, s, lds, pf, pf_bytes);
  else decode_qk_t<DType::F16>(q, H, R, D, K, ldk, ldh, n, s, lds, pf, pf_bytes);
}

void decode_pv(const float* p, int64_t ldp, int H, int R, int Dv, const void* V, DType t, int64_t ldv, int64_t ldh,
               int n, float* acc, const void* pf, int64_t pf_bytes) {
  if (t == DType::F32) decode_pv_t<DType::F32>(p, ldp, H, R, Dv, V, ldv, ldh, n, acc, pf, pf_bytes);
  else if (t == DType::BF16) decode_pv_t<DType::BF16>(p, ldp, H, R, Dv, V, ldv, ldh, n, acc, pf, pf_bytes);
  else decode_pv_t<DType::F16>(p, ldp, H, R, Dv, V, ldv, ldh, n, acc, pf, pf_bytes);
}

// More independent chains than FMA latency × FMA pipes, so the loop is bound by
// FMA throughput alone; the empty asm keeps the chains from being optimized out.
double fma_probe(int64_t iters) {
  constexpr int kChains = 12;
  vf acc[kChains];
  for (int c = 0; c < kChains; ++c) acc[c] = splat(1e-3f * float(c));
  const vf a = splat(0.999f), b = splat(1e-6f);
  for (int64_t it = 0; it < iters; ++it) {
#pragma GCC unroll 12
    for (int c = 0; c < kChains; ++c) acc[c] = acc[c] * a + b;
  }
  for (int c = 0; c < kChains; ++c) __asm__ volatile("" : : "x"(acc[c]));
  return 2.0 * VL * kChains * double(iters);
}

float read_sum(const float* x, int64_t n) {
  vf s[4] = {};
  int64_t j = 0;
  for (; j + 4 * VL <= n; j += 4 * VL)
    for (int c = 0; c < 4; ++c) s[c] += loadv(x + j + c * VL);
  float total = reduce_add((s[0] + s[1]) + (s[2] + s[3]));
  for (; j < n; ++j) total += x[j];
  return total;
}

}  // namespace

const CpuMicrokernels& table() {
  static const CpuMicrokernels t{gemm, transpose, decode_qk, decode_pv, row_max, exp_sum, online_softmax, scale, load_row, store_row, fma_probe, read_sum};
  return t;
}

}  // namespace FMHA_ISA_NS
}  // namespace fmha
