// Splitting a list of work units into contiguous chunks of near-equal cost, so
// that causal masks, ragged lengths and GQA groups keep every thread busy while
// units that share packed K/V stay together. Kept apart from the kernels (and
// free of them) so varlen and decode scheduling can reuse and test it.
#pragma once
#include <cstdint>
#include <vector>

namespace fmha {

// prefix[i] is the total cost of units [0, i) (prefix.size() == units + 1,
// non-decreasing, prefix[0] == 0). Returns chunk boundaries b (b.front() == 0,
// b.back() == units, strictly increasing): chunk c is units [b[c], b[c+1]).
// Each boundary is the first unit at which the prefix cost reaches c/chunks of
// the total, so no chunk is empty and at most `chunks` chunks are returned.
std::vector<int64_t> equal_cost_chunks(const std::vector<int64_t>& prefix, int64_t chunks);

}  // namespace fmha
