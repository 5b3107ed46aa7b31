// attention / vanillaAttention / varlenAttention on the CUDA backend (DESIGN §2,
// §3). parse_attention_call validates a CUDA call exactly as a CPU call and
// records here what the call needs on the device; run_device_attention then
// stages it: copy host tensors in (backend 'cuda' on host tensors), upload the
// small option arrays, run the kernel through dispatch, copy results out.
// Nothing here includes CUDA headers: it speaks core/device.h.
#pragma once
#include <napi.h>
#include <cstdint>
#include <vector>
#include "core/attention_params.h"
#include "core/decode_params.h"
#include "core/device.h"
#include "dispatch.h"

namespace fmha {

struct DeviceCallPlan {
  bool active = false;   // the call runs on the CUDA backend
  int device = 0;
  bool host_io = false;  // host tensors: copied in, computed, copied out (the call waits)
  std::vector<DeviceBufferPtr> keep;  // device blocks the call reads or writes, alive until it ends
  // host_io: how many elements of q, k, v and bias the kernel may read (TensorArg::span).
  int64_t q_span = 0, k_span = 0, v_span = 0, bias_span = 0;
  // Output rows ([B·Sq] padded, Tq packed) and those the kernel writes (packed: cuSeqlensQ[B]).
  int64_t out_rows = 0, rows_written = 0;
  bool new_out = false;  // device tensors: the call allocated out (packed rows past cuSeqlensQ[B] are zeroed)
  Napi::Value out_handle, lse_handle;  // device tensors: the outputs' handles, for lib/
};

// parse_attention_call, device tensors: allocates the outputs the caller did not
// give as new device blocks with handles. out_bytes < 0: the caller gave out;
// lse_bytes < 0: no lse. ERR_FMHA_OOM when the device is full.
void allocate_device_outputs(Napi::Env env, DeviceCallPlan& plan, AttentionParams& p, int64_t out_bytes,
                             int64_t lse_bytes);

// Runs a validated call on plan.device. `p` holds the validated pointers: device
// pointers for device tensors, host pointers for host tensors (host_io) and for
// the option arrays (alibi_slopes, seqlens_k, cu_seqlens_q/k, always host here).
// Enqueues on the device's stream; then, with host_io, copies the results out
// (which waits), else with `wait` waits for the stream (async calls), else
// returns at once (synchronous calls on device tensors: the outputs are
// DeviceTensors whose readers are ordered after the work on the same stream).
Status run_device_attention(AttentionKind kind, const AttentionParams& p, const DeviceCallPlan& plan, ExecContext ctx,
                            bool wait);

// decodeAttention on DeviceTensors (q, caches, kNew/vNew, out): uploads the
// validated host arrays (cacheSeqlens, blockTable, alibiSlopes) and runs the
// CUDA decode through dispatch; `wait` as above.
Status run_device_decode(const DecodeParams& p, const DeviceCallPlan& plan, ExecContext ctx, bool wait);

}  // namespace fmha
