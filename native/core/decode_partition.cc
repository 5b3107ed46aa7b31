#include "core/decode_partition.h"

#include <algorithm>

namespace fmha {
namespace {

int64_t tiles(const TileSpan& s) { return std::max<int64_t>(0, s.end - s.begin); }

// Stream-K: worker w owns global tiles [total·w / W, total·(w+1) / W).
void plan_lean(const std::vector<TileSpan>& units, int64_t workers, DecodePlan& plan) {
  int64_t total = 0;
  for (const TileSpan& s : units) total += tiles(s);
  size_t u = 0;
  int64_t start = 0;  // global position of unit u's first tile
  for (int64_t w = 0; w < workers; ++w) {
    plan.tasks.push_back(int64_t(plan.pieces.size()));
    const int64_t lo = total * w / workers, hi = total * (w + 1) / workers;
    const bool last = w + 1 == workers;
    while (u < units.size()) {
      const TileSpan& s = units[u];
      const int64_t n = tiles(s), end = start + n;
      if (n == 0) {  // an empty unit still needs its (empty) output written
        if (start < hi || last) { plan.pieces.push_back({int64_t(u), s.begin, s.begin}); ++u; continue; }
        break;
      }
      const int64_t a = std::max(start, lo), b = std::min(end, hi);
      if (a >= b) break;
      plan.pieces.push_back({int64_t(u), s.begin + (a - start), s.begin + (b - start)});
      if (end > hi) break;  // the rest of this unit belongs to the next worker
      start = end;
      ++u;
    }
  }
  plan.tasks.push_back(int64_t(plan.pieces.size()));
}

void plan_split(const std::vector<TileSpan>& units, int64_t workers, DecodePlan& plan) {
  const int64_t n_units = int64_t(units.size());
  const int64_t splits = std::max<int64_t>(1, (workers + n_units - 1) / n_units);
  for (size_t u = 0; u < units.size(); ++u) {
    const TileSpan& s = units[u];
    const int64_t n = tiles(s), k = std::max<int64_t>(1, std::min(splits, n));
    for (int64_t i = 0; i < k; ++i)
      plan.pieces.push_back({int64_t(u), s.begin + n * i / k, s.begin + n * (i + 1) / k});
  }
  for (size_t i = 0; i <= plan.pieces.size(); ++i) plan.tasks.push_back(int64_t(i));
}

void plan_single(const std::vector<TileSpan>& units, DecodePlan& plan) {
  for (size_t u = 0; u < units.size(); ++u)
    plan.pieces.push_back({int64_t(u), units[u].begin, std::max(units[u].begin, units[u].end)});
  for (size_t i = 0; i <= plan.pieces.size(); ++i) plan.tasks.push_back(int64_t(i));
}

}  // namespace

DecodePlan plan_decode(const std::vector<TileSpan>& units, DecodeStrategy strategy, int64_t workers) {
  DecodePlan plan;
  workers = std::max<int64_t>(1, workers);
  if (units.empty()) {
    plan.unit_pieces.push_back(0);
    plan.tasks.push_back(0);
    return plan;
  }
  if (strategy == DecodeStrategy::Split) plan_split(units, workers, plan);
  else if (strategy == DecodeStrategy::Single) plan_single(units, plan);
  else plan_lean(units, workers, plan);
  plan.unit_pieces.assign(units.size() + 1, 0);
  for (const DecodePiece& p : plan.pieces) ++plan.unit_pieces[size_t(p.unit) + 1];
  for (size_t u = 0; u < units.size(); ++u) plan.unit_pieces[u + 1] += plan.unit_pieces[u];
  return plan;
}

}  // namespace fmha
