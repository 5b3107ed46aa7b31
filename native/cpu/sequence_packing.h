// ByteTransformer's padding removal and rebuild (DESIGN §5): copies token rows
// between a padded [B, S, H, D] batch and packed [T, H, D] tokens laid out by
// cu_seqlens. Pure memory copies: as few memcpys as the strides allow (one per
// sequence when both sides are contiguous), split into equal ranges of written
// rows over fmha's pool when the copy is big enough to pay for waking it and
// the pool is not busy with an async call (a synchronous copy must not wait
// behind one).
#pragma once
#include <cstdint>

namespace fmha {

struct SequenceCopy {
  int64_t B = 0, H = 0, row_bytes = 0;  // row_bytes: one head's D elements
  const int32_t* cu_seqlens = nullptr;  // [B + 1], validated: sequence b is tokens [cu[b], cu[b + 1])
  // Strides in bytes. Padded token (b, s), head h at b·padded_stride[0] + s·padded_stride[1] + h·padded_stride[2];
  // packed token t, head h at t·packed_stride[0] + h·packed_stride[1].
  char* padded = nullptr;  int64_t padded_stride[3] = {0, 0, 0};
  char* packed = nullptr;  int64_t packed_stride[2] = {0, 0};
  // Unpack only: also write zeros to the padding rows s in [len_b, S) of every
  // sequence (a caller's reused buffer). Off for a new buffer, which V8 has
  // zero-filled already: touching its pads would only add page faults.
  bool zero_padding = false;
  int64_t S = 0;  // padded rows per sequence; read only with zero_padding
};

enum class CopyDirection { Pack, Unpack };

// Pack: packed token cu[b] + s = padded (b, s) for s < len_b. Unpack: the
// reverse, plus zeros in the padding rows when c.zero_padding. Bytes are
// copied as they are, whatever the dtype.
void copy_sequences(const SequenceCopy& c, CopyDirection dir, int threads);

}  // namespace fmha
