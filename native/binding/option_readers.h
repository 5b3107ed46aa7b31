// Readers for the options that every attention-like call shares (DESIGN §3):
// booleans and numbers, the score options, typed-array options, the outputs.
// attention, varlenAttention and decodeAttention all validate through these,
// so each check and each message exists once.
#pragma once
#include <napi.h>
#include <cstdint>
#include <set>
#include <string>
#include <vector>
#include "binding/errors.h"
#include "binding/tensor_args.h"
#include "core/attention_params.h"

namespace fmha {

bool read_bool(const Napi::Object& o, const char* key, bool dflt);

// A finite number, or dflt when absent.
double read_number(const Napi::Object& o, const char* key, double dflt);

// Any own option not in `known` (and not undefined) → ERR_FMHA_ARGUMENT naming fn;
// hint(key) may add a sentence ("it is one of varlenAttention").
void reject_unknown_options(const Napi::Object& o, const std::set<std::string>& known, const std::string& fn,
                            std::string (*hint)(const std::string& key) = nullptr);

// An optional typed-array option of exactly `count` elements (kept alive through
// `inputs`); null when absent.
template <typename T>
const T* read_array_option(const Napi::Object& o, const char* key, napi_typedarray_type type, int64_t count,
                           const char* per, std::vector<Napi::Value>& inputs) {
  Napi::Value v = o.Get(key);
  if (v.IsUndefined()) return nullptr;
  const std::string name = std::string("opts.") + key;
  Napi::TypedArray a = expect_typed_array(v, type, name);
  if (int64_t(a.ElementLength()) != count)
    fail(code::kShape, name + " must have " + per + " (" + std::to_string(count) + " elements), got " +
                           std::to_string(a.ElementLength()));
  inputs.push_back(a);
  return reinterpret_cast<const T*>(static_cast<char*>(a.ArrayBuffer().Data()) + a.ByteOffset());
}

// causal, scale (default 1/√p.D), softcap, window and alibiSlopes (p.Hq of them) into p.
void read_score_options(const Napi::Object& o, AttentionParams& p, std::vector<Napi::Value>& inputs);

// A caller's opts.out: `dtype` (the dtype of the input named `dtype_of`), `shape`
// (dims names them in messages), contiguous, overlapping none of `reads`.
void check_out(const TensorArg& out, DType dtype, const std::vector<int64_t>& shape, const char* dims,
               const std::vector<TensorArg>& reads, const std::string& dtype_of = "q");

struct Outputs {
  Napi::TypedArray out;  // the caller's opts.out.data or a new array
  void* out_data = nullptr;
  Napi::Float32Array lse;  // when returnLse
  float* lse_data = nullptr;
};

// opts.out, validated (q's dtype, `shape`, contiguous, overlapping none of
// `reads`), or a new zeroed array; and lse_numel floats when opts.returnLse.
// Allocation failures → ERR_FMHA_OOM.
Outputs read_outputs(Napi::Env env, const Napi::Object& o, DType dtype, const std::vector<int64_t>& shape,
                     const char* dims, int64_t lse_numel, const std::vector<TensorArg>& reads);

// A call's result for lib/: { out, outShape, lse?, lseShape? } (lse when not empty/undefined).
Napi::Object result_object(Napi::Env env, Napi::Value out, Napi::Value lse, const std::vector<int64_t>& out_shape,
                           const std::vector<int64_t>& lse_shape);

}  // namespace fmha
