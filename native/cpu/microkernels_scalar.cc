// Baseline path: 16-byte vectors (SSE2 on x86-64, NEON on AArch64, emulated elsewhere).
#define FMHA_ISA_NS isa_baseline
#define FMHA_VEC_BYTES 16
#define FMHA_GEMM_ROWS 4
#define FMHA_GEMM_VECS 2
#include "cpu/microkernels_impl.h"

namespace fmha {
const CpuMicrokernels& microkernels_scalar() { return isa_baseline::table(); }
}  // namespace fmha
