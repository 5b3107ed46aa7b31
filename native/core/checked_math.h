// Overflow-checked size arithmetic for validating user-supplied shapes and strides.
#pragma once
#include <cstdint>

namespace fmha {

// Returns false on overflow; *out is then unspecified.
inline bool checked_mul(int64_t a, int64_t b, int64_t* out) { return !__builtin_mul_overflow(a, b, out); }
inline bool checked_add(int64_t a, int64_t b, int64_t* out) { return !__builtin_add_overflow(a, b, out); }

}  // namespace fmha
