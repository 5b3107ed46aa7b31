#include "cpu/work_partition.h"

#include <algorithm>

namespace fmha {

std::vector<int64_t> equal_cost_chunks(const std::vector<int64_t>& prefix, int64_t chunks) {
  const int64_t units = int64_t(prefix.size()) - 1;
  std::vector<int64_t> bounds{0};
  if (units <= 0) return bounds;
  const double total = double(prefix.back());
  chunks = std::max<int64_t>(1, std::min(chunks, units));
  for (int64_t c = 1; c < chunks; ++c) {
    const double target = total * double(c) / double(chunks);
    // First unit whose cost prefix reaches the target; at least one unit past the previous bound.
    int64_t u = std::lower_bound(prefix.begin(), prefix.end(), target,
                                 [](int64_t v, double t) { return double(v) < t; }) - prefix.begin();
    u = std::max(u, bounds.back() + 1);
    if (u >= units) break;
    bounds.push_back(u);
  }
  bounds.push_back(units);
  return bounds;
}

}  // namespace fmha
