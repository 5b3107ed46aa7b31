// Validates attention(q, k, v, opts) and fills AttentionParams (DESIGN §2–§4).
// Every check happens here, before any kernel runs.
#pragma once
#include <napi.h>
#include <vector>
#include "core/attention_params.h"
#include "dispatch.h"

namespace fmha {

struct AttentionCall {
  AttentionParams params;
  Backend backend = Backend::Cpu;
  const int32_t* abort_flag = nullptr;
  Napi::TypedArray out;             // the output data (the caller's opts.out.data or a new array)
  Napi::Float32Array lse;           // when returnLse
  std::vector<int64_t> out_shape, lse_shape;
  std::vector<Napi::Value> inputs;  // JS values the kernel reads: kept alive by async calls
};

// Throws FmhaException on any invalid argument; allocates the outputs last.
AttentionCall parse_attention_call(const Napi::CallbackInfo& info);

}  // namespace fmha
