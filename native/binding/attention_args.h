// Validates attention(q, k, v, opts) and varlenAttention(q, k, v, opts) and
// fills AttentionParams (DESIGN §2–§4). Every check happens here, before any
// kernel runs.
#pragma once
#include <napi.h>
#include <vector>
#include "core/attention_params.h"
#include "binding/device_attention.h"
#include "binding/seqlens_args.h"
#include "dispatch.h"

namespace fmha {

// Padded [B, S, H, D] tensors, or packed varlen [T, H, D] with opts.cuSeqlensQ/K.
enum class Layout { Padded, Packed };

struct AttentionCall {
  AttentionParams params;
  Backend backend = Backend::Cpu;
  const int32_t* abort_flag = nullptr;
  Napi::TypedArray out;             // the output data (the caller's opts.out.data or a new array); host tensors
  Napi::Float32Array lse;           // when returnLse; host tensors
  DeviceCallPlan device;            // backend Cuda: what the call needs on the device (device tensors: the outputs)
  std::vector<int64_t> out_shape, lse_shape;
  std::vector<Napi::Value> inputs;  // JS values the kernel reads or writes: kept alive by async calls
  CuSeqlensArg cu_q, cu_k;          // Packed: what params.cu_seqlens_q/k point into
  std::vector<int32_t> seqlens_k;   // what params.seqlens_k points into: a validated copy, since
                                    // the lengths bound key reads and the caller may mutate its array mid-call

  // Moves keep these pointers valid (a vector's buffer moves with it); a copy would not.
  AttentionCall() = default;
  AttentionCall(AttentionCall&&) = default;
  AttentionCall& operator=(AttentionCall&&) = default;
  AttentionCall(const AttentionCall&) = delete;
  AttentionCall& operator=(const AttentionCall&) = delete;
};

// The out / lse values a call resolves to: typed arrays, or DeviceTensor handles
// for calls on device tensors (lse: undefined without returnLse).
Napi::Value result_out(const AttentionCall& call);
Napi::Value result_lse(Napi::Env env, const AttentionCall& call);

// Throws FmhaException on any invalid argument; allocates the outputs last.
AttentionCall parse_attention_call(const Napi::CallbackInfo& info, Layout layout);

}  // namespace fmha
