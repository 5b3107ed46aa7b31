// Process-wide settings read once from the environment.
#pragma once
#include <cstdint>

namespace fmha {

// FMHA_MAX_SCRATCH_BYTES, default half of physical memory.
int64_t max_scratch_bytes();

}  // namespace fmha
