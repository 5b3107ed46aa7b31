#include "binding/seqlens_args.h"

#include <algorithm>
#include <cmath>

#include "binding/errors.h"
#include "binding/tensor_args.h"

namespace fmha {
namespace {

constexpr int64_t kMaxLength = 0x7fffffff;  // a length lives in an Int32Array

std::string str(int64_t v) { return std::to_string(v); }

}  // namespace

CuSeqlensArg read_cu_seqlens(const Napi::Value& v, const std::string& name, int64_t tokens,
                             const std::string& tokens_of) {
  Napi::TypedArray a = expect_typed_array(v, napi_int32_array, name);
  const size_t n = a.ElementLength();
  if (n == 0) fail(code::kShape, name + " must have batch + 1 ≥ 1 entries, got an empty Int32Array");
  const int32_t* src = reinterpret_cast<const int32_t*>(static_cast<char*>(a.ArrayBuffer().Data()) + a.ByteOffset());
  CuSeqlensArg c;
  c.values.assign(src, src + n);
  c.batch = int64_t(n) - 1;
  if (c.values[0] != 0) fail(code::kArgument, name + "[0] must be 0 (prefix sums start at 0), got " + str(c.values[0]));
  for (size_t b = 1; b < n; ++b) {
    const int64_t len = int64_t(c.values[b]) - c.values[b - 1];
    if (len < 0)
      fail(code::kArgument, name + "[" + str(int64_t(b)) + "] = " + str(c.values[b]) + " is below " + name + "[" +
                                str(int64_t(b) - 1) + "] = " + str(c.values[b - 1]) + " (prefix sums never decrease)");
    c.max_len = std::max(c.max_len, len);
  }
  if (c.values[n - 1] > tokens)
    fail(code::kArgument, name + "[" + str(c.batch) + "] = " + str(c.values[n - 1]) + " is past the end of " +
                              tokens_of + " (" + str(tokens) + " tokens)");
  return c;
}

int64_t read_max_seqlen(const Napi::Value& v, const std::string& name, int64_t longest) {
  if (v.IsUndefined()) return longest;
  const double d = v.IsNumber() ? v.As<Napi::Number>().DoubleValue() : NAN;
  if (!(d >= 0 && d <= double(kMaxLength)) || std::floor(d) != d)
    fail(code::kArgument, name + " must be an integer in [0, 2^31 − 1], got " + describe(v));
  if (int64_t(d) < longest)
    fail(code::kArgument, name + " must be ≥ the longest sequence (" + str(longest) + "), got " + str(int64_t(d)));
  return int64_t(d);
}

std::vector<int64_t> read_lengths(const Napi::Value& v, const std::string& name, int64_t batch, int64_t max_len,
                                  const std::string& max_what) {
  const bool bigints = v.IsTypedArray() && (v.As<Napi::TypedArray>().TypedArrayType() == napi_bigint64_array ||
                                            v.As<Napi::TypedArray>().TypedArrayType() == napi_biguint64_array);
  const Napi::Value count = v.IsObject() && !bigints ? v.As<Napi::Object>().Get("length") : Napi::Value();
  if (count.IsEmpty() || !count.IsNumber())
    fail(code::kDtype, name + " must be an array-like of numbers (an Array or a typed array), got " + describe(v));
  const double n = count.As<Napi::Number>().DoubleValue();
  if (n != double(batch))
    fail(code::kShape, name + " must have one length per sequence (" + str(batch) + " entries), got " + describe(count));
  Napi::Object o = v.As<Napi::Object>();
  std::vector<int64_t> lengths(size_t(batch), 0);
  for (int64_t b = 0; b < batch; ++b) {
    Napi::Value e = o.Get(uint32_t(b));
    const double d = e.IsNumber() ? e.As<Napi::Number>().DoubleValue() : NAN;
    if (!(d >= 0 && d <= double(max_len)) || std::floor(d) != d)
      fail(code::kArgument, name + "[" + str(b) + "] must be an integer in [0, " + str(max_len) + "] (" + max_what +
                                "), got " + describe(e));
    lengths[size_t(b)] = int64_t(d);
  }
  return lengths;
}

}  // namespace fmha
