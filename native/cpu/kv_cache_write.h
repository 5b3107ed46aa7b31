// Writing new tokens into a KV cache: decodeAttention's fused append (kNew,
// vNew) and KVCache.append share it. The caller has validated every position
// (capacity, pages), so this only copies.
#pragma once
#include <cstdint>
#include "core/decode_params.h"

namespace fmha {

// A source of new K or V rows: element (row t, head h, d) at data + t·row_stride + h·head_stride + d.
struct RowSource {
  const void* data = nullptr;
  int64_t row_stride = 0, head_stride = 0;
};

// Rows [start, start + n) of cache sequence s, every kv head: K from k, V from v
// (the cache's dtype; heads of D and Dv elements).
void write_cache_rows(const KvCacheView& cache, int64_t s, int64_t start, int64_t n, int64_t heads, int64_t D,
                      int64_t Dv, RowSource k, RowSource v);

}  // namespace fmha
