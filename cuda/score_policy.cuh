// The device twin of native/cpu/score_policy: per sequence rows and lengths
// (core/sequence_view.h's rules), the visible key interval of a query row, and
// the score hooks, in the pipeline order DESIGN §3 fixes:
//   s = (q·k)·scale; softcap; ALiBi; bias; masks (causal, window, seqlensK).
// Every CUDA kernel (flash, general, vanilla) goes through these functions, so
// the semantics live in one place per backend.
#pragma once
#include <cuda_bf16.h>
#include <cuda_fp16.h>

#include <cstdint>

#include "kernel_args.h"

namespace fmha {
namespace cudak {

// Sequence b's rows: padded batches use the tensor lengths, varlen the cu_seqlens prefix sums.
struct SeqRows {
  int sq, sk;          // this sequence's query / key counts
  int q_row0, k_row0;  // first query / key row in the S (or packed T) dimension
  int kv_len;          // keys j >= kv_len are masked (seqlensK; = sk otherwise)
};

__device__ __forceinline__ SeqRows seq_rows(const KernelArgs& a, int b) {
  SeqRows s;
  if (a.cu_q) {
    s.q_row0 = a.cu_q[b];
    s.sq = a.cu_q[b + 1] - s.q_row0;
    s.k_row0 = a.cu_k[b];
    s.sk = a.cu_k[b + 1] - s.k_row0;
  } else {
    s.q_row0 = 0; s.sq = a.Sq;
    s.k_row0 = 0; s.sk = a.Sk;
  }
  s.kv_len = a.seqlens_k ? a.seqlens_k[b] : s.sk;
  return s;
}

// Visible keys of query row i: lo(i) <= j < hi(i), bottom-right aligned (offset = sk − sq,
// DESIGN §3). Both bounds are non-decreasing in i, which block skipping relies on.
struct MaskRule {
  int offset, kv_len, causal, wl, wr;

  __device__ __forceinline__ int lo(int i) const {
    const int d = i + offset;
    return wl >= 0 ? max(0, d - wl) : 0;
  }
  __device__ __forceinline__ int hi(int i) const {
    const int d = i + offset;
    int h = kv_len;
    if (causal) h = min(h, d + 1);
    if (wr >= 0) h = min(h, d + wr + 1);
    return h;
  }
};

__device__ __forceinline__ MaskRule mask_rule(const KernelArgs& a, const SeqRows& s) {
  return MaskRule{s.sk - s.sq, s.kv_len, a.causal, a.window_left, a.window_right};
}

template <typename T> __device__ __forceinline__ float to_f32(T x);
template <> __device__ __forceinline__ float to_f32<float>(float x) { return x; }
template <> __device__ __forceinline__ float to_f32<__half>(__half x) { return __half2float(x); }
template <> __device__ __forceinline__ float to_f32<__nv_bfloat16>(__nv_bfloat16 x) { return __bfloat162float(x); }

template <typename T> __device__ __forceinline__ T from_f32(float x);
template <> __device__ __forceinline__ float from_f32<float>(float x) { return x; }
template <> __device__ __forceinline__ __half from_f32<__half>(float x) { return __float2half_rn(x); }
template <> __device__ __forceinline__ __nv_bfloat16 from_f32<__nv_bfloat16>(float x) { return __float2bfloat16_rn(x); }

// tanh from one exp: absolute error ~1e-6 (a few ulp of 1), saturating to ±1 for large |x|.
// Used where the inputs are 16-bit (tolerance 2e-3); tanhf's inlined body costs registers the
// flash kernel's main loop does not have.
__device__ __forceinline__ float tanh_fast(float x) { return 1.0f - __fdividef(2.0f, 1.0f + __expf(2.0f * x)); }

// The score hooks of one (sequence, query head): bias plane and ALiBi slope resolved once.
// kFastTanh: tanh_fast instead of tanhf for the softcap (16-bit kernels).
template <typename T, bool kFastTanh = false>
struct ScoreHooks {
  float scale, softcap, softcap_inv, slope;
  const T* bias;   // this (b, h)'s [Sq, Sk] plane, or null
  int bias_row;    // Sk: the plane's row stride

  // acc = q·k; i, j rows of the sequence; diag = i + offset (the key aligned with query i).
  __device__ __forceinline__ float operator()(float acc, int i, int j, int diag) const {
    float s = acc * scale;
    if (softcap > 0.0f) s = softcap * (kFastTanh ? tanh_fast(s * softcap_inv) : tanhf(s * softcap_inv));
    if (slope != 0.0f) s -= slope * float(abs(diag - j));
    if (bias) s += to_f32<T>(bias[int64_t(i) * bias_row + j]);
    return s;
  }
};

template <typename T, bool kFastTanh = false>
__device__ __forceinline__ ScoreHooks<T, kFastTanh> score_hooks(const KernelArgs& a, int b, int h) {
  ScoreHooks<T, kFastTanh> hk;
  hk.scale = a.scale;
  hk.softcap = a.softcap;
  hk.softcap_inv = a.softcap_inv;
  hk.slope = a.alibi ? a.alibi[h] : 0.0f;
  hk.bias = a.bias ? static_cast<const T*>(a.bias) + int64_t(b) * a.bias_sb + int64_t(h) * a.bias_sh : nullptr;
  hk.bias_row = a.Sk;
  return hk;
}

}  // namespace cudak
}  // namespace fmha
