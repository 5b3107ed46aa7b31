// The machine's measured float32 multiply-add rate on the SIMD path fmha uses:
// the ceiling every benchmark's GFLOP/s is read against.
#pragma once

namespace fmha {

// Runs the active microkernel table's FMA probe on `threads` pool threads for
// about `seconds` and returns the aggregate GFLOP/s.
double measure_fma_gflops(int threads, double seconds);

}  // namespace fmha
