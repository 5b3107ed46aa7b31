// [sync] packSequences, unpackSequences: padding removal and rebuild (DESIGN §3:
// they return at once). Host tensors: on the calling thread, which joins the
// CPU pool for big copies. DeviceTensors: enqueued on the device's stream (the
// kernels of cuda/attention_cuda.h). The result goes to a caller's opts.out
// (fmha's extension of DESIGN §3, so a server reuses warm buffers) or to a new
// array / DeviceTensor; cuSeqlens stays a host Int32Array, as varlenAttention takes it.
#include <napi.h>

#include <algorithm>
#include <optional>

#include "binding/device_tensor.h"
#include "binding/errors.h"
#include "binding/exports.h"
#include "binding/option_readers.h"
#include "binding/seqlens_args.h"
#include "binding/tensor_args.h"
#include "core/checked_math.h"
#include "cpu/sequence_packing.h"
#include "cpu/thread_pool.h"
#include "dispatch.h"

namespace fmha {
namespace {

std::string str(int64_t v) { return std::to_string(v); }

// The elements of a result of `shape`, checked so that its bytes (esize each) fit in an int64_t.
int64_t numel_of(const std::vector<int64_t>& shape, int64_t esize, const char* what) {
  int64_t numel = 1, bytes = 0;
  for (int64_t d : shape)
    if (!checked_mul(numel, d, &numel))
      fail(code::kShape, std::string(what) + " " + shape_string(shape) + " has more than 2^63 elements");
  if (!checked_mul(numel, esize, &bytes))
    fail(code::kShape, std::string(what) + " " + shape_string(shape) + " has more than 2^63 bytes");
  return numel;
}

// opts of packSequences / unpackSequences: undefined, or an object whose only
// option is `out`, checked as attention's opts.out (DESIGN §3: the result's
// shape, src's dtype, src's side and device, contiguous, not overlapping src).
std::optional<TensorArg> read_out_option(const Napi::Value& opts, const char* fn, const TensorArg& src,
                                         const std::vector<int64_t>& shape, const char* dims) {
  if (opts.IsUndefined()) return std::nullopt;
  if (!opts.IsObject()) fail(code::kArgument, "opts must be an object, got " + describe(opts));
  const Napi::Object o = opts.As<Napi::Object>();
  reject_unknown_options(o, {"out"}, fn);
  const Napi::Value v = o.Get("out");
  if (v.IsUndefined()) return std::nullopt;
  TensorArg out = read_any_tensor(v, "opts.out");
  expect_same_side(out, src);
  check_out(out, src.dtype, shape, dims, {src}, src.name);
  return out;
}

// Where a host copy writes: the caller's out, or a new zero-filled array of
// `shape` (V8 zero-fills a new ArrayBuffer).
struct HostDest {
  Napi::TypedArray array;
  char* bytes = nullptr;
};
HostDest host_dest(Napi::Env env, const std::optional<TensorArg>& out, DType t, const std::vector<int64_t>& shape,
                   const char* what) {
  HostDest d;
  if (out) {
    d.array = out->array;
  } else {
    const int64_t numel = numel_of(shape, dtype_size(t), what);
    try {
      d.array = t == DType::F32 ? Napi::TypedArray(Napi::Float32Array::New(env, size_t(numel)))
                                : Napi::TypedArray(Napi::Uint16Array::New(env, size_t(numel)));
    } catch (const Napi::Error& e) {
      fail(code::kOom, std::string("allocating ") + what + " of " + str(numel) + " elements failed: " + e.Message());
    }
  }
  d.bytes = static_cast<char*>(d.array.ArrayBuffer().Data()) + d.array.ByteOffset();
  return d;
}

// The device side of pack/unpack: `src` (a contiguous DeviceTensor) → `out` or
// a new DeviceTensor of `dst_shape`, cu (host, validated) uploaded for the
// kernel. Returns the destination's handle; the work is only enqueued (unpack
// writes every row, pads as zeros).
Napi::Value copy_sequences_on_device(Napi::Env env, const TensorArg& src, const std::optional<TensorArg>& out,
                                     const std::vector<int64_t>& dst_shape, const std::vector<int32_t>& cu, int64_t S,
                                     bool unpack) {
  if (!src.contiguous)
    fail(code::kArgument, src.name + " must be contiguous on the device (no strided view): the device kernels copy "
                                     "whole tokens");
  const int device = src.device;
  const int64_t numel = numel_of(dst_shape, dtype_size(src.dtype), "the result");
  const size_t bytes = size_t(numel * dtype_size(src.dtype));
  DeviceBufferPtr block;
  Status st = out ? Status{} : DeviceBuffer::allocate(device, bytes, &block);
  void* dst = out ? out->data : st.ok() ? block->data() : nullptr;
  if (st.ok() && numel > 0 && src.numel > 0) {
    const int64_t B = int64_t(cu.size()) - 1, HD = dst_shape[dst_shape.size() - 2] * dst_shape.back();
    DeviceArena arena(device);  // released once enqueued: stream order keeps the copy safe
    void* d_cu = arena.alloc(cu.size() * sizeof(int32_t));
    st = arena.status();
    if (st.ok()) st = device_upload_small(device, {{d_cu, cu.data(), cu.size() * sizeof(int32_t)}});
    if (st.ok()) st = run_sequence_copy_cuda(device, unpack, src.dtype, src.data, dst,
                                             static_cast<const int32_t*>(d_cu), B, S, HD);
  } else if (st.ok() && numel > 0) {
    st = device_memset(device, dst, 0, bytes);  // nothing to copy: all padding
  }
  if (!st.ok()) throw status_error(env, st);
  return out ? out->object.As<Napi::Object>().Get("handle") : make_device_handle(env, block, 0, true);
}

// packSequences(padded [B, S, H, D], lengths, opts?) → { packed, packedShape [T, H, D], cuSeqlens, maxSeqlen, device? }
Napi::Value pack_sequences(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  return guard(env, [&]() -> Napi::Value {
    const TensorArg padded = read_any_tensor(info[0], "padded");
    expect_rank(padded, 4, "[batch, seq, heads, headDim]");
    const int64_t B = padded.shape[0], S = padded.shape[1], H = padded.shape[2], D = padded.shape[3];
    const std::vector<int64_t> lengths = read_lengths(info[1], "lengths", B, S, "padded.shape[1], seq");

    std::vector<int32_t> cu(size_t(B + 1), 0);
    int64_t total = 0, longest = 0;
    for (int64_t b = 0; b < B; ++b) {
      total += lengths[size_t(b)];  // ≤ B·S < 2^62: no overflow before the check below
      if (total > 0x7fffffff)
        fail(code::kShape, "lengths sum to more than 2^31 − 1 tokens, which cuSeqlens (an Int32Array) cannot hold");
      cu[size_t(b) + 1] = int32_t(total);
      longest = std::max(longest, lengths[size_t(b)]);
    }
    const std::vector<int64_t> packed_shape = {total, H, D};
    const std::optional<TensorArg> out = read_out_option(info[2], "packSequences", padded, packed_shape,
                                                         "[tokens, heads, headDim]");
    Napi::Int32Array cu_array = Napi::Int32Array::New(env, cu.size());
    std::copy(cu.begin(), cu.end(), cu_array.Data());

    Napi::Object r = Napi::Object::New(env);
    if (padded.on_device) {
      r.Set("packed", copy_sequences_on_device(env, padded, out, packed_shape, cu, S, false));
      r.Set("device", padded.device);
    } else {
      const HostDest dst = host_dest(env, out, padded.dtype, packed_shape, "the packed tensor");
      const int64_t esize = dtype_size(padded.dtype);
      SequenceCopy c;
      c.B = B; c.H = H; c.row_bytes = D * esize;
      c.cu_seqlens = cu.data();
      c.padded = static_cast<char*>(padded.data);
      for (int i = 0; i < 3; ++i) c.padded_stride[i] = padded.strides[size_t(i)] * esize;
      c.packed = dst.bytes;
      c.packed_stride[0] = H * D * esize;
      c.packed_stride[1] = D * esize;
      copy_sequences(c, CopyDirection::Pack, get_num_threads());
      r.Set("packed", dst.array);
    }
    r.Set("packedShape", shape_array(env, packed_shape));
    r.Set("cuSeqlens", cu_array);
    r.Set("maxSeqlen", Napi::Number::New(env, double(longest)));
    return r;
  });
}

// unpackSequences(packed [T, H, D], cuSeqlens, seqLen?, opts?) → { padded, paddedShape [B, seqLen, H, D], device? }
Napi::Value unpack_sequences(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  return guard(env, [&]() -> Napi::Value {
    const TensorArg packed = read_any_tensor(info[0], "packed");
    expect_rank(packed, 3, "[tokens, heads, headDim]");
    const int64_t H = packed.shape[1], D = packed.shape[2];
    const CuSeqlensArg cu = read_cu_seqlens(info[1], "cuSeqlens", packed.shape[0], "packed");
    const int64_t S = read_max_seqlen(info[2], "seqLen", cu.max_len);
    const std::vector<int64_t> padded_shape = {cu.batch, S, H, D};
    const std::optional<TensorArg> out = read_out_option(info[3], "unpackSequences", packed, padded_shape,
                                                         "[batch, seqLen, heads, headDim]");
    Napi::Object r = Napi::Object::New(env);
    if (packed.on_device) {
      r.Set("padded", copy_sequences_on_device(env, packed, out, padded_shape, cu.values, S, true));
      r.Set("device", packed.device);
    } else {
      const HostDest dst = host_dest(env, out, packed.dtype, padded_shape, "the padded tensor");
      const int64_t esize = dtype_size(packed.dtype);
      SequenceCopy c;
      c.B = cu.batch; c.H = H; c.row_bytes = D * esize;
      c.cu_seqlens = cu.values.data();
      c.padded = dst.bytes;
      c.padded_stride[0] = S * H * D * esize;
      c.padded_stride[1] = H * D * esize;
      c.padded_stride[2] = D * esize;
      c.packed = static_cast<char*>(packed.data);
      c.packed_stride[0] = packed.strides[0] * esize;
      c.packed_stride[1] = packed.strides[1] * esize;
      c.zero_padding = out.has_value();  // a new array is zero-filled already
      c.S = S;
      copy_sequences(c, CopyDirection::Unpack, get_num_threads());
      r.Set("padded", dst.array);
    }
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
