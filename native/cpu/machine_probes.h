// This machine's limits on the SIMD path fmha uses, measured in the caller's
// run: the float32 multiply-add rate and the memory read bandwidth that every
// benchmark's GFLOP/s and GB/s are read against.
#pragma once
#include <cstdint>
#include "core/attention_params.h"

namespace fmha {

// Runs the active microkernel table's FMA probe on `threads` pool threads for
// about `seconds` and returns the aggregate GFLOP/s.
double measure_fma_gflops(int threads, double seconds);

// Reads a `bytes` buffer (split across `threads` pool threads, each summing its
// slice with vector loads) `passes` times after one warm-up pass; stores the
// best pass's GB/s (1e9 bytes/s) in *gbps. OutOfMemory when the buffer cannot be allocated.
Status measure_read_gbps(int threads, int64_t bytes, int passes, double* gbps);

}  // namespace fmha
