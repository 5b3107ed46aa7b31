#include "cpu/scratch.h"

namespace fmha {

Status check_scratch(int threads, int64_t floats, int64_t max_bytes, const char* what) {
  int64_t total = 0;
  if (!checked_mul(floats, int64_t(sizeof(float)) * threads, &total) || total > max_bytes) {
    return {StatusCode::OutOfMemory,
            std::string(what) + " needs " + (total > 0 ? std::to_string(total) : std::string("more than 2^63")) +
                " bytes of scratch, above FMHA_MAX_SCRATCH_BYTES=" + std::to_string(max_bytes)};
  }
  return {};
}

namespace {

struct Arena {
  float* data = nullptr;
  int64_t capacity = 0;
  ~Arena() { release(); }
  void release() {
    if (data) ::operator delete[](data, std::align_val_t{64});
    data = nullptr;
    capacity = 0;
  }
};

}  // namespace

float* thread_arena(int64_t floats) {
  thread_local Arena arena;
  if (floats > arena.capacity) {
    arena.release();
    arena.data = static_cast<float*>(
        ::operator new[](size_t(floats) * sizeof(float), std::align_val_t{64}, std::nothrow));
    if (arena.data) arena.capacity = floats;
  }
  return arena.data;
}

}  // namespace fmha
