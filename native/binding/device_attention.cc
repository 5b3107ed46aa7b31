#include "binding/device_attention.h"

#include <cmath>
#include <type_traits>

#include "binding/device_tensor.h"
#include "binding/errors.h"

namespace fmha {
namespace {

const char* error_code_of(const Status& st) {
  switch (st.code) {
    case StatusCode::OutOfMemory: return code::kOom;
    case StatusCode::Cuda: return code::kCuda;
    default: return code::kBackend;
  }
}

// A block of at least 16 bytes from the arena (never null on success, so a
// kernel given an empty tensor still sees a valid device pointer).
Status arena_block(DeviceArena& arena, int64_t bytes, void** out) {
  *out = arena.alloc(size_t(bytes > 16 ? bytes : 16));
  return *out ? Status{} : arena.status();
}

// Copies `elems` elements of a host tensor to a new arena block and points `ptr` there.
Status copy_in(DeviceArena& arena, const void*& ptr, int64_t elems, int64_t es) {
  if (!ptr) return {};
  void* d;
  Status st = arena_block(arena, elems * es, &d);
  if (!st.ok()) return st;
  st = device_upload(arena.device(), d, ptr, size_t(elems * es));
  ptr = d;
  return st;
}

// Points `ptr` (count host elements) at a new arena block and records the upload.
template <typename T>
Status stage(DeviceArena& arena, std::vector<DeviceUpload>& uploads, const T*& ptr, int64_t count) {
  if (!ptr) return {};
  const int64_t bytes = count * int64_t(sizeof(T));
  void* d;
  Status s = arena_block(arena, bytes, &d);
  if (!s.ok()) return s;
  uploads.push_back({d, ptr, size_t(bytes)});
  ptr = static_cast<const T*>(d);
  return {};
}

}  // namespace

void allocate_device_outputs(Napi::Env env, DeviceCallPlan& plan, AttentionParams& p, int64_t out_bytes,
                             int64_t lse_bytes) {
  auto allocate = [&](int64_t bytes, const char* what) {
    DeviceBufferPtr b;
    const Status st = DeviceBuffer::allocate(plan.device, size_t(bytes), &b);
    if (!st.ok()) fail(error_code_of(st), std::string("allocating ") + what + " on the device: " + st.message);
    plan.keep.push_back(b);
    return b;
  };
  if (out_bytes >= 0) {
    DeviceBufferPtr b = allocate(out_bytes, "the output");
    p.out = b->data();
    plan.out_handle = make_device_handle(env, b, 0, true);
    plan.new_out = true;
  }
  if (lse_bytes >= 0) {
    DeviceBufferPtr b = allocate(lse_bytes, "lse");
    p.lse = static_cast<float*>(b->data());
    plan.lse_handle = make_device_handle(env, b, 0, true);
  }
}

Status run_device_attention(AttentionKind kind, const AttentionParams& hp, const DeviceCallPlan& plan, ExecContext ctx,
                            bool wait) {
  if (ctx.aborted()) return {StatusCode::Aborted, "aborted"};
  const int dev = plan.device;
  ctx.device = dev;
  AttentionParams p = hp;
  DeviceArena arena(dev);  // copies of host data and kernel-side arrays: released once enqueued (stream order)
  const int64_t es = dtype_size(p.dtype);
  const bool packed = p.cu_seqlens_q != nullptr;
  const int64_t row_bytes = p.Hq * p.Dv * es;
  const int64_t lse_numel = packed ? p.Hq * plan.out_rows : p.B * p.Hq * p.Sq;
  Status st;

  if (plan.host_io) {  // backend 'cuda' on host tensors: copy in
    if (!(st = copy_in(arena, p.q, plan.q_span, es)).ok()) return st;
    if (!(st = copy_in(arena, p.k, plan.k_span, es)).ok()) return st;
    if (!(st = copy_in(arena, p.v, plan.v_span, es)).ok()) return st;
    if (!(st = copy_in(arena, p.bias, plan.bias_span, es)).ok()) return st;
    void* d;
    if (!(st = arena_block(arena, plan.out_rows * row_bytes, &d)).ok()) return st;
    p.out = d;
    if (hp.lse) {
      if (!(st = arena_block(arena, lse_numel * 4, &d)).ok()) return st;
      p.lse = static_cast<float*>(d);
    }
  }

  // The option arrays (validated copies on the host) go up through pinned staging.
  std::vector<DeviceUpload> uploads;
  if (!(st = stage(arena, uploads, p.alibi_slopes, p.Hq)).ok()) return st;
  if (!(st = stage(arena, uploads, p.seqlens_k, p.B)).ok()) return st;
  p.host_cu_seqlens_q = p.cu_seqlens_q;  // validated host arrays, alive for the call
  p.host_cu_seqlens_k = p.cu_seqlens_k;
  if (!(st = stage(arena, uploads, p.cu_seqlens_q, p.B + 1)).ok()) return st;
  if (!(st = stage(arena, uploads, p.cu_seqlens_k, p.B + 1)).ok()) return st;
  if (!(st = device_upload_small(dev, uploads)).ok()) return st;

  // What the kernel does not write. Packed: lse rows past cuSeqlensQ[B] are
  // −Infinity (the kernel overwrites the rest), and a new out's rows there are 0.
  if (packed && p.lse && !(st = device_fill_f32(dev, p.lse, lse_numel, -INFINITY)).ok()) return st;
  if (packed && plan.new_out && plan.rows_written < plan.out_rows) {
    st = device_memset(dev, static_cast<char*>(p.out) + plan.rows_written * row_bytes, 0,
                       size_t((plan.out_rows - plan.rows_written) * row_bytes));
    if (!st.ok()) return st;
  }

  if (plan.rows_written > 0) {
    if (p.Sk == 0) {
      // No sequence has a key: every written row sees none (out 0, lse −Infinity).
      st = device_memset(dev, p.out, 0, size_t(plan.rows_written * row_bytes));
      if (st.ok() && p.lse && !packed) st = device_fill_f32(dev, p.lse, lse_numel, -INFINITY);
    } else {
      st = run_attention(kind, Backend::Cuda, p, ctx);
    }
    if (!st.ok()) return st;
  }

  if (plan.host_io) {  // copy out (each download waits for the stream)
    st = device_download(dev, hp.out, p.out, size_t(plan.rows_written * row_bytes));
    if (st.ok() && hp.lse) st = device_download(dev, hp.lse, p.lse, size_t(lse_numel * 4));
    return st;
  }
  return wait ? device_synchronize(dev) : st;
}

Status run_device_decode(const DecodeParams& hp, const DeviceCallPlan& plan, ExecContext ctx, bool wait) {
  if (ctx.aborted()) return {StatusCode::Aborted, "aborted"};
  const int dev = plan.device;
  ctx.device = dev;
  DecodeParams p = hp;
  p.host_cache_seqlens = hp.cache_seqlens;  // the partition is planned on the host
  DeviceArena arena(dev);
  std::vector<DeviceUpload> uploads;
  Status st;
  if (!(st = stage(arena, uploads, p.attn.alibi_slopes, p.attn.Hq)).ok()) return st;
  if (!(st = stage(arena, uploads, p.cache_seqlens, p.attn.B)).ok()) return st;
  if (!(st = stage(arena, uploads, p.cache.block_table, p.attn.B * p.cache.max_pages)).ok()) return st;
  if (!(st = stage(arena, uploads, p.seq_ids, p.attn.B)).ok()) return st;
  if (!(st = device_upload_small(dev, uploads)).ok()) return st;
  if (!(st = run_decode(Backend::Cuda, p, ctx)).ok()) return st;
  return wait ? device_synchronize(dev) : st;
}

}  // namespace fmha
