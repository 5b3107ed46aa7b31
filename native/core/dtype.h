// Element types and the one implementation of float32 <-> float16/bfloat16
// conversion (round to nearest even), shared by kernels and Tensor conversions.
// Functions are `static inline` on purpose: ISA-specific translation units include
// this header too, and internal linkage keeps the linker from merging an AVX-512
// copy into the baseline path.
#pragma once
#include <cstdint>
#include <cstring>
#include <string>

namespace fmha {

enum class DType : uint8_t { F32, F16, BF16 };

static inline int dtype_size(DType t) { return t == DType::F32 ? 4 : 2; }
static inline const char* dtype_name(DType t) {
  return t == DType::F32 ? "float32" : t == DType::F16 ? "float16" : "bfloat16";
}
// The DType named `name` ('float32', 'float16', 'bfloat16'); false for any other name.
static inline bool parse_dtype(const std::string& name, DType* t) {
  for (DType d : {DType::F32, DType::F16, DType::BF16})
    if (name == dtype_name(d)) { *t = d; return true; }
  return false;
}

static inline uint32_t f32_bits(float f) { uint32_t u; std::memcpy(&u, &f, 4); return u; }
static inline float bits_f32(uint32_t u) { float f; std::memcpy(&f, &u, 4); return f; }

static inline float bf16_to_f32(uint16_t h) { return bits_f32(uint32_t(h) << 16); }

static inline uint16_t f32_to_bf16(float f) {
  uint32_t u = f32_bits(f);
  if ((u & 0x7fffffffu) > 0x7f800000u) return uint16_t((u >> 16) | 0x40);  // quiet NaN, keep sign
  u += 0x7fffu + ((u >> 16) & 1u);                                           // round to nearest even
  return uint16_t(u >> 16);
}

static inline float f16_to_f32(uint16_t h) {
  const uint32_t sign = uint32_t(h & 0x8000u) << 16;
  uint32_t exp = (h >> 10) & 0x1fu, man = h & 0x3ffu;
  if (exp == 0x1f) return bits_f32(sign | 0x7f800000u | (man << 13));  // inf / nan
  if (exp == 0) {
    if (man == 0) return bits_f32(sign);
    // Subnormal: value = man * 2^-24, exact in float32.
    const float v = float(man) * 5.9604644775390625e-8f;
    return sign ? -v : v;
  }
  return bits_f32(sign | ((exp + 112u) << 23) | (man << 13));
}

static inline uint16_t f32_to_f16(float f) {
  const uint32_t u = f32_bits(f);
  const uint16_t sign = uint16_t((u >> 16) & 0x8000u);
  const uint32_t a = u & 0x7fffffffu;
  if (a > 0x7f800000u) return uint16_t(sign | 0x7e00u | ((a >> 13) & 0x3ffu));  // NaN stays NaN
  if (a >= 0x477ff000u) return uint16_t(sign | 0x7c00u);  // rounds to >= 65520 -> inf
  if (a < 0x38800000u) {
    // Result is subnormal or zero: scale so the f16 ulp (2^-24) becomes 1.0 and
    // let the float32 adder round to nearest even.
    const float v = bits_f32(a) * 16777216.0f;  // exact: power of two
    const float r = v + 8388608.0f - 8388608.0f;  // rint under the default rounding mode
    return uint16_t(sign | uint16_t(r));
  }
  const uint32_t rounded = a + 0xfffu + ((a >> 13) & 1u);
  return uint16_t(sign | ((rounded - 0x38000000u) >> 13));
}

static inline float load_as_f32(const void* p, DType t, int64_t i) {
  switch (t) {
    case DType::F32: return static_cast<const float*>(p)[i];
    case DType::F16: return f16_to_f32(static_cast<const uint16_t*>(p)[i]);
    default: return bf16_to_f32(static_cast<const uint16_t*>(p)[i]);
  }
}

static inline void store_from_f32(void* p, DType t, int64_t i, float x) {
  switch (t) {
    case DType::F32: static_cast<float*>(p)[i] = x; break;
    case DType::F16: static_cast<uint16_t*>(p)[i] = f32_to_f16(x); break;
    default: static_cast<uint16_t*>(p)[i] = f32_to_bf16(x); break;
  }
}

}  // namespace fmha
