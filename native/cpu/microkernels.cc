#include "cpu/microkernels.h"

namespace fmha {

const CpuMicrokernels& cpu_microkernels(Isa isa) {
#if defined(__x86_64__) || defined(_M_X64)
  if (isa == Isa::Avx512) return microkernels_avx512();
  if (isa == Isa::Avx2) return microkernels_avx2();
#endif
  (void)isa;
  return microkernels_scalar();
}

}  // namespace fmha
