#include "cpu/bf16_dot_kernels.h"

#include "cpu/cpu_features.h"

namespace fmha {

#if defined(__x86_64__) || defined(_M_X64)
const Bf16DotKernels& bf16_dot_kernels_avx512bf16();
#endif

const Bf16DotKernels* bf16_dot_kernels() {
#if defined(__x86_64__) || defined(_M_X64)
  if (cpu_features().avx512_bf16) return &bf16_dot_kernels_avx512bf16();
#endif
  return nullptr;
}

}  // namespace fmha
