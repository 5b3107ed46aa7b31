// The by-value argument block every CUDA attention kernel receives: the
// AttentionParams fields a kernel reads, narrowed to the integer widths the
// kernels index with, plus the derived flags (GQA group, whether score hooks run).
#pragma once
#include <cstdint>

#include "core/attention_params.h"

namespace fmha {
namespace cudak {

struct KernelArgs {
  const void* q;
  const void* k;
  const void* v;
  void* out;
  float* lse;  // null: not requested
  // Element strides (batch, row, head); batch strides are 0 in varlen (rows are token rows).
  int64_t q_s0, q_s1, q_s2, k_s0, k_s1, k_s2, v_s0, v_s1, v_s2, o_s0, o_s1, o_s2;
  int64_t lse_s0, lse_s1;
  const int32_t* cu_q;       // [B + 1] device, or null (padded)
  const int32_t* cu_k;
  const int32_t* seqlens_k;  // [B] device, or null
  // Varlen: (sequence, query block) pairs, device, one CTA row each (query_blocks.cuh); null: padded grid.
  const int32_t* work;
  int work_items;
  const float* alibi;        // [Hq] device, or null
  const void* bias;          // [B|1, Hq|1, Sq, Sk] in q's dtype, or null (padded only)
  int64_t bias_sb, bias_sh;  // broadcast dims: 0
  int Sq, Sk;                // longest query / key length (padded: the tensor lengths)
  int Hq, group;             // group = Hq / Hkv: query head h reads kv head h / group
  int D, Dv;
  int causal;
  int window_left, window_right;  // -1 = unbounded; clamped to Sq + Sk (same visible set)
  float scale, softcap, softcap_inv;
  // Softcap, ALiBi, bias or a non-positive scale: scores are s = hooks(q·k·scale)
  // explicitly (the fast path instead folds scale into exp2 and needs scale > 0).
  int hooks;
  int b_offset;  // first sequence of this launch (grids cover at most 65535 sequences)
};

inline int clamp_window(int64_t w, int64_t limit) { return w < 0 ? -1 : int(w > limit ? limit : w); }

// p already validated by the binding; the caller checked Sq + Sk < 2^30.
inline KernelArgs make_kernel_args(const AttentionParams& p) {
  KernelArgs a{};
  a.q = p.q; a.k = p.k; a.v = p.v; a.out = p.out; a.lse = p.lse;
  a.q_s0 = p.q_stride[0]; a.q_s1 = p.q_stride[1]; a.q_s2 = p.q_stride[2];
  a.k_s0 = p.k_stride[0]; a.k_s1 = p.k_stride[1]; a.k_s2 = p.k_stride[2];
  a.v_s0 = p.v_stride[0]; a.v_s1 = p.v_stride[1]; a.v_s2 = p.v_stride[2];
  a.o_s0 = p.o_stride[0]; a.o_s1 = p.o_stride[1]; a.o_s2 = p.o_stride[2];
  a.lse_s0 = p.lse_stride[0]; a.lse_s1 = p.lse_stride[1];
  a.cu_q = p.cu_seqlens_q; a.cu_k = p.cu_seqlens_k;
  a.seqlens_k = p.cu_seqlens_q ? nullptr : p.seqlens_k;
  a.alibi = p.alibi_slopes;
  a.bias = p.cu_seqlens_q ? nullptr : p.bias;
  a.bias_sb = p.bias_stride_b; a.bias_sh = p.bias_stride_h;
  a.Sq = int(p.Sq); a.Sk = int(p.Sk);
  a.Hq = int(p.Hq); a.group = int(p.Hq / p.Hkv);
  a.D = int(p.D); a.Dv = int(p.Dv);
  a.causal = p.causal ? 1 : 0;
  // A window wider than Sq + Sk admits every key an unbounded one does; clamping keeps i ± w in int range.
  a.window_left = clamp_window(p.window_left, p.Sq + p.Sk);
  a.window_right = clamp_window(p.window_right, p.Sq + p.Sk);
  a.scale = p.scale;
  a.softcap = p.softcap > 0 ? p.softcap : 0.0f;
  a.softcap_inv = p.softcap > 0 ? 1.0f / p.softcap : 0.0f;
  a.hooks = (a.softcap > 0 || a.alibi || a.bias || !(p.scale > 0)) ? 1 : 0;
  a.b_offset = 0;
  return a;
}

}  // namespace cudak
}  // namespace fmha
