// How decode work is cut among workers (LeanAttention, DESIGN §5), apart from
// any kernel so it can be tested alone and shared by the CPU and CUDA paths.
//
// A unit is what one piece of work belongs to, with a cost in key tiles: on
// the CPU a whole sequence (all kv heads, see cpu/decode_attention.cc), in
// DESIGN's terms one (sequence, kv head) pair. A piece is a contiguous tile range of one unit, computed by one worker
// into a partial softmax state (max, sum, accumulator); a unit cut into several
// pieces is merged afterwards by an exact log-sum-exp reduction in piece order,
// so results never depend on which worker ran what.
#pragma once
#include <cstdint>
#include <vector>
#include "core/decode_params.h"

namespace fmha {

struct TileSpan {
  int64_t begin = 0, end = 0;  // the unit's tiles [begin, end); empty: it sees no key
};

struct DecodePiece {
  int64_t unit = 0, begin = 0, end = 0;  // tiles [begin, end) of `unit`
};

struct DecodePlan {
  // In (unit, begin) order. Every unit has at least one piece (an empty one if
  // its span is empty), and its pieces tile its span contiguously.
  std::vector<DecodePiece> pieces;
  // Unit u's pieces are pieces[unit_pieces[u] .. unit_pieces[u + 1]).
  std::vector<int64_t> unit_pieces;
  // Task t runs pieces[tasks[t] .. tasks[t + 1]) in order, on one worker.
  std::vector<int64_t> tasks;
};

// Lean: the total tiles of all units are cut into `workers` contiguous ranges
// of equal size (±1 tile), crossing unit boundaries (stream-K); one task per
// worker. Split: every unit is cut into the same number of near-equal pieces
// (FlashDecoding), enough for units × splits to reach `workers`; one task per
// piece. Single: one piece and one task per unit. `strategy` must not be Auto.
DecodePlan plan_decode(const std::vector<TileSpan>& units, DecodeStrategy strategy, int64_t workers);

}  // namespace fmha
