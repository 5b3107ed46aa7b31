#include "dispatch.h"

#include "cpu/attention_cpu.h"

#ifdef FMHA_HAVE_CUDA
#include "../cuda/attention_cuda.h"
#include "../cuda/decode_cuda.h"
#include "core/cuda_info.h"
#include "core/device.h"
#endif

namespace fmha {

#ifdef FMHA_HAVE_CUDA
namespace {

// The kernels' scratch (cuda/attention_cuda.h: CudaScratch) comes from the
// device's caching allocator; the blocks go back when this call has enqueued
// its work, which stream order makes safe (core/device.h).
Status run_attention_cuda(AttentionKind kind, const AttentionParams& p, const ExecContext& ctx) {
  void* stream = nullptr;
  Status st = device_stream(ctx.device, &stream);
  if (!st.ok()) return st;
  DeviceArena arena(ctx.device);
  st = cuda_attention(kind, p, stream, CudaScratch{&DeviceArena::alloc_thunk, &arena});
  if (!st.ok() && !arena.status().ok()) return arena.status();  // the allocator says why (OOM and how much)
  return st;
}

Status run_decode_cuda(const DecodeParams& p, const ExecContext& ctx) {
  void* stream = nullptr;
  Status st = device_stream(ctx.device, &stream);
  if (!st.ok()) return st;
  DeviceArena arena(ctx.device);
  const int sms = query_cuda().devices[size_t(ctx.device)].multiprocessors;
  st = cuda_decode(p, sms, stream, CudaScratch{&DeviceArena::alloc_thunk, &arena});
  if (!st.ok() && !arena.status().ok()) return arena.status();
  return st;
}

}  // namespace
#endif

Status run_attention(AttentionKind kind, Backend backend, const AttentionParams& p, const ExecContext& ctx) {
  if (backend == Backend::Cuda) {
#ifdef FMHA_HAVE_CUDA
    return run_attention_cuda(kind, p, ctx);
#else
    return {StatusCode::Backend, "built without CUDA"};  // the binding checks query_cuda() first
#endif
  }
  return kind == AttentionKind::Fused ? fused_attention_cpu(p, ctx) : vanilla_attention_cpu(p, ctx);
}

Status run_decode(Backend backend, const DecodeParams& p, const ExecContext& ctx) {
  if (backend == Backend::Cuda) {
#ifdef FMHA_HAVE_CUDA
    return run_decode_cuda(p, ctx);
#else
    return {StatusCode::Backend, "built without CUDA"};  // the binding checks query_cuda() first
#endif
  }
  return decode_attention_cpu(p, ctx);
}

Status run_sequence_copy_cuda(int device, bool unpack, DType dtype, const void* src, void* dst,
                              const int32_t* cu_seqlens, int64_t B, int64_t S, int64_t HD) {
#ifdef FMHA_HAVE_CUDA
  void* stream = nullptr;
  Status st = device_stream(device, &stream);
  if (!st.ok()) return st;
  return unpack ? cuda_unpack_sequences(dtype, src, dst, cu_seqlens, B, S, HD, stream)
                : cuda_pack_sequences(dtype, src, dst, cu_seqlens, B, S, HD, stream);
#else
  return {StatusCode::Backend, "built without CUDA"};
#endif
}

}  // namespace fmha
