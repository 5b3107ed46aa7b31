// Padding removal and rebuild on the GPU (ByteTransformer's compress /
// restore step): padded [B, S, HD] <-> packed [T, HD] with cu_seqlens on the
// device. The grid walks padded rows, so the host never needs T: row (b, s) is
// packed row cu[b] + s when s < cu[b+1] − cu[b], and a pad otherwise (skipped
// by pack, zero-filled by unpack). Rows are copied with the widest vector
// (16, 8, 4 or 2 bytes) that the row size and both pointers allow.
#include <cuda_runtime.h>

#include <cstdint>

#include "attention_cuda.h"
#include "cuda_check.h"

namespace fmha {
namespace cudak {
namespace {

constexpr int kThreads = 256;

// blockDim = (threads per row, rows per block). to_packed: padded -> packed, else packed -> padded.
template <typename V>
__global__ void __launch_bounds__(kThreads) repack_kernel(const V* src, V* dst, const int32_t* cu, int64_t S,
                                                          int64_t rows, int64_t row_vecs, bool to_packed) {
  const int64_t step = int64_t(gridDim.x) * blockDim.y;
  for (int64_t row = int64_t(blockIdx.x) * blockDim.y + threadIdx.y; row < rows; row += step) {
    const int64_t b = row / S, s = row - b * S;
    const int64_t start = cu[b], len = cu[b + 1] - start;
    const bool real = s < len;
    if (to_packed) {
      if (!real) continue;
      const V* in = src + row * row_vecs;
      V* out = dst + (start + s) * row_vecs;
      for (int64_t i = threadIdx.x; i < row_vecs; i += blockDim.x) out[i] = in[i];
    } else {
      V* out = dst + row * row_vecs;
      if (real) {
        const V* in = src + (start + s) * row_vecs;
        for (int64_t i = threadIdx.x; i < row_vecs; i += blockDim.x) out[i] = in[i];
      } else {
        for (int64_t i = threadIdx.x; i < row_vecs; i += blockDim.x) out[i] = V{};
      }
    }
  }
}

template <typename V>
Status launch(const void* src, void* dst, const int32_t* cu, int64_t B, int64_t S, int64_t row_bytes, bool to_packed,
              cudaStream_t stream) {
  const int64_t row_vecs = row_bytes / int64_t(sizeof(V));
  int tpr = 32;
  while (tpr < kThreads && tpr < row_vecs) tpr *= 2;
  const int rpb = kThreads / tpr;
  const int64_t rows = B * S;
  const int64_t want = (rows + rpb - 1) / rpb;
  const unsigned grid = unsigned(want < (int64_t(1) << 20) ? want : (int64_t(1) << 20));
  repack_kernel<V><<<grid, dim3(unsigned(tpr), unsigned(rpb)), 0, stream>>>(
      static_cast<const V*>(src), static_cast<V*>(dst), cu, S, rows, row_vecs, to_packed);
  FMHA_CUDA_LAUNCHED(to_packed ? "packSequences kernel launch" : "unpackSequences kernel launch");
  return {};
}

Status repack(DType dtype, const void* src, void* dst, const int32_t* cu, int64_t B, int64_t S, int64_t HD,
              bool to_packed, void* stream) {
  if (B <= 0 || S <= 0 || HD <= 0) return {};
  const int64_t row_bytes = HD * dtype_size(dtype);
  const uintptr_t bits = uintptr_t(src) | uintptr_t(dst) | uintptr_t(row_bytes);
  const cudaStream_t s = static_cast<cudaStream_t>(stream);
  if (bits % 16 == 0) return launch<uint4>(src, dst, cu, B, S, row_bytes, to_packed, s);
  if (bits % 8 == 0) return launch<uint2>(src, dst, cu, B, S, row_bytes, to_packed, s);
  if (bits % 4 == 0) return launch<uint32_t>(src, dst, cu, B, S, row_bytes, to_packed, s);
  return launch<uint16_t>(src, dst, cu, B, S, row_bytes, to_packed, s);
}

}  // namespace
}  // namespace cudak

Status cuda_pack_sequences(DType dtype, const void* padded, void* packed, const int32_t* cu_seqlens, int64_t B,
                           int64_t S, int64_t HD, void* stream) {
  return cudak::repack(dtype, padded, packed, cu_seqlens, B, S, HD, true, stream);
}

Status cuda_unpack_sequences(DType dtype, const void* packed, void* padded, const int32_t* cu_seqlens, int64_t B,
                             int64_t S, int64_t HD, void* stream) {
  return cudak::repack(dtype, packed, padded, cu_seqlens, B, S, HD, false, stream);
}

}  // namespace fmha
