#include "binding/decode_args.h"

#include <algorithm>
#include <cmath>
#include <set>
#include <string>

#include "binding/errors.h"
#include "binding/tensor_args.h"
#include "core/checked_math.h"
#include "core/cuda_info.h"
#include "cpu/kv_cache_write.h"

namespace fmha {
namespace {

constexpr int64_t kMaxHeadDim = 256;

std::string str(int64_t v) { return std::to_string(v); }

// What both forms read from their cache.
struct CacheLayout {
  DType dtype;
  int64_t Hkv, D, Dv, capacity;
};

const std::set<std::string>& shared_options() {
  static const std::set<std::string> s = {"causal", "scale",     "window",   "softcap", "alibiSlopes", "returnLse",
                                          "out",    "backend",   "abortFlag", "strategy", "kNew",       "vNew"};
  return s;
}

std::string option_hint(const std::string& key) {
  if (key == "seqlensK" || key == "bias")
    return " (in decode each sequence's keys are its cache length; there is no key padding or bias)";
  if (key == "blockTable") return " (a KVCache keeps its own block table)";
  if (key == "seqIds") return " (it is one of decode on a KVCache)";
  return "";
}

void expect_head_dim(int64_t d, const std::string& what) {
  if (d < 1 || d > kMaxHeadDim)
    fail(code::kShape, what + " must be in [1, " + str(kMaxHeadDim) + "], got " + str(d));
}

void expect_unit_last_stride(const TensorArg& t) {
  const int last = t.rank() - 1;
  if (t.strides[last] != 1 && t.shape[last] > 1) fail(code::kArgument, t.name + ".strides[" + str(last) + "] must be 1");
}

// q [B, Hq, D] (one token) or [B, Sq, Hq, D]: shapes and strides (batch, token, head) into p.
void read_query(const TensorArg& q, AttentionParams& p) {
  if (q.rank() != 3 && q.rank() != 4)
    fail(code::kShape, "q must have rank 3 [batch, headsQ, headDim] or 4 [batch, seqQ, headsQ, headDim], got shape " +
                           shape_string(q.shape));
  expect_unit_last_stride(q);
  const bool one = q.rank() == 3;
  p.dtype = q.dtype;
  p.B = q.shape[0];
  p.Sq = one ? 1 : q.shape[1];
  p.Hq = q.shape[one ? 1 : 2];
  p.D = q.shape[one ? 2 : 3];
  p.q_stride[0] = q.strides[0];
  p.q_stride[1] = one ? 0 : q.strides[1];
  p.q_stride[2] = q.strides[one ? 1 : 2];
  p.q = q.data;
  expect_head_dim(p.D, "q.shape[" + str(q.rank() - 1) + "] (headDim)");
  if (p.Hq < 1) fail(code::kShape, "q.shape[" + str(q.rank() - 2) + "] (headsQ) must be ≥ 1, got " + str(p.Hq));
}

void check_cache_against_query(const CacheLayout& c, const AttentionParams& p, const std::string& cache_name) {
  if (c.dtype != p.dtype)
    fail(code::kDtype, cache_name + " dtype (" + dtype_name(c.dtype) + ") must match q.dtype (" + dtype_name(p.dtype) + ")");
  if (c.D != p.D) fail(code::kShape, cache_name + " headDim (" + str(c.D) + ") must match q's (" + str(p.D) + ")");
  if (c.Hkv < 1 || p.Hq % c.Hkv != 0)
    fail(code::kShape, cache_name + " headsKV (" + str(c.Hkv) + ") must be ≥ 1 and divide q's heads (" + str(p.Hq) + ")");
}

// 'auto' computes where the tensors live. Decode on the GPU takes DeviceTensors
// only: copying a KV cache in and out per step would cost more than the step.
Backend read_decode_backend(const Napi::Object& o, const TensorArg& q) {
  Napi::Value v = o.Get("backend");
  const std::string b = v.IsUndefined() ? "auto" : v.IsString() ? v.As<Napi::String>().Utf8Value() : "";
  if (b != "auto" && b != "cpu" && b != "cuda")
    fail(code::kArgument, "opts.backend must be 'auto', 'cpu' or 'cuda', got " + describe(v));
  if (b == "cpu" && q.on_device)
    fail(code::kBackend, "opts.backend 'cpu' cannot compute on DeviceTensors (q is " + side_string(q) + ")");
  if (b == "cuda" && !q.on_device) {
    const CudaInfo& cuda = query_cuda();
    if (!cuda.available) fail(code::kBackend, "opts.backend 'cuda' is not available: " + cuda.reason);
    fail(code::kBackend, "opts.backend 'cuda': decode on the GPU takes DeviceTensors (toDevice the cache once; "
                         "copying it per step would cost more than the step)");
  }
  return q.on_device ? Backend::Cuda : Backend::Cpu;
}

// opts.kNew / opts.vNew [B, Sq, Hkv, D|Dv] (both or neither): the fused append.
void read_new_tokens(const Napi::Object& o, const CacheLayout& c, const TensorArg& q, DecodeCall& call,
                     std::vector<TensorArg>& reads) {
  const bool has_k = !o.Get("kNew").IsUndefined(), has_v = !o.Get("vNew").IsUndefined();
  if (has_k != has_v) fail(code::kArgument, "opts.kNew and opts.vNew go together (got only " + std::string(has_k ? "kNew" : "vNew") + ")");
  if (!has_k) return;
  DecodeParams& dp = call.params;
  const AttentionParams& p = dp.attn;
  const std::vector<int64_t> k_shape = {p.B, p.Sq, c.Hkv, c.D}, v_shape = {p.B, p.Sq, c.Hkv, c.Dv};
  const TensorArg k = read_any_tensor(o.Get("kNew"), "opts.kNew"), v = read_any_tensor(o.Get("vNew"), "opts.vNew");
  for (const TensorArg* t : {&k, &v}) {
    expect_same_side(*t, q);
    if (t->dtype != p.dtype)
      fail(code::kDtype, t->name + ".dtype must match q.dtype (" + dtype_name(p.dtype) + "), got " + dtype_name(t->dtype));
    const std::vector<int64_t>& want = t == &k ? k_shape : v_shape;
    if (t->shape != want)
      fail(code::kShape, t->name + ".shape must be " + shape_string(want) + " [batch, seqQ, headsKV, headDim], got " +
                             shape_string(t->shape));
    expect_unit_last_stride(*t);
  }
  dp.k_new = k.data;
  dp.v_new = v.data;
  for (int i = 0; i < 3; ++i) { dp.k_new_stride[i] = k.strides[size_t(i)]; dp.v_new_stride[i] = v.strides[size_t(i)]; }
  call.inputs.push_back(k.keep());
  call.inputs.push_back(v.keep());
  reads.push_back(k);
  reads.push_back(v);
  call.writes = true;
}

// Everything after the cache is known: options, new tokens, outputs. lengths
// validation (which needs Sq and whether the call appends) runs in between.
template <typename CheckLengths>
void read_rest(Napi::Env env, const Napi::Object& o, const TensorArg& q, const CacheLayout& c, DecodeCall& call,
               std::vector<TensorArg>& reads, CheckLengths&& check_lengths) {
  DecodeParams& dp = call.params;
  AttentionParams& p = dp.attn;
  p.Hkv = c.Hkv;
  p.Dv = c.Dv;
  read_score_options(o, p, call.inputs);
  dp.strategy = read_strategy(o);
  read_new_tokens(o, c, q, call, reads);
  call.backend = read_decode_backend(o, q);
  call.abort_flag = read_array_option<int32_t>(o, "abortFlag", napi_int32_array, 1, "one flag", call.inputs);
  check_lengths();
  p.Sk = call.cache_seqlens.empty() ? 0 : *std::max_element(call.cache_seqlens.begin(), call.cache_seqlens.end());
  dp.cache_seqlens = call.cache_seqlens.data();

  const bool one = q.rank() == 3;
  call.out_shape = one ? std::vector<int64_t>{p.B, p.Hq, p.Dv} : std::vector<int64_t>{p.B, p.Sq, p.Hq, p.Dv};
  call.lse_shape = one ? std::vector<int64_t>{p.B, p.Hq} : std::vector<int64_t>{p.B, p.Hq, p.Sq};
  const char* dims = one ? "[batch, headsQ, headDimV]" : "[batch, seqQ, headsQ, headDimV]";
  const int64_t lse_numel = p.B * p.Hq * p.Sq;
  if (q.on_device) {
    DeviceCallPlan& plan = call.device;
    plan.active = true;
    plan.device = q.device;
    for (const TensorArg& t : reads) plan.keep.push_back(t.storage);
    Napi::Value outv = o.Get("out");
    if (!outv.IsUndefined()) {
      const TensorArg out = read_any_tensor(outv, "opts.out");
      expect_same_side(out, q);
      check_out(out, p.dtype, call.out_shape, dims, reads);
      plan.keep.push_back(out.storage);
      plan.out_handle = out.object.As<Napi::Object>().Get("handle");
      p.out = out.data;
    }
    allocate_device_outputs(env, plan, p, outv.IsUndefined() ? lse_numel * p.Dv * dtype_size(p.dtype) : -1,
                            read_bool(o, "returnLse", false) ? lse_numel * int64_t(sizeof(float)) : -1);
    call.inputs.push_back(plan.out_handle);
  } else {
    call.outputs = read_outputs(env, o, p.dtype, call.out_shape, dims, lse_numel, reads);
    p.out = call.outputs.out_data;
    p.lse = call.outputs.lse_data;
    call.inputs.push_back(call.outputs.out);
  }
  p.o_stride[0] = p.Sq * p.Hq * p.Dv;
  p.o_stride[1] = p.Hq * p.Dv;
  p.o_stride[2] = p.Dv;
  p.lse_stride[0] = p.Hq * p.Sq;
  p.lse_stride[1] = p.Sq;
}

const void* batch_entry(const TensorArg& t, int64_t b) {
  return static_cast<const char*>(t.data) + b * t.strides[0] * dtype_size(t.dtype);
}

Napi::Object options_object(Napi::Env env, const Napi::Value& ov) {
  if (!ov.IsUndefined() && !ov.IsNull() && !ov.IsObject()) fail(code::kArgument, "opts must be an object, got " + describe(ov));
  return ov.IsObject() ? ov.As<Napi::Object>() : Napi::Object::New(env);
}

}  // namespace

DecodeStrategy read_strategy(const Napi::Object& o) {
  Napi::Value v = o.Get("strategy");
  if (v.IsUndefined()) return DecodeStrategy::Auto;
  const std::string s = v.IsString() ? v.As<Napi::String>().Utf8Value() : "";
  if (s == "auto") return DecodeStrategy::Auto;
  if (s == "lean") return DecodeStrategy::Lean;
  if (s == "split") return DecodeStrategy::Split;
  if (s == "single") return DecodeStrategy::Single;
  fail(code::kArgument, "opts.strategy must be 'auto', 'lean', 'split' or 'single', got " + describe(v));
}

std::vector<int32_t> read_seq_ids(const Napi::Value& v, const std::string& name, int64_t batch) {
  std::vector<int32_t> ids;
  if (v.IsUndefined()) return ids;
  auto add = [&](double d, uint32_t i) {
    if (!(d >= 0 && d < double(batch)) || std::floor(d) != d)
      fail(code::kArgument, name + "[" + str(i) + "] must be a sequence id in [0, " + str(batch) + "), got " +
                                std::to_string(d));
    ids.push_back(int32_t(d));
  };
  if (v.IsTypedArray() && v.As<Napi::TypedArray>().TypedArrayType() == napi_int32_array) {
    Napi::Int32Array a = v.As<Napi::Int32Array>();
    for (uint32_t i = 0; i < a.ElementLength(); ++i) add(a[i], i);
  } else if (v.IsArray()) {
    Napi::Array a = v.As<Napi::Array>();
    for (uint32_t i = 0; i < a.Length(); ++i) {
      Napi::Value e = a.Get(i);
      add(e.IsNumber() ? e.As<Napi::Number>().DoubleValue() : NAN, i);
    }
  } else {
    fail(code::kDtype, name + " must be an Int32Array or an array of integers, got " + describe(v));
  }
  std::vector<int32_t> sorted = ids;
  std::sort(sorted.begin(), sorted.end());
  for (size_t i = 1; i < sorted.size(); ++i)
    if (sorted[i] == sorted[i - 1]) fail(code::kArgument, name + " must not repeat a sequence id, got " + str(sorted[i]) + " twice");
  return ids;
}

DecodeCall parse_decode_attention(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  DecodeCall call;
  DecodeParams& dp = call.params;
  AttentionParams& p = dp.attn;
  const TensorArg q = read_any_tensor(info[0], "q");
  read_query(q, p);
  const TensorArg k = read_any_tensor(info[1], "kCache");
  const TensorArg v = read_any_tensor(info[2], "vCache");
  expect_same_side(k, q);
  expect_same_side(v, q);
  expect_rank(k, 4, "[batch, capacity, headsKV, headDim] or paged [numPages, pageSize, headsKV, headDim]");
  expect_rank(v, 4, "[batch, capacity, headsKV, headDimV] or paged [numPages, pageSize, headsKV, headDimV]");
  expect_unit_last_stride(k);
  expect_unit_last_stride(v);
  Napi::Object o = options_object(env, info[4]);
  std::set<std::string> known = shared_options();
  known.insert("blockTable");
  reject_unknown_options(o, known, "decodeAttention", option_hint);

  if (v.dtype != k.dtype) fail(code::kDtype, "vCache.dtype must match kCache.dtype (" + std::string(dtype_name(k.dtype)) + ")");
  for (int d = 0; d < 3; ++d)
    if (v.shape[size_t(d)] != k.shape[size_t(d)])
      fail(code::kShape, "vCache.shape[" + str(d) + "] must match kCache's (" + str(k.shape[size_t(d)]) + "), got " +
                             str(v.shape[size_t(d)]));
  expect_head_dim(v.shape[3], "vCache.shape[3] (headDimV)");
  const bool paged = !o.Get("blockTable").IsUndefined();
  CacheLayout c{k.dtype, k.shape[2], k.shape[3], v.shape[3], 0};
  check_cache_against_query(c, p, "kCache");
  KvCacheView& view = dp.cache;
  view.dtype = k.dtype;
  view.k = k.data;
  view.v = v.data;
  for (int i = 0; i < 3; ++i) { view.k_stride[i] = k.strides[size_t(i)]; view.v_stride[i] = v.strides[size_t(i)]; }
  const int64_t num_pages = k.shape[0];
  if (paged) {
    Napi::TypedArray bt = expect_typed_array(o.Get("blockTable"), napi_int32_array, "opts.blockTable");
    const int64_t n = int64_t(bt.ElementLength());
    if (p.B > 0 ? n == 0 || n % p.B != 0 : n != 0)
      fail(code::kShape, "opts.blockTable must hold [batch, maxPages] entries (a positive multiple of batch " + str(p.B) +
                             "), got " + str(n));
    const int32_t* src = reinterpret_cast<const int32_t*>(static_cast<char*>(bt.ArrayBuffer().Data()) + bt.ByteOffset());
    call.block_table.assign(src, src + n);
    view.page_size = k.shape[1];
    view.max_pages = p.B > 0 ? n / p.B : 0;
    view.block_table = call.block_table.data();
    if (!checked_mul(view.max_pages, view.page_size, &c.capacity))
      fail(code::kShape, "opts.blockTable: maxPages × pageSize overflows");
  } else {
    if (k.shape[0] != p.B)
      fail(code::kShape, "kCache.shape[0] (batch) must be q's batch (" + str(p.B) + "), got " + str(k.shape[0]) +
                             " (a paged cache needs opts.blockTable)");
    c.capacity = k.shape[1];
  }

  std::vector<TensorArg> reads = {q, k, v};
  call.inputs = {q.keep(), k.keep(), v.keep()};
  read_rest(env, o, q, c, call, reads, [&] {
    Napi::TypedArray a = expect_typed_array(info[3], napi_int32_array, "cacheSeqlens");
    if (int64_t(a.ElementLength()) != p.B)
      fail(code::kShape, "cacheSeqlens must have one length per batch entry (" + str(p.B) + " elements), got " +
                             str(a.ElementLength()));
    const int32_t* lens = reinterpret_cast<const int32_t*>(static_cast<char*>(a.ArrayBuffer().Data()) + a.ByteOffset());
    call.cache_seqlens.assign(lens, lens + p.B);
    for (int64_t b = 0; b < p.B; ++b) {
      const int64_t len = call.cache_seqlens[size_t(b)];
      if (len < 0 || len > c.capacity)
        fail(code::kArgument, "cacheSeqlens[" + str(b) + "] must be in [0, " + str(c.capacity) + "] (" +
                                  (paged ? "maxPages × pageSize" : "the cache's capacity") + "), got " + str(len));
      if (call.writes && len < p.Sq)
        fail(code::kArgument, "cacheSeqlens[" + str(b) + "] counts the " + str(p.Sq) + " new tokens of opts.kNew, so it must be ≥ " +
                                  str(p.Sq) + ", got " + str(len));
      for (int64_t i = 0; paged && i * view.page_size < len; ++i) {
        const int32_t page = call.block_table[size_t(b * view.max_pages + i)];
        if (page < 0 || page >= num_pages)
          fail(code::kArgument, "opts.blockTable[" + str(b) + ", " + str(i) + "] must be a page index in [0, " +
                                    str(num_pages) + ") (sequence " + str(b) + " has " + str(len) + " keys), got " + str(page));
      }
    }
  });
  return call;
}

DecodeCall parse_cache_decode(Napi::Env env, const Napi::Value& qv, const Napi::Value& ov,
                              std::shared_ptr<KvCacheStore> store) {
  DecodeCall call;
  DecodeParams& dp = call.params;
  AttentionParams& p = dp.attn;
  const TensorArg q = read_tensor(qv, "q");
  read_query(q, p);
  Napi::Object o = options_object(env, ov);
  std::set<std::string> known = shared_options();
  known.insert("seqIds");
  reject_unknown_options(o, known, "decode", option_hint);
  const KvCacheStore::Config& cfg = store->config();
  const CacheLayout c{cfg.dtype, cfg.heads, cfg.D, cfg.Dv, cfg.capacity};
  check_cache_against_query(c, p, "the cache's");
  call.seq_ids = read_seq_ids(o.Get("seqIds"), "opts.seqIds", cfg.batch);
  const int64_t B = o.Get("seqIds").IsUndefined() ? cfg.batch : int64_t(call.seq_ids.size());
  if (p.B != B)
    fail(code::kShape, "q.shape[0] (batch) must be " + str(B) + (o.Get("seqIds").IsUndefined() ? " (the cache's batch)" : " (opts.seqIds.length)") +
                           ", got " + str(p.B));
  dp.seq_ids = o.Get("seqIds").IsUndefined() ? nullptr : call.seq_ids.data();
  dp.cache = store->view();

  std::vector<TensorArg> reads = {q};
  call.inputs = {q.array};
  read_rest(env, o, q, c, call, reads, [&] {
    if (store->writers > 0 || (call.writes && store->in_flight > 0))
      fail(code::kArgument, "the cache is busy: a decode that " + std::string(store->writers > 0 ? "appends to it" : "reads it") +
                                " is in flight (await it first)");
    int64_t pages = 0;
    for (int64_t b = 0; b < p.B; ++b) {
      const int64_t s = dp.sequence(b), len = store->length(s) + (call.writes ? p.Sq : 0);
      if (len > cfg.capacity)
        fail(code::kArgument, "sequence " + str(s) + " would hold " + str(len) + " tokens, above the cache's capacity " +
                                  str(cfg.capacity));
      pages += store->pages_needed(s, len);
      call.cache_seqlens.push_back(int32_t(len));
    }
    if (pages > store->free_pages())
      fail(code::kArgument, "no free page: the new tokens need " + str(pages) + " pages, " + str(store->free_pages()) +
                                " are free (reset finished sequences)");
  });
  if (call.writes)  // the last step: nothing below can fail
    for (int64_t b = 0; b < p.B; ++b) store->grow(dp.sequence(b), call.cache_seqlens[size_t(b)]);
  call.store = std::move(store);
  return call;
}

void cache_append(KvCacheStore& store, const Napi::Value& kv, const Napi::Value& vv, const Napi::Value& idv) {
  const KvCacheStore::Config& cfg = store.config();
  const TensorArg k = read_tensor(kv, "k"), v = read_tensor(vv, "v");
  expect_rank(k, 4, "[batch, tokens, headsKV, headDim]");
  expect_rank(v, 4, "[batch, tokens, headsKV, headDimV]");
  const std::vector<int32_t> ids = read_seq_ids(idv, "seqIds", cfg.batch);
  const int64_t B = idv.IsUndefined() ? cfg.batch : int64_t(ids.size()), n = k.shape[1];
  const std::vector<int64_t> k_shape = {B, n, cfg.heads, cfg.D}, v_shape = {B, n, cfg.heads, cfg.Dv};
  for (const TensorArg* t : {&k, &v}) {
    if (t->dtype != cfg.dtype)
      fail(code::kDtype, t->name + ".dtype must be the cache's (" + dtype_name(cfg.dtype) + "), got " + dtype_name(t->dtype));
    const std::vector<int64_t>& want = t == &k ? k_shape : v_shape;
    if (t->shape != want)
      fail(code::kShape, t->name + ".shape must be " + shape_string(want) + " [batch" +
                             (idv.IsUndefined() ? "" : " = seqIds.length") + ", tokens, headsKV, headDim], got " +
                             shape_string(t->shape));
    expect_unit_last_stride(*t);
  }
  if (store.in_flight > 0) fail(code::kArgument, "the cache is busy: a decode on it is in flight (await it before append)");
  int64_t pages = 0;
  for (int64_t b = 0; b < B; ++b) {
    const int64_t s = idv.IsUndefined() ? b : ids[size_t(b)], len = store.length(s) + n;
    if (len > cfg.capacity)
      fail(code::kArgument, "sequence " + str(s) + " would hold " + str(len) + " tokens, above the cache's capacity " +
                                str(cfg.capacity));
    pages += store.pages_needed(s, len);
  }
  if (pages > store.free_pages())
    fail(code::kArgument, "no free page: appending needs " + str(pages) + " pages, " + str(store.free_pages()) +
                              " are free (reset finished sequences)");
  for (int64_t b = 0; b < B; ++b) {
    const int64_t s = idv.IsUndefined() ? b : ids[size_t(b)], start = store.length(s);
    store.grow(s, start + n);
    const RowSource ks{batch_entry(k, b), k.strides[1], k.strides[2]};
    const RowSource vs{batch_entry(v, b), v.strides[1], v.strides[2]};
    write_cache_rows(store.view(), s, start, n, cfg.heads, cfg.D, cfg.Dv, ks, vs);
  }
}

}  // namespace fmha
