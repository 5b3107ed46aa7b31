// Run-time CPU feature detection: which SIMD path this machine can execute.
#pragma once

namespace fmha {

enum class Isa { Scalar, Avx2, Avx512, Neon };

struct CpuFeatures {
  Isa isa = Isa::Scalar;
  bool f16c = false;         // hardware f16 <-> f32 conversion
  bool avx512_bf16 = false;
  bool amx_bf16 = false;     // AMX tiles present and granted by the OS
};

// Detected once; FMHA_ISA=scalar|avx2|avx512 caps the choice (for testing paths).
const CpuFeatures& cpu_features();
const char* isa_name(Isa isa);

}  // namespace fmha
