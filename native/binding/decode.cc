// decodeAttentionSync / decodeAttentionAsync on raw cache tensors, the KvCache
// object behind lib's KVCache (append, reset, lengths, decode), and
// planDecode, the partition exposed for its unit tests. [sync] runs on the
// calling thread and throws; [async] validates here, then queues the kernel.
#include <napi.h>

#include <algorithm>
#include <cmath>

#include "binding/async_queue.h"
#include "binding/decode_args.h"
#include "binding/errors.h"
#include "binding/exports.h"
#include "binding/runtime_config.h"
#include "binding/tensor_args.h"
#include "core/decode_partition.h"
#include "cpu/thread_pool.h"

namespace fmha {
namespace {

ExecContext exec_context(const DecodeCall& call) { return call_context(call.abort_flag); }

// { out, outShape, lse?, lseShape?, device? }: on DeviceTensors out and lse are handles and `device` is set.
Napi::Object result_object(Napi::Env env, Napi::Value out, Napi::Value lse, const DecodeCall& call) {
  Napi::Object r = fmha::result_object(env, out, lse, call.out_shape, call.lse_shape);
  if (call.device.active) r.Set("device", call.device.device);
  return r;
}

Napi::Value result_out(const DecodeCall& call) {
  return call.device.active ? call.device.out_handle : Napi::Value(call.outputs.out);
}

Napi::Value result_lse(Napi::Env env, const DecodeCall& call) {
  const Napi::Value lse = call.device.active ? call.device.lse_handle : Napi::Value(call.outputs.lse);
  return lse.IsEmpty() ? env.Undefined() : lse;
}

// Runs a validated call on its backend. wait: a device call waits for its
// stream (async calls); a sync call on DeviceTensors only enqueues, as
// attention's does.
Status run_call(const DecodeCall& call, const ExecContext& ctx, bool wait) {
  if (call.device.active) return run_device_decode(call.params, call.device, ctx, wait);
  return run_decode(call.backend, call.params, ctx);
}

// A failed call's fused append never happened as far as the cache knows: the
// lengths (and pages) it reserved are given back.
void settle_store(DecodeCall& call, const Status& st, bool was_async) {
  if (!call.store) return;
  if (was_async) {
    --call.store->in_flight;
    if (call.writes) --call.store->writers;
  }
  if (!st.ok() && call.writes)
    for (int64_t b = 0; b < call.params.attn.B; ++b) {
      const int64_t s = call.params.sequence(b);
      call.store->truncate(s, call.cache_seqlens[size_t(b)] - call.params.attn.Sq);
    }
}

Napi::Value run_sync(Napi::Env env, DecodeCall call) {
  const Status st = run_call(call, exec_context(call), false);
  settle_store(call, st, false);
  if (!st.ok()) throw status_error(env, st);
  return result_object(env, result_out(call), result_lse(env, call), call);
}

class DecodeJob final : public AsyncJob {
 public:
  DecodeJob(Napi::Env env, DecodeCall call)
      : call_(std::move(call)), ctx_(exec_context(call_)), deferred_(Napi::Promise::Deferred::New(env)) {
    for (const Napi::Value& v : call_.inputs) keep_.push_back(Napi::Persistent(v));
    out_ = Napi::Persistent(result_out(call_));
    const Napi::Value lse = result_lse(env, call_);
    if (!lse.IsUndefined()) lse_ = Napi::Persistent(lse);
    call_.inputs.clear();
    if (call_.store) {
      ++call_.store->in_flight;
      if (call_.writes) ++call_.store->writers;
    }
  }

  Napi::Promise promise() const { return deferred_.Promise(); }

  Status run(const int32_t* closing_flag) override {
    ExecContext ctx = ctx_;
    ctx.closing_flag = closing_flag;
    return run_call(call_, ctx, true);
  }

  void complete(Napi::Env env, const Status& st) override {
    Napi::HandleScope scope(env);
    settle_store(call_, st, true);
    if (st.ok())
      deferred_.Resolve(result_object(env, out_.Value(), lse_.IsEmpty() ? env.Undefined() : lse_.Value(), call_));
    else
      deferred_.Reject(status_error(env, st).Value());
  }

  void abandon() override {
    for (auto& r : keep_) r.SuppressDestruct();
    out_.SuppressDestruct();
    lse_.SuppressDestruct();
  }

