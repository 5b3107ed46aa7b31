// [sync] packSequences, unpackSequences: padding removal and rebuild on host
// tensors (DESIGN §3: they return at once, so they run on the calling thread,
// which joins the CPU pool for big copies).
#include <napi.h>

#include <algorithm>

#include "binding/errors.h"
#include "binding/exports.h"
#include "binding/seqlens_args.h"
#include "binding/tensor_args.h"
#include "core/checked_math.h"
#include "cpu/sequence_packing.h"
#include "cpu/thread_pool.h"

namespace fmha {
namespace {

std::string str(int64_t v) { return std::to_string(v); }

// A new zero-filled array of `numel` elements of t's dtype (V8 zero-fills a new ArrayBuffer).
Napi::TypedArray new_data(Napi::Env env, DType t, const std::vector<int64_t>& shape, const char* what) {
  int64_t numel = 1;
  for (int64_t d : shape)
    if (!checked_mul(numel, d, &numel)) fail(code::kShape, std::string(what) + " " + shape_string(shape) + " has more than 2^63 elements");
  try {
    return t == DType::F32 ? Napi::TypedArray(Napi::Float32Array::New(env, size_t(numel)))
                           : Napi::TypedArray(Napi::Uint16Array::New(env, size_t(numel)));
  } catch (const Napi::Error& e) {
    fail(code::kOom, std::string("allocating ") + what + " of " + str(numel) + " elements failed: " + e.Message());
  }
}

char* bytes_of(const Napi::TypedArray& a) { return static_cast<char*>(a.ArrayBuffer().Data()) + a.ByteOffset(); }

// packSequences(padded [B, S, H, D], lengths) → { packed, packedShape [T, H, D], cuSeqlens, maxSeqlen }
Napi::Value pack_sequences(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  return guard(env, [&]() -> Napi::Value {
    const TensorArg padded = read_tensor(info[0], "padded");
    expect_rank(padded, 4, "[batch, seq, heads, headDim]");
    const int64_t B = padded.shape[0], S = padded.shape[1], H = padded.shape[2], D = padded.shape[3];
    const std::vector<int64_t> lengths = read_lengths(info[1], "lengths", B, S, "padded.shape[1], seq");

    Napi::Int32Array cu = Napi::Int32Array::New(env, size_t(B + 1));
    int64_t total = 0, longest = 0;
    for (int64_t b = 0; b < B; ++b) {
      total += lengths[size_t(b)];  // ≤ B·S < 2^62: no overflow before the check below
      if (total > 0x7fffffff)
        fail(code::kShape, "lengths sum to more than 2^31 − 1 tokens, which cuSeqlens (an Int32Array) cannot hold");
      cu[size_t(b) + 1] = int32_t(total);
      longest = std::max(longest, lengths[size_t(b)]);
    }
    const std::vector<int64_t> packed_shape = {total, H, D};
    Napi::TypedArray packed = new_data(env, padded.dtype, packed_shape, "the packed tensor");

    const int64_t esize = dtype_size(padded.dtype);
    SequenceCopy c;
    c.B = B; c.H = H; c.row_bytes = D * esize;
    c.cu_seqlens = cu.Data();
    c.padded = static_cast<char*>(padded.data);
    for (int i = 0; i < 3; ++i) c.padded_stride[i] = padded.strides[size_t(i)] * esize;
    c.packed = bytes_of(packed);
    c.packed_stride[0] = H * D * esize;
    c.packed_stride[1] = D * esize;
    copy_sequences(c, CopyDirection::Pack, get_num_threads());

    Napi::Object r = Napi::Object::New(env);
    r.Set("packed", packed);
    r.Set("packedShape", shape_array(env, packed_shape));
    r.Set("cuSeqlens", cu);
    r.Set("maxSeqlen", Napi::Number::New(env, double(longest)));
    return r;
  });
}

// unpackSequences(packed [T, H, D], cuSeqlens, seqLen?) → { padded, paddedShape [B, seqLen, H, D] }
Napi::Value unpack_sequences(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  return guard(env, [&]() -> Napi::Value {
    const TensorArg packed = read_tensor(info[0], "packed");
    expect_rank(packed, 3, "[tokens, heads, headDim]");
    const int64_t H = packed.shape[1], D = packed.shape[2];
    const CuSeqlensArg cu = read_cu_seqlens(info[1], "cuSeqlens", packed.shape[0], "packed");
    const int64_t S = read_max_seqlen(info[2], "seqLen", cu.max_len);
    const std::vector<int64_t> padded_shape = {cu.batch, S, H, D};
    Napi::TypedArray padded = new_data(env, packed.dtype, padded_shape, "the padded tensor");

    const int64_t esize = dtype_size(packed.dtype);
    SequenceCopy c;
    c.B = cu.batch; c.H = H; c.row_bytes = D * esize;
    c.cu_seqlens = cu.values.data();
    c.padded = bytes_of(padded);
    c.padded_stride[0] = S * H * D * esize;
    c.padded_stride[1] = H * D * esize;
    c.padded_stride[2] = D * esize;
    c.packed = static_cast<char*>(packed.data);
    c.packed_stride[0] = packed.strides[0] * esize;
    c.packed_stride[1] = packed.strides[1] * esize;
    copy_sequences(c, CopyDirection::Unpack, get_num_threads());

    Napi::Object r = Napi::Object::New(env);
    r.Set("padded", padded);
    r.Set("paddedShape", shape_array(env, padded_shape));
    return r;
  });
}

}  // namespace

void register_packing(Napi::Env env, Napi::Object exports) {
  exports.Set("packSequences", Napi::Function::New(env, pack_sequences, "packSequences"));
  exports.Set("unpackSequences", Napi::Function::New(env, unpack_sequences, "unpackSequences"));
}

}  // namespace fmha
