// [sync] packSequences, unpackSequences: padding removal and rebuild (DESIGN §3:
// they return at once). Host tensors: on the calling thread, which joins the
// CPU pool for big copies. DeviceTensors: enqueued on the device's stream (the
// kernels of cuda/attention_cuda.h), the result a new DeviceTensor; cuSeqlens
// stays a host Int32Array, as varlenAttention takes it.
#include <napi.h>

#include <algorithm>

#include "binding/device_tensor.h"
#include "binding/errors.h"
#include "binding/exports.h"
#include "binding/seqlens_args.h"
#include "binding/tensor_args.h"
#include "core/checked_math.h"
#include "cpu/sequence_packing.h"
#include "cpu/thread_pool.h"
#include "dispatch.h"

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

// The device side of pack/unpack: `src` (a contiguous DeviceTensor) → a new
// DeviceTensor of `dst_shape`, cu (host, validated) uploaded for the kernel.
// Returns the new tensor's handle; the work is only enqueued.
Napi::Value copy_sequences_on_device(Napi::Env env, const TensorArg& src, const std::vector<int64_t>& dst_shape,
                                     const std::vector<int32_t>& cu, int64_t S, bool unpack) {
  if (!src.contiguous)
    fail(code::kArgument, src.name + " must be contiguous on the device (no strided view): the device kernels copy "
                                     "whole tokens");
  const int device = src.device;
  int64_t numel = 1;
  for (int64_t d : dst_shape)
    if (!checked_mul(numel, d, &numel)) fail(code::kShape, "the result has more than 2^63 elements");
  DeviceBufferPtr dst;
  Status st = DeviceBuffer::allocate(device, size_t(numel * dtype_size(src.dtype)), &dst);
  if (st.ok() && numel > 0 && src.numel > 0) {
    const int64_t B = int64_t(cu.size()) - 1, HD = dst_shape[dst_shape.size() - 2] * dst_shape.back();
    DeviceArena arena(device);  // released once enqueued: stream order keeps the copy safe
    void* d_cu = arena.alloc(cu.size() * sizeof(int32_t));
    st = arena.status();
    if (st.ok()) st = device_upload_small(device, {{d_cu, cu.data(), cu.size() * sizeof(int32_t)}});
    if (st.ok()) st = run_sequence_copy_cuda(device, unpack, src.dtype, src.data, dst->data(),
                                             static_cast<const int32_t*>(d_cu), B, S, HD);
  } else if (st.ok() && numel > 0) {
    st = device_memset(device, dst->data(), 0, dst->bytes());  // nothing to copy: all padding
  }
  if (!st.ok()) throw status_error(env, st);
  return make_device_handle(env, dst, 0, true);
}

// packSequences(padded [B, S, H, D], lengths) → { packed, packedShape [T, H, D], cuSeqlens, maxSeqlen }
Napi::Value pack_sequences(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  return guard(env, [&]() -> Napi::Value {
    const TensorArg padded = read_any_tensor(info[0], "padded");
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
    if (padded.on_device) {
      Napi::Value handle = copy_sequences_on_device(
          env, padded, packed_shape, std::vector<int32_t>(cu.Data(), cu.Data() + B + 1), S, false);
      Napi::Object r = Napi::Object::New(env);
      r.Set("packed", handle);
      r.Set("packedShape", shape_array(env, packed_shape));
      r.Set("cuSeqlens", cu);
      r.Set("maxSeqlen", Napi::Number::New(env, double(longest)));
      r.Set("device", padded.device);
      return r;
    }
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
    const TensorArg packed = read_any_tensor(info[0], "packed");
    expect_rank(packed, 3, "[tokens, heads, headDim]");
    const int64_t H = packed.shape[1], D = packed.shape[2];
    const CuSeqlensArg cu = read_cu_seqlens(info[1], "cuSeqlens", packed.shape[0], "packed");
    const int64_t S = read_max_seqlen(info[2], "seqLen", cu.max_len);
    const std::vector<int64_t> padded_shape = {cu.batch, S, H, D};
    if (packed.on_device) {
      Napi::Object r = Napi::Object::New(env);
      r.Set("padded", copy_sequences_on_device(env, packed, padded_shape, cu.values, S, true));
      r.Set("paddedShape", shape_array(env, padded_shape));
      r.Set("device", packed.device);
      return r;
    }
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