 private:
  DecodeCall call_;
  ExecContext ctx_;
  Napi::Promise::Deferred deferred_;
  std::vector<Napi::Reference<Napi::Value>> keep_;
  Napi::Reference<Napi::Value> out_, lse_;
};

Napi::Value submit(Napi::Env env, DecodeCall call) {
  auto job = std::make_unique<DecodeJob>(env, std::move(call));
  Napi::Promise promise = job->promise();
  submit_async(env, std::move(job));
  return promise;
}

Napi::Value decode_attention_sync(const Napi::CallbackInfo& info) {
  return guard(info.Env(), [&]() -> Napi::Value { return run_sync(info.Env(), parse_decode_attention(info)); });
}

Napi::Value decode_attention_async(const Napi::CallbackInfo& info) {
  return guard(info.Env(), [&]() -> Napi::Value { return submit(info.Env(), parse_decode_attention(info)); });
}

// An integer option of the KvCache config in [lo, hi]; dflt when absent (dflt < 0: required).
// Not an integer → ERR_FMHA_ARGUMENT; out of range → range_code (SHAPE for head dims, DESIGN §4).
int64_t config_int(const Napi::Object& o, const char* key, int64_t lo, int64_t hi, int64_t dflt,
                   const char* range_code = code::kArgument) {
  Napi::Value v = o.Get(key);
  if (v.IsUndefined() && dflt >= 0) return dflt;
  const double d = v.IsNumber() ? v.As<Napi::Number>().DoubleValue() : NAN;
  const bool integer = std::isfinite(d) && std::floor(d) == d;
  if (!integer || !(d >= double(lo) && d <= double(hi)))
    fail(integer ? range_code : code::kArgument, std::string("KVCache options.") + key + " must be an integer in [" +
                                                     std::to_string(lo) + ", " + std::to_string(hi) + "], got " + describe(v));
  return int64_t(d);
}

class KvCacheObject final : public Napi::ObjectWrap<KvCacheObject> {
 public:
  static Napi::Function define(Napi::Env env) {
    return DefineClass(env, "KvCache",
                       {InstanceMethod<&KvCacheObject::append>("append"),
                        InstanceMethod<&KvCacheObject::lengths>("lengths"),
                        InstanceMethod<&KvCacheObject::reset>("reset"),
                        InstanceMethod<&KvCacheObject::free_pages>("freePages"),
                        InstanceMethod<&KvCacheObject::dispose>("dispose"),
                        InstanceMethod<&KvCacheObject::decode_sync>("decodeSync"),
                        InstanceMethod<&KvCacheObject::decode_async>("decodeAsync")});
  }

  explicit KvCacheObject(const Napi::CallbackInfo& info) : Napi::ObjectWrap<KvCacheObject>(info) {
    Napi::Env env = info.Env();
    try {
      if (!info[0].IsObject()) fail(code::kArgument, "KVCache expects an options object, got " + describe(info[0]));
      Napi::Object o = info[0].As<Napi::Object>();
      KvCacheStore::Config c;
      constexpr int64_t kMaxLen = 0x7fffffff;
      c.batch = config_int(o, "batch", 0, kMaxLen, -1);
      c.capacity = config_int(o, "capacity", 0, kMaxLen, -1);
      c.heads = config_int(o, "kvHeads", 1, kMaxLen, -1);
      c.D = config_int(o, "headDim", 1, 256, -1, code::kShape);
      c.Dv = config_int(o, "headDimV", 1, 256, c.D, code::kShape);
      Napi::Value dt = o.Get("dtype");
      const std::string dts = dt.IsUndefined() ? "float32" : dt.IsString() ? dt.As<Napi::String>().Utf8Value() : "";
      if (!parse_dtype(dts, &c.dtype))
        fail(code::kDtype, "KVCache options.dtype must be 'float32', 'float16' or 'bfloat16', got " + describe(dt));
      if (!o.Get("device").IsUndefined())
        fail(code::kBackend, "KVCache options.device: device caches need the CUDA decode kernels, not in this build yet");
      if (!o.Get("pageSize").IsUndefined()) {
        c.page_size = config_int(o, "pageSize", 1, kMaxLen, -1);
        const int64_t max_pages = (c.capacity + c.page_size - 1) / c.page_size;
        c.num_pages = config_int(o, "numPages", 0, kMaxLen, std::min<int64_t>(kMaxLen, c.batch * max_pages));
      } else if (!o.Get("numPages").IsUndefined()) {
        fail(code::kArgument, "KVCache options.numPages needs options.pageSize (a paged cache)");
      }
      std::string error;
      std::unique_ptr<KvCacheStore> s = KvCacheStore::create(c, max_scratch_bytes(), &error);
      if (!s) fail(code::kOom, error);
      store_ = std::move(s);
    } catch (...) {
      throw_current(env);
    }
  }

 private:
  KvCacheStore& store() {
    if (!store_) fail(code::kArgument, "the KVCache was disposed");
    return *store_;
  }

  Napi::Value append(const Napi::CallbackInfo& info) {
    return guard(info.Env(), [&]() -> Napi::Value {
      cache_append(store(), info[0], info[1], info[2]);
      return info.Env().Undefined();
    });
  }

