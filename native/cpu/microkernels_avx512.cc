// AVX-512 (F, BW, VL, DQ) + FMA + F16C path; compiled with -mavx512f -mavx512bw -mavx512vl -mavx512dq.
// Register tile 6 rows × 4 vectors (24 accumulators): measured faster than 8 × 2
// at D=64 and 128 (162 vs 156, 173 vs 167 GFLOP/s on 2 Zen 4 cores).
#if defined(__x86_64__) || defined(_M_X64)
#define FMHA_ISA_NS isa_avx512
#define FMHA_VEC_BYTES 64
#define FMHA_GEMM_ROWS 6
#define FMHA_GEMM_VECS 4
#include "cpu/microkernels_impl.h"

namespace fmha {
const CpuMicrokernels& microkernels_avx512() { return isa_avx512::table(); }
}  // namespace fmha
#endif
