// AVX-512 (F, BW, VL, DQ) + FMA + F16C path; compiled with -mavx512f -mavx512bw -mavx512vl -mavx512dq.
#if defined(__x86_64__) || defined(_M_X64)
#define FMHA_ISA_NS isa_avx512
#define FMHA_VEC_BYTES 64
#define FMHA_GEMM_ROWS 8
#define FMHA_GEMM_VECS 2
#include "cpu/microkernels_impl.h"

namespace fmha {
const CpuMicrokernels& microkernels_avx512() { return isa_avx512::table(); }
}  // namespace fmha
#endif
