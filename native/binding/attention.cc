// attentionSync / attentionAsync (kind 'fused', 'vanilla' or 'varlen'): [sync]
// runs on the calling thread (which joins the CPU pool) and throws; [async]
// validates here, then queues the kernel on the dispatcher and returns a promise.
#include <napi.h>

#include "binding/async_queue.h"
#include "binding/attention_args.h"
#include "binding/env_state.h"
#include "binding/errors.h"
#include "binding/exports.h"
#include "binding/runtime_config.h"
#include "binding/tensor_args.h"
#include "cpu/thread_pool.h"

namespace fmha {
namespace {

struct Kind {
  AttentionKind kernel;
  Layout layout;
};

// 'varlen' is the fused kernel over packed sequences.
Kind read_kind(const Napi::Value& v) {
  const std::string k = v.IsString() ? v.As<Napi::String>().Utf8Value() : "";
  if (k == "fused") return {AttentionKind::Fused, Layout::Padded};
  if (k == "vanilla") return {AttentionKind::Vanilla, Layout::Padded};
  if (k == "varlen") return {AttentionKind::Fused, Layout::Packed};
  fail(code::kArgument, "attention kind must be 'fused', 'vanilla' or 'varlen', got " + describe(v));
}

ExecContext exec_context(const AttentionCall& call) {
  ExecContext ctx;
  ctx.num_threads = get_num_threads();
  ctx.abort_flag = call.abort_flag;
  ctx.max_scratch_bytes = max_scratch_bytes();
  return ctx;
}

Napi::Object result_object(Napi::Env env, Napi::Value out, Napi::Value lse, const AttentionCall& call) {
  Napi::Object r = Napi::Object::New(env);
  r.Set("out", out);
  r.Set("outShape", shape_array(env, call.out_shape));
  if (!lse.IsEmpty() && !lse.IsUndefined()) {
    r.Set("lse", lse);
    r.Set("lseShape", shape_array(env, call.lse_shape));
  }
  return r;
}

class AttentionJob final : public AsyncJob {
 public:
  AttentionJob(Napi::Env env, AttentionKind kind, AttentionCall call)
      : kind_(kind), call_(std::move(call)), ctx_(exec_context(call_)), deferred_(Napi::Promise::Deferred::New(env)) {
    for (const Napi::Value& v : call_.inputs) keep_.push_back(Napi::Persistent(v));
    out_ = Napi::Persistent(Napi::Value(call_.out));
    if (!call_.lse.IsEmpty()) lse_ = Napi::Persistent(Napi::Value(call_.lse));
    call_.inputs.clear();  // raw handles die with this scope; the references above keep the values
  }

  Napi::Promise promise() const { return deferred_.Promise(); }

  Status run(const int32_t* closing_flag) override {
    ExecContext ctx = ctx_;
    ctx.closing_flag = closing_flag;
    return run_attention(kind_, call_.backend, call_.params, ctx);
  }

  void complete(Napi::Env env, const Status& st) override {
    Napi::HandleScope scope(env);
    if (st.ok()) {
      deferred_.Resolve(result_object(env, out_.Value(), lse_.IsEmpty() ? env.Undefined() : lse_.Value(), call_));
    } else {
      deferred_.Reject(status_error(env, st).Value());
    }
  }

  void abandon() override {
    for (auto& r : keep_) r.SuppressDestruct();
    out_.SuppressDestruct();
    lse_.SuppressDestruct();
  }

 private:
  AttentionKind kind_;
  AttentionCall call_;
  ExecContext ctx_;
  Napi::Promise::Deferred deferred_;
  std::vector<Napi::Reference<Napi::Value>> keep_;
  Napi::Reference<Napi::Value> out_, lse_;
};

Napi::Value attention_sync(const Napi::CallbackInfo& info) {
  return guard(info.Env(), [&]() -> Napi::Value {
    const Kind kind = read_kind(info[0]);
    AttentionCall call = parse_attention_call(info, kind.layout);
    const Status st = run_attention(kind.kernel, call.backend, call.params, exec_context(call));
    if (!st.ok()) throw status_error(info.Env(), st);
    return result_object(info.Env(), call.out, call.lse.IsEmpty() ? info.Env().Undefined() : Napi::Value(call.lse), call);
  });
}

Napi::Value attention_async(const Napi::CallbackInfo& info) {
  return guard(info.Env(), [&]() -> Napi::Value {
    const Kind kind = read_kind(info[0]);
    auto job = std::make_unique<AttentionJob>(info.Env(), kind.kernel, parse_attention_call(info, kind.layout));
    Napi::Promise promise = job->promise();
    submit_async(info.Env(), std::move(job));
    return promise;
  });
}

}  // namespace

void register_attention(Napi::Env env, Napi::Object exports) {
  exports.Set("attentionSync", Napi::Function::New(env, attention_sync, "attentionSync"));
  exports.Set("attentionAsync", Napi::Function::New(env, attention_async, "attentionAsync"));
}

}  // namespace fmha
