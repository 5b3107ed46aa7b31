// The plain parameter block every attention kernel receives (FlashAttention's
// Flash_fwd_params idea): pointers, shapes, strides in elements, and options,
// already validated by the binding. Kernels know nothing of N-API.
#pragma once
#include <cstdint>
#include <string>
#include "core/dtype.h"

namespace fmha {

struct AttentionParams {
  DType dtype = DType::F32;  // q, k, v, bias and out share it
  // B sequences; Sq, Sk: their (longest) query and key lengths.
  int64_t B = 0, Sq = 0, Sk = 0, Hq = 0, Hkv = 0, D = 0, Dv = 0;

  // [B, S, H, D] tensors: element (b, s, h, d) is at b*stride[0] + s*stride[1] + h*stride[2] + d.
  // Packed [T, H, D] tensors (varlen) are the same with stride[0] = 0 and s the token row.
  const void* q = nullptr; int64_t q_stride[3] = {0, 0, 0};
  const void* k = nullptr; int64_t k_stride[3] = {0, 0, 0};
  const void* v = nullptr; int64_t v_stride[3] = {0, 0, 0};
  void* out = nullptr;     int64_t o_stride[3] = {0, 0, 0};
  // lse of (b, h, query row s) is at b*lse_stride[0] + h*lse_stride[1] + s, or null:
  // [B, Hq, Sq] padded, [Hq, Tq] varlen (stride[0] = 0, s the token row).
  float* lse = nullptr;    int64_t lse_stride[2] = {0, 0};

  // Varlen (DESIGN §2): [B + 1] prefix sums; sequence b is query rows
  // [cu_seqlens_q[b], cu_seqlens_q[b + 1]) and key rows likewise. Null: padded.
  // See core/sequence_view.h, the one place that reads them.
  const int32_t* cu_seqlens_q = nullptr;
  const int32_t* cu_seqlens_k = nullptr;
  // Backend::Cuda only: HOST copies of cu_seqlens_q/k (device pointers there
  // like every pointer in these params), from which the varlen grid is planned
  // (cuda/varlen_work.h); they must equal the device arrays. Unused on the CPU.
  const int32_t* host_cu_seqlens_q = nullptr;
  const int32_t* host_cu_seqlens_k = nullptr;

  float scale = 1.0f;
  bool causal = false;
  int64_t window_left = -1, window_right = -1;  // -1 = unbounded
  float softcap = 0.0f;                          // 0 = off
  const float* alibi_slopes = nullptr;           // [Hq] or null
  const int32_t* seqlens_k = nullptr;            // [B] or null: keys j >= seqlens_k[b] masked (padded only)

  // Additive bias [B or 1, Hq or 1, Sq, Sk], contiguous in (Sq, Sk); broadcast dims have stride 0 (padded only).
  const void* bias = nullptr;
  int64_t bias_stride_b = 0, bias_stride_h = 0;
};

// Per-call execution context, owned by the caller for the call's duration.
struct ExecContext {
  int num_threads = 1;
  const int32_t* abort_flag = nullptr;    // the caller's AbortSignal; non-zero: stop between tiles
  const int32_t* closing_flag = nullptr;  // the calling JS environment is shutting down
  int64_t max_scratch_bytes = 0;          // FMHA_MAX_SCRATCH_BYTES
  int device = 0;                         // Backend::Cuda: the CUDA device (core/device.h)

  static bool raised(const int32_t* f) { return f && __atomic_load_n(f, __ATOMIC_RELAXED) != 0; }
  bool aborted() const { return raised(abort_flag) || raised(closing_flag); }
};

enum class StatusCode { Ok, Aborted, OutOfMemory, Backend, Cuda };

struct Status {
  StatusCode code = StatusCode::Ok;
  std::string message;
  bool ok() const { return code == StatusCode::Ok; }
};

}  // namespace fmha
