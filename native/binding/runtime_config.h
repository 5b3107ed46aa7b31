// Process-wide settings read once from the environment.
#pragma once
#include <cstdint>
#include "core/attention_params.h"

namespace fmha {

// FMHA_MAX_SCRATCH_BYTES, default half of physical memory.
int64_t max_scratch_bytes();

// A kernel call's context: the current thread count and scratch limit, the caller's abort flag.
ExecContext call_context(const int32_t* abort_flag);

}  // namespace fmha
