// ByteTransformer's padding removal and rebuild (DESIGN §5): copies token rows
// between a padded [B, S, H, D] batch and packed [T, H, D] tokens laid out by
// cu_seqlens. Pure memory copies: as few memcpys as the strides allow (one per
// sequence when both sides are contiguous), split into equal token ranges over
// fmha's pool when the copy is big enough to pay for waking it and the pool is
// not busy with an async call (a synchronous copy must not wait behind one).
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
};

enum class CopyDirection { Pack, Unpack };

// Pack: packed token cu[b] + s = padded (b, s) for s < len_b. Unpack: the
// reverse; padded rows s ≥ len_b are not written (the binding hands in a new,
// zero-filled buffer). Bytes are copied as they are, whatever the dtype.
void copy_sequences(const SequenceCopy& c, CopyDirection dir, int threads);

}  // namespace fmha
