#include "cpu/sequence_packing.h"

#include <algorithm>
#include <cstring>

#include "cpu/thread_pool.h"

namespace fmha {
namespace {

// Below this many bytes per thread, waking the pool costs more than the
// second thread's bandwidth saves.
constexpr int64_t kMinBytesPerThread = int64_t(1) << 20;

// Copies n tokens of H rows each from src to dst (strides in bytes), merging
// rows into one memcpy wherever both sides are contiguous.
void copy_tokens(const char* src, int64_t src_t, int64_t src_h, char* dst, int64_t dst_t, int64_t dst_h, int64_t n,
                 int64_t H, int64_t row) {
  const bool heads_contiguous = H == 1 || (src_h == row && dst_h == row);
  const int64_t token = H * row;
  if (heads_contiguous && (n == 1 || (src_t == token && dst_t == token))) {
    std::memcpy(dst, src, size_t(n * token));
  } else if (heads_contiguous) {
    for (int64_t t = 0; t < n; ++t) std::memcpy(dst + t * dst_t, src + t * src_t, size_t(token));
  } else {
    for (int64_t t = 0; t < n; ++t)
      for (int64_t h = 0; h < H; ++h) std::memcpy(dst + t * dst_t + h * dst_h, src + t * src_t + h * src_h, size_t(row));
  }
}

// Packed tokens [t0, t1), sequence by sequence.
void copy_range(const SequenceCopy& c, CopyDirection dir, int64_t t0, int64_t t1) {
  const int32_t* cu = c.cu_seqlens;
  // The last sequence starting at or before t0 is the one holding it (empty ones skipped).
  int64_t b = std::upper_bound(cu, cu + c.B + 1, int32_t(t0)) - cu - 1;
  for (int64_t t = t0; t < t1; ++b) {
    const int64_t end = std::min<int64_t>(t1, cu[b + 1]), s = t - cu[b];
    char* padded = c.padded + b * c.padded_stride[0] + s * c.padded_stride[1];
    char* packed = c.packed + t * c.packed_stride[0];
    if (dir == CopyDirection::Pack)
      copy_tokens(padded, c.padded_stride[1], c.padded_stride[2], packed, c.packed_stride[0], c.packed_stride[1],
                  end - t, c.H, c.row_bytes);
    else
      copy_tokens(packed, c.packed_stride[0], c.packed_stride[1], padded, c.padded_stride[1], c.padded_stride[2],
                  end - t, c.H, c.row_bytes);
    t = end;
  }
}

}  // namespace

void copy_sequences(const SequenceCopy& c, CopyDirection dir, int threads) {
  const int64_t tokens = c.cu_seqlens[c.B], bytes = tokens * c.H * c.row_bytes;
  if (bytes == 0) return;
  const int64_t pieces = std::max<int64_t>(1, std::min<int64_t>({threads, tokens, bytes / kMinBytesPerThread}));
  parallel_for_unless_busy(int(pieces), pieces, [&](int64_t i, int) {
    copy_range(c, dir, tokens * i / pieces, tokens * (i + 1) / pieces);
  });
}

}  // namespace fmha
