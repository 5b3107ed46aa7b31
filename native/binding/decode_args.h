// Validates decodeAttention(q, kCache, vCache, cacheSeqlens, opts) and
// decode(q, cache, opts) on a KVCache, and fills DecodeParams (DESIGN §3, §4).
// Every check happens here, before any kernel runs or any cache row is written.
#pragma once
#include <napi.h>
#include <memory>
#include <vector>
#include "binding/device_attention.h"
#include "binding/option_readers.h"
#include "core/decode_params.h"
#include "cpu/kv_cache_store.h"
#include "dispatch.h"

namespace fmha {

struct DecodeCall {
  DecodeParams params;
  Backend backend = Backend::Cpu;
  const int32_t* abort_flag = nullptr;
  Outputs outputs;
  std::vector<int64_t> out_shape, lse_shape;
  std::vector<Napi::Value> inputs;  // JS values the kernel reads or writes: kept alive by async calls
  // Validated copies the params point into: a caller mutating its arrays
  // mid-call must not send the kernel out of bounds.
  std::vector<int32_t> cache_seqlens, block_table, seq_ids;
  std::shared_ptr<KvCacheStore> store;  // decode() on a KVCache: kept alive until the call settles
  bool writes = false;                  // fused append (kNew, vNew)
  DeviceCallPlan device;                // DeviceTensors: the call runs on the CUDA backend

  DecodeCall() = default;
  DecodeCall(DecodeCall&&) = default;
  DecodeCall& operator=(DecodeCall&&) = default;
  DecodeCall(const DecodeCall&) = delete;
  DecodeCall& operator=(const DecodeCall&) = delete;
};

// info: (q, kCache, vCache, cacheSeqlens, opts). Throws FmhaException.
DecodeCall parse_decode_attention(const Napi::CallbackInfo& info);

// decode(q, cache, opts): the cache's own layout and lengths; with kNew/vNew the
// new tokens are reserved in the store (lengths, pages) as the last step.
DecodeCall parse_cache_decode(Napi::Env env, const Napi::Value& q, const Napi::Value& opts,
                              std::shared_ptr<KvCacheStore> store);

// KVCache.append(k, v, seqIds): validates, then writes in place.
void cache_append(KvCacheStore& store, const Napi::Value& k, const Napi::Value& v, const Napi::Value& seq_ids);

// Sequence ids of a cache call: an Int32Array or Array of distinct integers in
// [0, batch) (else ERR_FMHA_ARGUMENT); undefined: all of them (empty result).
std::vector<int32_t> read_seq_ids(const Napi::Value& v, const std::string& name, int64_t batch);

DecodeStrategy read_strategy(const Napi::Object& o);

}  // namespace fmha
