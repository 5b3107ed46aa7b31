// Validates the sequence-length arguments of the varlen layout (DESIGN §2, §4):
// cuSeqlens prefix sums, a caller's maxSeqlen / seqLen, and packSequences'
// lengths. Shared by varlenAttention and unpack/packSequences so each check exists once.
#pragma once
#include <napi.h>
#include <cstdint>
#include <string>
#include <vector>

namespace fmha {

struct CuSeqlensArg {
  // A copy of the validated array: kernels read it off the main thread, and a
  // caller writing to the Int32Array mid-call must not move a row out of bounds.
  std::vector<int32_t> values;
  int64_t batch = 0;    // values.size() − 1
  int64_t max_len = 0;  // the longest sequence
};

// An Int32Array (else ERR_FMHA_DTYPE) of at least one entry (else ERR_FMHA_SHAPE)
// that starts at 0, never decreases and ends at or before `tokens`, the rows of
// `tokens_of` (else ERR_FMHA_ARGUMENT).
CuSeqlensArg read_cu_seqlens(const Napi::Value& v, const std::string& name, int64_t tokens,
                             const std::string& tokens_of);

// An optional integer ≥ longest (the real maximum; else ERR_FMHA_ARGUMENT); longest when undefined.
int64_t read_max_seqlen(const Napi::Value& v, const std::string& name, int64_t longest);

// lengths: an Array or typed array (else ERR_FMHA_DTYPE) of `batch` entries
// (else ERR_FMHA_SHAPE), each an integer in [0, max_len] (else ERR_FMHA_ARGUMENT).
std::vector<int64_t> read_lengths(const Napi::Value& v, const std::string& name, int64_t batch, int64_t max_len,
                                  const std::string& max_what);

}  // namespace fmha
