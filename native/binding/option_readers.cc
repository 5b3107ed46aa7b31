#include "binding/option_readers.h"

#include <cmath>

#include "core/checked_math.h"

namespace fmha {

bool read_bool(const Napi::Object& o, const char* key, bool dflt) {
  Napi::Value v = o.Get(key);
  if (v.IsUndefined()) return dflt;
  if (!v.IsBoolean()) fail(code::kArgument, std::string("opts.") + key + " must be a boolean, got " + describe(v));
  return v.As<Napi::Boolean>().Value();
}

double read_number(const Napi::Object& o, const char* key, double dflt) {
  Napi::Value v = o.Get(key);
  if (v.IsUndefined()) return dflt;
  const double d = v.IsNumber() ? v.As<Napi::Number>().DoubleValue() : NAN;
  if (!std::isfinite(d)) fail(code::kArgument, std::string("opts.") + key + " must be a finite number, got " + describe(v));
  return d;
}

void reject_unknown_options(const Napi::Object& o, const std::set<std::string>& known, const std::string& fn,
                            std::string (*hint)(const std::string& key)) {
  Napi::Array keys = o.GetPropertyNames();
  for (uint32_t i = 0; i < keys.Length(); ++i) {
    const std::string key = keys.Get(i).ToString().Utf8Value();
    if (!known.count(key) && !o.Get(key).IsUndefined())
      fail(code::kArgument, "opts." + key + " is not an option of " + fn + (hint ? hint(key) : std::string()));
  }
}

void read_score_options(const Napi::Object& o, AttentionParams& p, std::vector<Napi::Value>& inputs) {
  p.causal = read_bool(o, "causal", false);
  p.scale = float(read_number(o, "scale", 1.0 / std::sqrt(double(p.D))));
  p.softcap = float(read_number(o, "softcap", 0.0));
  if (p.softcap < 0) fail(code::kArgument, "opts.softcap must be ≥ 0 (0 = off), got " + std::to_string(p.softcap));

  Napi::Value wv = o.Get("window");
  if (!wv.IsUndefined()) {
    const bool pair = wv.IsArray() && wv.As<Napi::Array>().Length() == 2;
    if (!pair) fail(code::kArgument, "opts.window must be [left, right], got " + describe(wv));
    for (uint32_t s = 0; s < 2; ++s) {
      Napi::Value e = wv.As<Napi::Array>().Get(s);
      const double d = e.IsNumber() ? e.As<Napi::Number>().DoubleValue() : NAN;
      if (!(d >= -1) || std::floor(d) != d || d > 9.0e15)
        fail(code::kArgument, "opts.window[" + std::to_string(s) + "] must be an integer ≥ -1 (-1 = unbounded), got " +
                                  describe(e));
      (s == 0 ? p.window_left : p.window_right) = int64_t(d);
    }
  }

  p.alibi_slopes = read_array_option<float>(o, "alibiSlopes", napi_float32_array, p.Hq, "one slope per query head", inputs);
  for (int64_t h = 0; p.alibi_slopes && h < p.Hq; ++h)
    if (!std::isfinite(p.alibi_slopes[h]))
      fail(code::kArgument, "opts.alibiSlopes[" + std::to_string(h) + "] must be finite, got " +
                                std::to_string(p.alibi_slopes[h]));
}

void check_out(const TensorArg& out, DType dtype, const std::vector<int64_t>& shape, const char* dims,
               const std::vector<TensorArg>& reads, const std::string& dtype_of) {
  if (out.dtype != dtype)
    fail(code::kDtype, "opts.out.dtype must be " + dtype_of + "'s dtype (" + dtype_name(dtype) + "), got " +
                           dtype_name(out.dtype));
  if (out.shape != shape)
    fail(code::kShape, "opts.out.shape must be " + shape_string(shape) + " " + dims + ", got " + shape_string(out.shape));
  if (!out.contiguous) fail(code::kArgument, "opts.out must be contiguous (no strided view)");
  for (const TensorArg& in : reads)
    if (out.begin_byte() < in.end_byte() && in.begin_byte() < out.end_byte())
      fail(code::kArgument, "opts.out must not overlap " + in.name + " (they share memory)");
}

Outputs read_outputs(Napi::Env env, const Napi::Object& o, DType dtype, const std::vector<int64_t>& shape,
                     const char* dims, int64_t lse_numel, const std::vector<TensorArg>& reads) {
  Outputs r;
  int64_t numel = 1;
  for (int64_t d : shape)
    if (!checked_mul(numel, d, &numel)) fail(code::kShape, "the output has more than 2^63 elements");
  Napi::Value outv = o.Get("out");
  if (!outv.IsUndefined()) {
    TensorArg out = read_tensor(outv, "opts.out");
    check_out(out, dtype, shape, dims, reads);
    r.out = out.array;
    r.out_data = out.data;
  }
  const bool want_lse = read_bool(o, "returnLse", false);
  try {
    if (!r.out_data) {
      r.out = dtype == DType::F32 ? Napi::TypedArray(Napi::Float32Array::New(env, size_t(numel)))
                                  : Napi::TypedArray(Napi::Uint16Array::New(env, size_t(numel)));
      r.out_data = static_cast<char*>(r.out.ArrayBuffer().Data()) + r.out.ByteOffset();
    }
    if (want_lse) {
      r.lse = Napi::Float32Array::New(env, size_t(lse_numel));
      r.lse_data = r.lse.Data();
    }
  } catch (const Napi::Error& e) {
    fail(code::kOom, "allocating the output of " + std::to_string(numel) + " elements failed: " + e.Message());
  }
  return r;
}

Napi::Object result_object(Napi::Env env, Napi::Value out, Napi::Value lse, const std::vector<int64_t>& out_shape,
                           const std::vector<int64_t>& lse_shape) {
  Napi::Object r = Napi::Object::New(env);
  r.Set("out", out);
  r.Set("outShape", shape_array(env, out_shape));
  if (!lse.IsEmpty() && !lse.IsUndefined()) {
    r.Set("lse", lse);
    r.Set("lseShape", shape_array(env, lse_shape));
  }
  return r;
}

}  // namespace fmha
