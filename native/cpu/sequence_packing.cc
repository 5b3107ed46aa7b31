#include "cpu/sequence_packing.h"

#include <algorithm>
#include <cstring>

#include "cpu/thread_pool.h"

namespace fmha {
namespace {

// Below this many bytes per thread, waking the pool costs more than the
// second thread's bandwidth saves.
constexpr int64_t kMinBytesPerThread = int64_t(1) << 20;

// n bytes at dst: a copy of src, or zeros when src is null.
void put(char* dst, const char* src, int64_t n) {
  if (src)
    std::memcpy(dst, src, size_t(n));
  else
    std::memset(dst, 0, size_t(n));
}

// Copies n tokens of H rows each from src to dst (strides in bytes), or zeroes
// them in dst when src is null (pass dst's strides as src's then), merging rows
// into one call wherever both sides are contiguous.
void copy_tokens(const char* src, int64_t src_t, int64_t src_h, char* dst, int64_t dst_t, int64_t dst_h, int64_t n,
                 int64_t H, int64_t row) {
  const auto at = [src](int64_t offset) { return src ? src + offset : nullptr; };
  const bool heads_contiguous = H == 1 || (src_h == row && dst_h == row);
  const int64_t token = H * row;
  if (heads_contiguous && (n == 1 || (src_t == token && dst_t == token))) {
    put(dst, src, n * token);
  } else if (heads_contiguous) {
    for (int64_t t = 0; t < n; ++t) put(dst + t * dst_t, at(t * src_t), token);
  } else {
    for (int64_t t = 0; t < n; ++t)
      for (int64_t h = 0; h < H; ++h) put(dst + t * dst_t + h * dst_h, at(t * src_t + h * src_h), row);
  }
}

// The rows a copy writes, numbered in order: the packed tokens, or with
// zero_padding every padded row (b, s) as b·S + s. Sequence b's rows start at
// first_row(b) and number len_b (or S).
int64_t first_row(const SequenceCopy& c, int64_t b) { return c.zero_padding ? b * c.S : c.cu_seqlens[b]; }

// Written rows [w0, w1), sequence by sequence.
void copy_range(const SequenceCopy& c, CopyDirection dir, int64_t w0, int64_t w1) {
  const int32_t* cu = c.cu_seqlens;
  // The sequence holding row w0 (with packed tokens: the last one starting at or before it, empty ones skipped).
  int64_t b = c.zero_padding ? w0 / c.S : std::upper_bound(cu, cu + c.B + 1, int32_t(w0)) - cu - 1;
  for (int64_t w = w0; w < w1; ++b) {
    const int64_t len = cu[b + 1] - cu[b], first = first_row(c, b);
    const int64_t end = std::min(w1, first + (c.zero_padding ? c.S : len));
    const int64_t s0 = w - first, s1 = end - first;  // padded rows [s0, s1) of sequence b
    char* padded = c.padded + b * c.padded_stride[0];
    if (s0 < std::min(s1, len)) {
      char* packed = c.packed + (cu[b] + s0) * c.packed_stride[0];
      const int64_t n = std::min(s1, len) - s0;
      if (dir == CopyDirection::Pack)
        copy_tokens(padded + s0 * c.padded_stride[1], c.padded_stride[1], c.padded_stride[2], packed,
                    c.packed_stride[0], c.packed_stride[1], n, c.H, c.row_bytes);
      else
        copy_tokens(packed, c.packed_stride[0], c.packed_stride[1], padded + s0 * c.padded_stride[1],
                    c.padded_stride[1], c.padded_stride[2], n, c.H, c.row_bytes);
    }
    const int64_t pad0 = std::max(s0, len);  // only with zero_padding can s1 pass len
    if (pad0 < s1)
      copy_tokens(nullptr, c.padded_stride[1], c.padded_stride[2], padded + pad0 * c.padded_stride[1],
                  c.padded_stride[1], c.padded_stride[2], s1 - pad0, c.H, c.row_bytes);
    w = end;
  }
}

}  // namespace

void copy_sequences(const SequenceCopy& c, CopyDirection dir, int threads) {
  const int64_t rows = c.zero_padding ? c.B * c.S : c.cu_seqlens[c.B], bytes = rows * c.H * c.row_bytes;
  if (bytes == 0) return;
  const int64_t pieces = std::max<int64_t>(1, std::min<int64_t>({threads, rows, bytes / kMinBytesPerThread}));
  parallel_for_unless_busy(int(pieces), pieces, [&](int64_t i, int) {
    copy_range(c, dir, rows * i / pieces, rows * (i + 1) / pieces);
  });
}

}  // namespace fmha
