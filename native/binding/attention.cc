// attentionSync / attentionAsync (kind 'fused', 'vanilla' or 'varlen'): [sync]
// runs on the calling thread (which joins the CPU pool) and throws; [async]
// validates here, then queues the kernel on the dispatcher and returns a promise.
// On device tensors [sync] only enqueues on the device's stream and returns the
// output DeviceTensors; [async] enqueues on the dispatcher thread and waits
// there for the stream before it settles (binding/device_attention.h).
// cudaTimeAttention times a device call with CUDA events, for benchmarks.
#include <napi.h>

#include <cmath>

#include "binding/async_queue.h"
#include "binding/attention_args.h"
#include "binding/env_state.h"
#include "binding/errors.h"
#include "binding/option_readers.h"
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

ExecContext exec_context(const AttentionCall& call) { return call_context(call.abort_flag); }

// { out, outShape, lse?, lseShape?, device? }: `device` is set when out and lse are DeviceTensor handles.
Napi::Object result_object(Napi::Env env, Napi::Value out, Napi::Value lse, const AttentionCall& call) {
  Napi::Object r = fmha::result_object(env, out, lse, call.out_shape, call.lse_shape);
  if (call.device.active && !call.device.host_io) r.Set("device", call.device.device);
  return r;
}

// Runs a validated call on its backend. wait: a device call waits for its stream (async calls).
Status run_call(AttentionKind kind, const AttentionCall& call, const ExecContext& ctx, bool wait) {
  if (call.backend == Backend::Cuda) return run_device_attention(kind, call.params, call.device, ctx, wait);
  return run_attention(kind, call.backend, call.params, ctx);
}

class AttentionJob final : public AsyncJob {
 public:
  AttentionJob(Napi::Env env, AttentionKind kind, AttentionCall call)
      : kind_(kind), call_(std::move(call)), ctx_(exec_context(call_)), deferred_(Napi::Promise::Deferred::New(env)) {
    for (const Napi::Value& v : call_.inputs) keep_.push_back(Napi::Persistent(v));
    out_ = Napi::Persistent(result_out(call_));
    Napi::Value lse = result_lse(env, call_);
    if (!lse.IsUndefined()) lse_ = Napi::Persistent(lse);
    call_.inputs.clear();  // raw handles die with this scope; the references above keep the values
  }

  Napi::Promise promise() const { return deferred_.Promise(); }

  Status run(const int32_t* closing_flag) override {
    ExecContext ctx = ctx_;
    ctx.closing_flag = closing_flag;
    return run_call(kind_, call_, ctx, true);
  }

  void complete(Napi::Env env, const Status& st) override {
    Napi::HandleScope scope(env);
    if (st.ok()) {
      deferred_.Resolve(result_object(env, out_.Value(), lse_.IsEmpty() ? env.Undefined() : lse_.Value(), call_));
    } else {
      deferred_.Reject(status_error(env, st).Value());
    }
    call_.device.keep.clear();  // device blocks go back to the cache now, not when the job is deleted
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
    const Status st = run_call(kind.kernel, call, exec_context(call), false);
    if (!st.ok()) throw status_error(info.Env(), st);
    return result_object(info.Env(), result_out(call), result_lse(info.Env(), call), call);
  });
}

// [sync] cudaTimeAttention(kind, q, k, v, opts, iters) → milliseconds per call:
// `iters` calls on DeviceTensors enqueued back to back between two CUDA events,
// after one untimed call. Validated like attentionSync; blocks the calling thread.
Napi::Value cuda_time_attention(const Napi::CallbackInfo& info) {
  return guard(info.Env(), [&]() -> Napi::Value {
    const Kind kind = read_kind(info[0]);
    const double n = info[5].IsNumber() ? info[5].As<Napi::Number>().DoubleValue() : NAN;
    if (!(n >= 1 && n <= 1e6) || std::floor(n) != n)
      fail(code::kArgument, "iters must be an integer in [1, 10^6], got " + describe(info[5]));
    AttentionCall call = parse_attention_call(info, kind.layout);
    if (!call.device.active || call.device.host_io)
      fail(code::kArgument, "cudaTimeAttention times calls on DeviceTensors; q is a host Tensor");
    struct Ctx {
      AttentionKind kind;
      const AttentionCall* call;
      ExecContext exec;
    } ctx{kind.kernel, &call, exec_context(call)};
    auto enqueue = [](void* c) -> Status {
      const Ctx& x = *static_cast<const Ctx*>(c);
      return run_device_attention(x.kind, x.call->params, x.call->device, x.exec, false);
    };
    double ms = 0;
    const Status st = device_time(call.device.device, int(n), enqueue, &ctx, &ms);
    if (!st.ok()) throw status_error(info.Env(), st);
    return Napi::Number::New(info.Env(), ms);
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
  exports.Set("cudaTimeAttention", Napi::Function::New(env, cuda_time_attention, "cudaTimeAttention"));
}

}  // namespace fmha
