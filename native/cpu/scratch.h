// Float32 scratch for the CPU kernels: per-call buffers sized and checked before
// allocation (ThreadScratch), and per-thread arenas that persist across calls
// so the fused kernel's hot path never allocates once warmed up.
#pragma once
#include <cstdint>
#include <memory>
#include <new>
#include <string>
#include <vector>
#include "core/attention_params.h"
#include "core/checked_math.h"

namespace fmha {

// Checks that `threads` arenas of `floats` floats each fit FMHA_MAX_SCRATCH_BYTES.
Status check_scratch(int threads, int64_t floats, int64_t max_bytes, const char* what);

// The calling thread's arena of at least `floats` floats (64-byte aligned),
// grown on demand and kept at its high-water mark: pool workers and callers are
// long-lived threads. Returns nullptr when growing fails. The contents are
// unspecified and valid until this thread's next call.
float* thread_arena(int64_t floats);

class ThreadScratch {
 public:
  // Reserves `floats_per_thread` floats for each of `threads` threads, or returns
  // OutOfMemory (naming `what`) when the total exceeds max_bytes or malloc fails.
  Status allocate(int threads, int64_t floats_per_thread, int64_t max_bytes, const char* what) {
    Status st = check_scratch(threads, floats_per_thread, max_bytes, what);
    if (!st.ok()) return st;
    const int64_t total = floats_per_thread * int64_t(sizeof(float)) * threads;
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