  Napi::Value lengths(const Napi::CallbackInfo& info) {
    return guard(info.Env(), [&]() -> Napi::Value {
      const std::vector<int32_t>& l = store().lengths();
      Napi::Int32Array a = Napi::Int32Array::New(info.Env(), l.size());
      std::copy(l.begin(), l.end(), a.Data());
      return a;
    });
  }

  Napi::Value reset(const Napi::CallbackInfo& info) {
    return guard(info.Env(), [&]() -> Napi::Value {
      KvCacheStore& s = store();
      Napi::Array one = Napi::Array::New(info.Env(), 1);
      one.Set(0u, info[0]);
      const std::vector<int32_t> id = read_seq_ids(one, "seqId", s.config().batch);
      if (s.in_flight > 0) fail(code::kArgument, "the cache is busy: a decode on it is in flight (await it before reset)");
      s.truncate(id[0], 0);
      return info.Env().Undefined();
    });
  }

  Napi::Value free_pages(const Napi::CallbackInfo& info) {
    return guard(info.Env(), [&]() -> Napi::Value { return Napi::Number::New(info.Env(), double(store().free_pages())); });
  }

  // Drops this object's reference; in-flight decodes hold their own until they settle.
  Napi::Value dispose(const Napi::CallbackInfo& info) {
    store_.reset();
    return info.Env().Undefined();
  }

  Napi::Value decode_sync(const Napi::CallbackInfo& info) {
    return guard(info.Env(), [&]() -> Napi::Value {
      store();
      return run_sync(info.Env(), parse_cache_decode(info.Env(), info[0], info[1], store_));
    });
  }

  Napi::Value decode_async(const Napi::CallbackInfo& info) {
    return guard(info.Env(), [&]() -> Napi::Value {
      store();
      return submit(info.Env(), parse_cache_decode(info.Env(), info[0], info[1], store_));
    });
  }

  std::shared_ptr<KvCacheStore> store_;
};

// planDecode(tiles: number[], strategy, workers) → { pieces: [unit, begin, end][], tasks: number[] }.
Napi::Value plan_decode_js(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  return guard(env, [&]() -> Napi::Value {
    if (!info[0].IsArray()) fail(code::kArgument, "planDecode expects an array of tile counts");
    Napi::Array a = info[0].As<Napi::Array>();
    std::vector<TileSpan> spans;
    for (uint32_t i = 0; i < a.Length(); ++i) {
      const double t = a.Get(i).IsNumber() ? a.Get(i).As<Napi::Number>().DoubleValue() : -1;
      if (!(t >= 0 && t < 1e15) || std::floor(t) != t) fail(code::kArgument, "tile counts must be integers ≥ 0");
      spans.push_back({0, int64_t(t)});
    }
    Napi::Object o = Napi::Object::New(env);
    o.Set("strategy", info[1]);
    const DecodeStrategy s = read_strategy(o);
    if (s == DecodeStrategy::Auto) fail(code::kArgument, "planDecode needs a concrete strategy");
    const double w = info[2].IsNumber() ? info[2].As<Napi::Number>().DoubleValue() : 0;
    if (!(w >= 1 && w <= 1e6)) fail(code::kArgument, "workers must be in [1, 1e6]");
    const DecodePlan plan = plan_decode(spans, s, int64_t(w));
    Napi::Array pieces = Napi::Array::New(env, plan.pieces.size());
    for (uint32_t i = 0; i < plan.pieces.size(); ++i) {
      Napi::Array e = Napi::Array::New(env, 3);
      e.Set(0u, double(plan.pieces[i].unit));
      e.Set(1u, double(plan.pieces[i].begin));
      e.Set(2u, double(plan.pieces[i].end));
      pieces.Set(i, e);
    }
    Napi::Array tasks = Napi::Array::New(env, plan.tasks.size());
    for (uint32_t i = 0; i < plan.tasks.size(); ++i) tasks.Set(i, double(plan.tasks[i]));
    Napi::Object r = Napi::Object::New(env);
    r.Set("pieces", pieces);
    r.Set("tasks", tasks);
    return r;
  });
}

}  // namespace

void register_decode(Napi::Env env, Napi::Object exports) {
  exports.Set("decodeAttentionSync", Napi::Function::New(env, decode_attention_sync, "decodeAttentionSync"));
  exports.Set("decodeAttentionAsync", Napi::Function::New(env, decode_attention_async, "decodeAttentionAsync"));
  exports.Set("KvCache", KvCacheObject::define(env));
  exports.Set("planDecode", Napi::Function::New(env, plan_decode_js, "planDecode"));
}

}  // namespace fmha
