// AVX2 + FMA + F16C path; this file is compiled with -mavx2 -mfma -mf16c.
#if defined(__x86_64__) || defined(_M_X64)
#define FMHA_ISA_NS isa_avx2
#define FMHA_VEC_BYTES 32
#define FMHA_GEMM_ROWS 6
#define FMHA_GEMM_VECS 2
#include "cpu/microkernels_impl.h"

namespace fmha {
const CpuMicrokernels& microkernels_avx2() { return isa_avx2::table(); }
}  // namespace fmha
#endif
