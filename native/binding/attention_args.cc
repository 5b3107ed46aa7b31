#include "binding/attention_args.h"

#include <algorithm>
#include <cmath>
#include <set>
#include <string>

#include "binding/errors.h"
#include "binding/option_readers.h"
#include "binding/tensor_args.h"
#include "core/checked_math.h"
#include "core/cuda_info.h"

namespace fmha {
namespace {

constexpr int64_t kMaxHeadDim = 256;

std::string str(int64_t v) { return std::to_string(v); }

void expect_dim(const TensorArg& t, int dim, int64_t want, const char* what) {
  if (t.shape[dim] != want)
    fail(code::kShape, t.name + ".shape[" + str(dim) + "] (" + what + ") must be " + str(want) + ", got " +
                           str(t.shape[dim]));
}

void expect_head_dim(const TensorArg& t, int dim, const char* what) {
  const int64_t d = t.shape[dim];
  if (d < 1 || d > kMaxHeadDim)
    fail(code::kShape, t.name + ".shape[" + str(dim) + "] (" + what + ") must be in [1, " + str(kMaxHeadDim) +
                           "], got " + str(d));
}

void expect_same_dtype(const TensorArg& t, const TensorArg& q) {
  if (t.dtype != q.dtype)
    fail(code::kDtype, t.name + ".dtype must match " + q.name + ".dtype (" + dtype_name(q.dtype) + "), got " +
                           dtype_name(t.dtype));
}

// AttentionParams strides (batch, row, head): a packed [T, H, D] tensor is one
// sequence of T rows with batch stride 0; SequenceView adds each sequence's first row.
void copy_strides(const TensorArg& t, Layout layout, int64_t* stride) {
  const int last = t.rank() - 1;
  if (t.strides[last] != 1 && t.shape[last] > 1) fail(code::kArgument, t.name + ".strides[" + str(last) + "] must be 1");
  const int first = layout == Layout::Packed ? 1 : 0;
  stride[0] = 0;
  for (int i = first; i < 3; ++i) stride[i] = t.strides[i - first];
}

// 'auto' computes where the tensors live; 'cuda' on host tensors copies in and out (DESIGN §3).
Backend read_backend(const Napi::Object& o, const TensorArg& q) {
  Napi::Value v = o.Get("backend");
  const std::string b = v.IsUndefined() ? "auto" : v.IsString() ? v.As<Napi::String>().Utf8Value() : "";
  if (b == "auto") return q.on_device ? Backend::Cuda : Backend::Cpu;
  if (b == "cpu") {
    if (q.on_device)
      fail(code::kBackend, "opts.backend 'cpu' cannot compute on DeviceTensors (q is " + side_string(q) +
                               "); use backend 'auto' or 'cuda', or toHost() them");
    return Backend::Cpu;
  }
  if (b != "cuda") fail(code::kArgument, "opts.backend must be 'auto', 'cpu' or 'cuda', got " + describe(v));
  const CudaInfo& cuda = query_cuda();
  if (!cuda.available) fail(code::kBackend, "opts.backend 'cuda' is not available: " + cuda.reason);
  return Backend::Cuda;
}

const std::set<std::string>& known_options(Layout layout) {
  static const std::set<std::string> padded = {"causal", "scale", "window", "softcap", "alibiSlopes", "seqlensK",
                                               "bias", "returnLse", "out", "backend", "abortFlag"};
  static const std::set<std::string> packed = [] {
    std::set<std::string> s = padded;
    s.insert({"cuSeqlensQ", "cuSeqlensK", "maxSeqlenQ", "maxSeqlenK"});
    return s;
  }();
  return layout == Layout::Packed ? packed : padded;
}

std::string padded_hint(const std::string& key) {
  return known_options(Layout::Packed).count(key) ? " (it is one of varlenAttention)" : "";
}

// Dimension names of q, k, v and out per layout, for messages.
struct LayoutNames {
  const char *q, *k, *v, *out;
};
LayoutNames layout_names(Layout layout) {
  if (layout == Layout::Packed)
    return {"[tokensQ, headsQ, headDim]", "[tokensK, headsKV, headDim]", "[tokensK, headsKV, headDimV]",
            "[tokensQ, headsQ, headDimV]"};
  return {"[batch, seqQ, headsQ, headDim]", "[batch, seqK, headsKV, headDim]", "[batch, seqK, headsKV, headDimV]",
          "[batch, seqQ, headsQ, headDimV]"};
}

// Varlen: B, the longest lengths and the cu_seqlens pointers from opts (DESIGN §3).
// Sq and Sk become the real longest lengths (scratch is sized by them); a
// caller's maxSeqlen is only checked, as FlashAttention's max_seqlen is a promise.
void read_varlen_options(const Napi::Object& o, const TensorArg& q, const TensorArg& k, AttentionCall& call) {
  AttentionParams& p = call.params;
  call.cu_q = read_cu_seqlens(o.Get("cuSeqlensQ"), "opts.cuSeqlensQ", q.shape[0], "q");
  call.cu_k = read_cu_seqlens(o.Get("cuSeqlensK"), "opts.cuSeqlensK", k.shape[0], "k");
  if (call.cu_k.batch != call.cu_q.batch)
    fail(code::kShape, "opts.cuSeqlensK must have as many entries as opts.cuSeqlensQ (" + str(call.cu_q.batch + 1) +
                           ", batch + 1), got " + str(call.cu_k.batch + 1));
  read_max_seqlen(o.Get("maxSeqlenQ"), "opts.maxSeqlenQ", call.cu_q.max_len);
  read_max_seqlen(o.Get("maxSeqlenK"), "opts.maxSeqlenK", call.cu_k.max_len);
  if (!o.Get("seqlensK").IsUndefined())
    fail(code::kArgument, "opts.seqlensK is for padded batches; in varlenAttention sequence b's keys are rows "
                          "opts.cuSeqlensK[b] .. opts.cuSeqlensK[b + 1] of k");
  if (!o.Get("bias").IsUndefined())
    fail(code::kArgument, "opts.bias is for padded batches (its [B, Hq, Sq, Sk] layout has no packed form); "
                          "call attention() on the padded batch for a bias");
  p.B = call.cu_q.batch;
  p.Sq = call.cu_q.max_len;
  p.Sk = call.cu_k.max_len;
  p.cu_seqlens_q = call.cu_q.values.data();
  p.cu_seqlens_k = call.cu_k.values.data();
}

}  // namespace

AttentionCall parse_attention_call(const Napi::CallbackInfo& info, Layout layout) {
  Napi::Env env = info.Env();
  AttentionCall call;
  AttentionParams& p = call.params;
  const bool packed = layout == Layout::Packed;
  const LayoutNames names = layout_names(layout);
  const int s = packed ? 0 : 1;  // the row (sequence or token) dim; heads at s + 1, head dim at s + 2

  const TensorArg q = read_any_tensor(info[1], "q");
  const TensorArg k = read_any_tensor(info[2], "k");
  const TensorArg v = read_any_tensor(info[3], "v");
  expect_same_side(k, q);
  expect_same_side(v, q);
  expect_rank(q, s + 3, names.q);
  expect_rank(k, s + 3, names.k);
  expect_rank(v, s + 3, names.v);
  expect_same_dtype(k, q);
  expect_same_dtype(v, q);
  p.dtype = q.dtype;
  p.Hq = q.shape[s + 1]; p.D = q.shape[s + 2];
  p.Hkv = k.shape[s + 1]; p.Dv = v.shape[s + 2];
  expect_head_dim(q, s + 2, "headDim");
  if (!packed) {
    p.B = q.shape[0]; p.Sq = q.shape[1]; p.Sk = k.shape[1];
    expect_dim(k, 0, p.B, "batch, as q");
    expect_dim(v, 0, p.B, "batch, as q");
  }
  expect_dim(k, s + 2, p.D, "headDim, as q");
  expect_dim(v, s, k.shape[s], packed ? "tokensK, as k" : "seqK, as k");
  expect_dim(v, s + 1, p.Hkv, "headsKV, as k");
  expect_head_dim(v, s + 2, "headDimV");
  if (p.Hq < 1) fail(code::kShape, "q.shape[" + str(s + 1) + "] (headsQ) must be ≥ 1, got " + str(p.Hq));
  if (p.Hkv < 1 || p.Hq % p.Hkv != 0)
    fail(code::kShape, "k.shape[" + str(s + 1) + "] (headsKV) must be ≥ 1 and divide q's heads (" + str(p.Hq) +
                           "), got " + str(p.Hkv));
  copy_strides(q, layout, p.q_stride);
  copy_strides(k, layout, p.k_stride);
  copy_strides(v, layout, p.v_stride);
  p.q = q.data; p.k = k.data; p.v = v.data;
  call.inputs = {q.keep(), k.keep(), v.keep()};

  Napi::Value ov = info[4];
  if (!ov.IsUndefined() && !ov.IsObject()) fail(code::kArgument, "opts must be an object, got " + describe(ov));
  Napi::Object o = ov.IsObject() ? ov.As<Napi::Object>() : Napi::Object::New(env);
  reject_unknown_options(o, known_options(layout), packed ? "varlenAttention" : "attention",
                         packed ? nullptr : padded_hint);
  if (packed) read_varlen_options(o, q, k, call);

  read_score_options(o, p, call.inputs);

  if (const int32_t* lens = read_array_option<int32_t>(o, "seqlensK", napi_int32_array, p.B, "one length per batch entry", call.inputs)) {
    call.seqlens_k.assign(lens, lens + p.B);
    p.seqlens_k = call.seqlens_k.data();
  }
  for (int64_t b = 0; p.seqlens_k && b < p.B; ++b)
    if (p.seqlens_k[b] < 0 || p.seqlens_k[b] > p.Sk)
      fail(code::kArgument, "opts.seqlensK[" + str(b) + "] must be in [0, " + str(p.Sk) + "] (seqK), got " +
                                str(p.seqlens_k[b]));

  std::vector<TensorArg> read_inputs = {q, k, v};
  Napi::Value bv = o.Get("bias");
  if (!bv.IsUndefined()) {
    TensorArg bias = read_any_tensor(bv, "opts.bias");
    expect_same_side(bias, q);
    expect_same_dtype(bias, q);
    const bool ok = bias.rank() == 4 && (bias.shape[0] == p.B || bias.shape[0] == 1) &&
                    (bias.shape[1] == p.Hq || bias.shape[1] == 1) && bias.shape[2] == p.Sq && bias.shape[3] == p.Sk;
    if (!ok)
      fail(code::kShape, "opts.bias must have shape [" + str(p.B) + " or 1, " + str(p.Hq) + " or 1, " + str(p.Sq) +
                             ", " + str(p.Sk) + "], got " + shape_string(bias.shape));
    if (!bias.contiguous) fail(code::kArgument, "opts.bias must be contiguous (no strided view)");
    p.bias = bias.data;
    p.bias_stride_b = bias.shape[0] == 1 ? 0 : bias.strides[0];
    p.bias_stride_h = bias.shape[1] == 1 ? 0 : bias.strides[1];
    call.inputs.push_back(bias.keep());
    read_inputs.push_back(bias);
  }

  call.backend = read_backend(o, q);
  DeviceCallPlan& dp = call.device;
  if (call.backend == Backend::Cuda) {
    dp.active = true;
    dp.device = q.on_device ? q.device : 0;
    dp.host_io = !q.on_device;
    for (const TensorArg& t : read_inputs)
      if (t.on_device) dp.keep.push_back(t.storage);
    dp.q_span = q.span; dp.k_span = k.span; dp.v_span = v.span;
    dp.bias_span = read_inputs.size() > 3 ? read_inputs[3].span : 0;
  }

  call.abort_flag = read_array_option<int32_t>(o, "abortFlag", napi_int32_array, 1, "one flag", call.inputs);

  // Outputs: the caller's `out` (validated) or new arrays; allocation comes last.
  const int64_t Tq = q.shape[0];  // packed: query rows, cu_seqlens_q[B] of them real
  call.out_shape = packed ? std::vector<int64_t>{Tq, p.Hq, p.Dv} : std::vector<int64_t>{p.B, p.Sq, p.Hq, p.Dv};
  call.lse_shape = packed ? std::vector<int64_t>{p.Hq, Tq} : std::vector<int64_t>{p.B, p.Hq, p.Sq};
  const int64_t rows = packed ? Tq : p.B * p.Sq;
  int64_t out_numel = 0;
  if (!checked_mul(rows, p.Hq * p.Dv, &out_numel)) fail(code::kShape, "the output has more than 2^63 elements");
  Napi::Value outv = o.Get("out");
  if (!outv.IsUndefined()) {
    TensorArg out = read_any_tensor(outv, "opts.out");
    expect_same_side(out, q);
    check_out(out, q.dtype, call.out_shape, names.out, read_inputs);
    if (out.on_device) {
      dp.keep.push_back(out.storage);
      dp.out_handle = out.object.As<Napi::Object>().Get("handle");
    } else {
      call.out = out.array;
    }
    p.out = out.data;
  }
  const bool want_lse = read_bool(o, "returnLse", false);
  dp.out_rows = rows;
  dp.rows_written = packed ? call.cu_q.values.back() : rows;
  if (q.on_device) {
    allocate_device_outputs(env, dp, p, outv.IsUndefined() ? out_numel * dtype_size(q.dtype) : -1,
                            want_lse ? rows * p.Hq * int64_t(sizeof(float)) : -1);
  } else {
    try {
      if (p.out == nullptr) {
        call.out = q.dtype == DType::F32 ? Napi::TypedArray(Napi::Float32Array::New(env, size_t(out_numel)))
                                         : Napi::TypedArray(Napi::Uint16Array::New(env, size_t(out_numel)));
        p.out = static_cast<char*>(call.out.ArrayBuffer().Data()) + call.out.ByteOffset();
      }
      if (want_lse) {
        call.lse = Napi::Float32Array::New(env, size_t(rows * p.Hq));
        p.lse = call.lse.Data();
      }
    } catch (const Napi::Error& e) {
      fail(code::kOom, "allocating the output of " + str(out_numel) + " elements failed: " + e.Message());
    }
  }
  p.o_stride[0] = packed ? 0 : p.Sq * p.Hq * p.Dv;
  p.o_stride[1] = p.Hq * p.Dv;
  p.o_stride[2] = p.Dv;
  p.lse_stride[0] = packed ? 0 : p.Hq * p.Sq;
  p.lse_stride[1] = packed ? Tq : p.Sq;
  // Packed rows past cuSeqlensQ[B] belong to no sequence: they see no key (lse
  // −Infinity) and, in a new out, stay 0; a caller's out keeps them untouched.
  // (Device tensors: run_device_attention fills them on the device.)
  if (packed && p.lse && !q.on_device)
    for (int64_t h = 0; h < p.Hq; ++h)
      std::fill(p.lse + h * Tq + call.cu_q.values.back(), p.lse + (h + 1) * Tq, -INFINITY);
  call.inputs.push_back(result_out(call));
  return call;
}

Napi::Value result_out(const AttentionCall& call) {
  return call.device.active && !call.device.host_io ? call.device.out_handle : Napi::Value(call.out);
}

Napi::Value result_lse(Napi::Env env, const AttentionCall& call) {
  if (call.device.active && !call.device.host_io)
    return call.device.lse_handle.IsEmpty() ? env.Undefined() : call.device.lse_handle;
  return call.lse.IsEmpty() ? env.Undefined() : Napi::Value(call.lse);
}

}  // namespace fmha
