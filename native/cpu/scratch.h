// Per-thread float32 scratch for one call, sized and checked before allocation.
#pragma once
#include <cstdint>
#include <memory>
#include <new>
#include <string>
#include <vector>
#include "core/attention_params.h"
#include "core/checked_math.h"

namespace fmha {

class ThreadScratch {
 public:
  // Reserves `floats_per_thread` floats for each of `threads` threads, or returns
  // OutOfMemory (naming `what`) when the total exceeds max_bytes or malloc fails.
  Status allocate(int threads, int64_t floats_per_thread, int64_t max_bytes, const char* what) {
    int64_t total = 0;
    if (!checked_mul(floats_per_thread, int64_t(sizeof(float)) * threads, &total) || total > max_bytes) {
      return {StatusCode::OutOfMemory,
              std::string(what) + " needs " + (total > 0 ? std::to_string(total) : std::string("more than 2^63")) +
                  " bytes of scratch, above FMHA_MAX_SCRATCH_BYTES=" + std::to_string(max_bytes)};
    }
    per_thread_ = floats_per_thread;
    buf_.reset(new (std::nothrow) float[size_t(floats_per_thread) * threads]);
    if (!buf_) return {StatusCode::OutOfMemory, std::string(what) + ": allocating " + std::to_string(total) + " bytes failed"};
    return {};
  }
  float* thread(int t) const { return buf_.get() + per_thread_ * t; }

 private:
  std::unique_ptr<float[]> buf_;
  int64_t per_thread_ = 0;
};

}  // namespace fmha
