#include "cpu/kv_cache_write.h"

#include <cstring>

namespace fmha {

void write_cache_rows(const KvCacheView& cache, int64_t s, int64_t start, int64_t n, int64_t heads, int64_t D,
                      int64_t Dv, RowSource k, RowSource v) {
  const int64_t es = dtype_size(cache.dtype);
  for (int64_t t = 0; t < n; ++t)
    for (int64_t h = 0; h < heads; ++h) {
      std::memcpy(static_cast<char*>(cache.k) + cache.k_at(s, start + t, h) * es,
                  static_cast<const char*>(k.data) + (t * k.row_stride + h * k.head_stride) * es, size_t(D * es));
      std::memcpy(static_cast<char*>(cache.v) + cache.v_at(s, start + t, h) * es,
                  static_cast<const char*>(v.data) + (t * v.row_stride + h * v.head_stride) * es, size_t(Dv * es));
    }
}

}  // namespace fmha
