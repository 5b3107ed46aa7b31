// A KV cache in host memory (DESIGN §3 KVCache): contiguous [batch, capacity,
// Hkv, D] or paged [numPages, pageSize, Hkv, D] with per-sequence block tables
// and a pool of free pages, as vLLM's PagedAttention. It keeps the lengths and
// the page bookkeeping; the binding checks a request against them (capacity,
// free pages, busy) before anything is written, so nothing here can overwrite.
#pragma once
#include <cstdint>
#include <memory>
#include <string>
#include <vector>
#include "core/decode_params.h"

namespace fmha {

class KvCacheStore {
 public:
  struct Config {
    int64_t batch = 0, capacity = 0, heads = 0, D = 0, Dv = 0;
    DType dtype = DType::F32;
    int64_t page_size = 0;  // 0: contiguous
    int64_t num_pages = 0;  // paged only
  };

  // Allocates the cache; nullptr with *error set when the memory cannot be had
  // (bytes above max_bytes, or allocation failure).
  static std::unique_ptr<KvCacheStore> create(const Config& c, int64_t max_bytes, std::string* error);
  ~KvCacheStore();

  const Config& config() const { return cfg_; }
  const KvCacheView& view() const { return view_; }
  int64_t length(int64_t s) const { return lengths_[size_t(s)]; }
  const std::vector<int32_t>& lengths() const { return lengths_; }
  bool paged() const { return cfg_.page_size > 0; }
  int64_t free_pages() const { return int64_t(free_.size()); }
  int64_t bytes() const { return bytes_; }

  // Pages sequence s must take from the pool to hold `len` tokens (0 for a contiguous cache).
  int64_t pages_needed(int64_t s, int64_t len) const;
  // Grows sequence s to `len` tokens, taking pages_needed(s, len) pages (checked by the caller).
  void grow(int64_t s, int64_t len);
  // Shrinks sequence s to `len` ≤ its length; pages past it go back to the pool
  // (len 0: reset). Undoes a grow() whose rows were never written.
  void truncate(int64_t s, int64_t len);

  // In-flight async decodes (counted on the JS thread): append, reset and
  // writing decodes are refused while any runs; `writers` of them append.
  int in_flight = 0, writers = 0;

 private:
  KvCacheStore() = default;
  Config cfg_;
  KvCacheView view_;
  int64_t bytes_ = 0;
  void* k_ = nullptr;
  void* v_ = nullptr;
  std::vector<int32_t> lengths_;
  std::vector<int32_t> block_table_;  // [batch, max_pages]; −1: no page
  std::vector<int32_t> free_;         // the pool, taken from the back
};

}  // namespace fmha
