#include "cpu/cpu_features.h"

#include <cstdlib>
#include <cstring>

#if defined(__x86_64__) || defined(_M_X64)
#include <cpuid.h>
#if defined(__linux__)
#include <sys/syscall.h>
#include <unistd.h>
#endif
#endif

namespace fmha {
namespace {

#if defined(__x86_64__) || defined(_M_X64)
unsigned long long xgetbv0() {
  unsigned eax, edx;
  __asm__ volatile("xgetbv" : "=a"(eax), "=d"(edx) : "c"(0));
  return (static_cast<unsigned long long>(edx) << 32) | eax;
}

bool request_amx_permission() {
#if defined(__linux__)
  constexpr long kArchReqXcompPerm = 0x1023;  // arch_prctl ARCH_REQ_XCOMP_PERM
  constexpr long kXfeatureXtiledata = 18;
  return syscall(SYS_arch_prctl, kArchReqXcompPerm, kXfeatureXtiledata) == 0;
#else
  return false;
#endif
}

CpuFeatures detect() {
  CpuFeatures f;
  unsigned a, b, c, d;
  if (!__get_cpuid(1, &a, &b, &c, &d)) return f;
  const bool osxsave = c & (1u << 27), fma = c & (1u << 12), f16c = c & (1u << 29), avx = c & (1u << 28);
  if (!osxsave || !avx) return f;
  const unsigned long long xcr0 = xgetbv0();
  const bool os_ymm = (xcr0 & 0x6) == 0x6, os_zmm = (xcr0 & 0xe6) == 0xe6;
  __cpuid_count(7, 0, a, b, c, d);
  const bool avx2 = b & (1u << 5), avx512f = b & (1u << 16), avx512dq = b & (1u << 17),
             avx512bw = b & (1u << 30), avx512vl = b & (1u << 31), amx_bf16 = d & (1u << 22),
             amx_tile = d & (1u << 24);
  f.f16c = f16c && os_ymm;
  if (os_ymm && avx2 && fma && f16c) f.isa = Isa::Avx2;
  if (os_zmm && avx512f && avx512dq && avx512bw && avx512vl && f.isa == Isa::Avx2) f.isa = Isa::Avx512;
  unsigned a1, b1, c1, d1;
  __cpuid_count(7, 1, a1, b1, c1, d1);
  f.avx512_bf16 = f.isa == Isa::Avx512 && (a1 & (1u << 5));
  f.amx_bf16 = amx_bf16 && amx_tile && (xcr0 & (3ull << 17)) == (3ull << 17) && request_amx_permission();
  return f;
}
#elif defined(__aarch64__)
CpuFeatures detect() {
  CpuFeatures f;
  f.isa = Isa::Neon;  // Advanced SIMD is mandatory on AArch64
  f.f16c = true;
  return f;
}
#else
CpuFeatures detect() { return CpuFeatures{}; }
#endif

CpuFeatures detect_capped() {
  CpuFeatures f = detect();
  if (const char* cap = std::getenv("FMHA_ISA")) {
    if (!std::strcmp(cap, "scalar")) f.isa = Isa::Scalar;
    else if (!std::strcmp(cap, "avx2") && f.isa == Isa::Avx512) f.isa = Isa::Avx2;
    if (f.isa != Isa::Avx512) f.avx512_bf16 = false;
  }
  return f;
}

}  // namespace

const CpuFeatures& cpu_features() {
  static const CpuFeatures f = detect_capped();
  return f;
}

const char* isa_name(Isa isa) {
  switch (isa) {
    case Isa::Avx512: return "avx512";
    case Isa::Avx2: return "avx2";
    case Isa::Neon: return "neon";
    default: return "scalar";
  }
}

}  // namespace fmha
