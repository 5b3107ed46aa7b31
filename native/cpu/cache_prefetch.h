// Software prefetch. Decode does too little work per cache line for the
// out-of-order window alone to keep enough reads in flight, so each kernel
// streams in the bytes the next one reads while it computes: Q·Kᵀ over a tile
// asks for the tile's V, P·V for the next tile's K. The fused kernel asks for
// the next work unit's rows while it computes the current one.
// Internal linkage, so each ISA's copy stays its own.
#pragma once
#include <cstdint>

namespace fmha {
namespace {

// Spreads prefetches of [p, p + bytes) evenly over `steps` calls of next(),
// front to back, so the requests form one sequential stream. Into L2
// (prefetcht1), not L1: a tile's V or K is 128–256 KiB, which in L1 would evict
// the working set (measured at L=32k, 2 threads: fp32 9.9 ms against 14.8 into
// L1 and 11.0 for the previous near, per-head prefetch; bf16 4.7 against 7.4 and 8.7).
class PrefetchStream {
 public:
  PrefetchStream(const void* p, int64_t bytes, int64_t steps)
      : p_(static_cast<const char*>(p)), bytes_(p ? bytes : 0), steps_(steps > 0 ? steps : 1) {}
  void next() {
    const int64_t end = bytes_ * ++step_ / steps_;
    for (; done_ < end; done_ += 64) __builtin_prefetch(p_ + done_, 0, 2);
  }

 private:
  const char* p_;
  int64_t bytes_, steps_, step_ = 0, done_ = 0;
};

// `rows` rows of `bytes` bytes each, `stride` bytes apart, into L2 (for
// reading, or for writing: a line about to be stored is fetched in exclusive state).
inline void prefetch_rows(const void* p, int64_t stride, int64_t rows, int64_t bytes, bool write) {
  const char* c = static_cast<const char*>(p);
  for (int64_t r = 0; r < rows; ++r)
    for (int64_t b = 0; b < bytes; b += 64) {
      if (write) __builtin_prefetch(c + r * stride + b, 1, 2);
      else __builtin_prefetch(c + r * stride + b, 0, 2);
    }
}

}  // namespace
}  // namespace fmha
