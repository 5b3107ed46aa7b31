// cuda_attention(): checks what the kernels assume, picks a kernel, launches.
//
// Fused:   float16/bfloat16 with D == Dv in {32, 64, 96, 128, 192, 256}, 16-byte
//          aligned q/k/v/out and strides that are multiples of 8 elements
//          -> the flash kernel (tensor cores, cp.async);
//          everything else (float32, other D, Dv != D, unaligned views)
//          -> the general kernel.
// Vanilla: the materializing baseline (padded only); with no keys at all it
//          has nothing to materialize and the fused path writes the zeros / −inf.
#include <cuda_runtime.h>

#include <cstdint>
#include <string>

#include "attention_cuda.h"
#include "cuda_check.h"
#include "flash_fwd.h"
#include "flash_fwd_kernel.cuh"
#include "general_attention.h"
#include "kernel_args.h"
#include "vanilla_attention.h"
#include "varlen_work.h"

namespace fmha {
namespace cudak {

namespace {

struct FlashShape {
  int smem_bytes, block_m;  // 0, 0: D has no flash kernel
};

template <int kD>
constexpr FlashShape flash_shape_of() { return {FlashConfig<kD>::kSmemBytes, FlashConfig<kD>::kBlockM}; }

FlashShape flash_shape(int64_t D) {
  switch (D) {
    case 32: return flash_shape_of<32>();
    case 64: return flash_shape_of<64>();
    case 96: return flash_shape_of<96>();
    case 128: return flash_shape_of<128>();
    case 192: return flash_shape_of<192>();
    case 256: return flash_shape_of<256>();
    default: return {0, 0};
  }
}

}  // namespace

int flash_fwd_smem_bytes(int64_t D) { return flash_shape(D).smem_bytes; }
int flash_fwd_block_m(int64_t D) { return flash_shape(D).block_m; }

namespace {

bool aligned16(const void* p) { return (reinterpret_cast<uintptr_t>(p) & 15u) == 0; }
bool strides_of_8(const int64_t (&s)[3]) { return s[0] % 8 == 0 && s[1] % 8 == 0 && s[2] % 8 == 0; }

Status unsupported(const std::string& what) {
  return {StatusCode::Backend, "CUDA attention: " + what};
}

Status launch_flash(const AttentionParams& p, const KernelArgs& a, cudaStream_t stream) {
  const bool bf16 = p.dtype == DType::BF16;
  switch (p.D) {
    case 32: return launch_flash_fwd_hdim32(bf16, a, p.B, stream);
    case 64: return launch_flash_fwd_hdim64(bf16, a, p.B, stream);
    case 96: return launch_flash_fwd_hdim96(bf16, a, p.B, stream);
    case 128: return launch_flash_fwd_hdim128(bf16, a, p.B, stream);
    case 192: return launch_flash_fwd_hdim192(bf16, a, p.B, stream);
    default: return launch_flash_fwd_hdim256(bf16, a, p.B, stream);
  }
}

}  // namespace
}  // namespace cudak

CudaFusedKernel cuda_select_fused(const AttentionParams& p, int smem_optin) {
  if (p.dtype == DType::F32 || p.D != p.Dv) return CudaFusedKernel::General;
  const int smem = cudak::flash_fwd_smem_bytes(p.D);
  if (smem == 0 || smem > smem_optin) return CudaFusedKernel::General;
  // cp.async moves 16-byte chunks and the epilogue stores 16 bytes: every row start must be 16-byte aligned.
  if (!cudak::aligned16(p.q) || !cudak::aligned16(p.k) || !cudak::aligned16(p.v) || !cudak::aligned16(p.out))
    return CudaFusedKernel::General;
  if (!cudak::strides_of_8(p.q_stride) || !cudak::strides_of_8(p.k_stride) || !cudak::strides_of_8(p.v_stride) ||
      !cudak::strides_of_8(p.o_stride))
    return CudaFusedKernel::General;
  return CudaFusedKernel::Flash;
}

Status cuda_attention(AttentionKind kind, const AttentionParams& p, void* stream_ptr, const CudaScratch& scratch) {
  if (p.B <= 0 || p.Sq <= 0 || p.Hq <= 0) return {};
  // What the binding already guarantees, re-checked where a violation would mean out-of-bounds indexing.
  if (p.Hkv <= 0 || p.Hq % p.Hkv != 0) return cudak::unsupported("Hq must be a multiple of Hkv");
  if (p.D < 1 || p.D > 256 || p.Dv < 1 || p.Dv > 256) return cudak::unsupported("head dims must be in [1, 256]");
  if (p.Hq > 65535) return cudak::unsupported("at most 65535 query heads, got " + std::to_string(p.Hq));
  if (p.Sq < 0 || p.Sk < 0 || p.Sq + p.Sk >= (int64_t(1) << 30))
    return cudak::unsupported("Sq + Sk must be below 2^30 (32-bit row indices)");
  if ((p.cu_seqlens_q == nullptr) != (p.cu_seqlens_k == nullptr))
    return cudak::unsupported("varlen needs both cu_seqlens_q and cu_seqlens_k");

  const cudaStream_t stream = static_cast<cudaStream_t>(stream_ptr);
  cudak::KernelArgs a = cudak::make_kernel_args(p);

  if (kind == AttentionKind::Vanilla) {
    if (p.cu_seqlens_q) return cudak::unsupported("vanilla attention takes padded batches only");
    if (p.B * p.Hq >= (int64_t(1) << 31)) return cudak::unsupported("vanilla attention: B·Hq must be below 2^31");
    if (p.Sk > 0) return cudak::launch_vanilla_attention(p.dtype, a, p.B, stream, scratch);
  }

  int device = 0, smem_optin = 0;
  FMHA_CUDA_TRY(cudaGetDevice(&device), "cudaGetDevice");
  FMHA_CUDA_TRY(cudaDeviceGetAttribute(&smem_optin, cudaDevAttrMaxSharedMemoryPerBlockOptin, device),
                "cudaDeviceGetAttribute(MaxSharedMemoryPerBlockOptin)");
  const bool flash = cuda_select_fused(p, smem_optin) == CudaFusedKernel::Flash;
  const int smem = cudak::general_attention_smem_bytes(p.D, p.Dv);
  if (!flash && smem > smem_optin)
    return cudak::unsupported("the general kernel needs " + std::to_string(smem) +
                              " bytes of shared memory per block, the device allows " + std::to_string(smem_optin));
  if (p.cu_seqlens_q) {
    const int block_m = flash ? cudak::flash_fwd_block_m(p.D) : cudak::general_attention_block_m();
    const Status st = cudak::plan_varlen_work(p, block_m, scratch, stream, &a);
    if (!st.ok()) return st;
  }
  return flash ? cudak::launch_flash(p, a, stream) : cudak::launch_general_attention(p.dtype, a, p.B, stream);
}

}  // namespace fmha
