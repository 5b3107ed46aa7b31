#include "varlen_work.h"

#include <algorithm>
#include <climits>
#include <cstdint>
#include <string>
#include <vector>

#include "plan_upload.h"

namespace fmha {
namespace cudak {

Status plan_varlen_work(const AttentionParams& p, int block_m, const CudaScratch& scratch, cudaStream_t stream,
                        KernelArgs* a) {
  const int32_t *cq = p.host_cu_seqlens_q, *ck = p.host_cu_seqlens_k;
  if (!cq || !ck)
    return {StatusCode::Backend, "varlen on CUDA needs AttentionParams.host_cu_seqlens_q/k (host copies)"};
  struct Item {
    int64_t cost;
    int32_t b, m;
  };
  std::vector<Item> items;
  for (int64_t b = 0; b < p.B; ++b) {
    const int64_t sq = cq[b + 1] - cq[b], sk = ck[b + 1] - ck[b];
    for (int64_t m = 0; m * block_m < sq; ++m) {
      // Keys the block's last row can see: all of them, or up to the bottom-right causal diagonal.
      const int64_t last = std::min<int64_t>(sq, (m + 1) * block_m) - 1;
      const int64_t keys = p.causal ? std::max<int64_t>(0, std::min<int64_t>(sk, last + 1 + sk - sq)) : sk;
      items.push_back({keys * (std::min<int64_t>(sq, (m + 1) * block_m) - m * block_m), int32_t(b), int32_t(m)});
    }
  }
  if (items.size() > size_t(INT_MAX))
    return {StatusCode::Backend, "varlen on CUDA: " + std::to_string(items.size()) + " query blocks, at most 2^31 − 1"};
  std::stable_sort(items.begin(), items.end(), [](const Item& x, const Item& y) { return x.cost > y.cost; });

  a->work_items = int(items.size());
  std::vector<int32_t> flat(2 * items.size());
  for (size_t i = 0; i < items.size(); ++i) {
    flat[2 * i] = items[i].b;
    flat[2 * i + 1] = items[i].m;
  }
  const size_t bytes = std::max<size_t>(1, flat.size()) * sizeof(int32_t);
  void* d = scratch.alloc(scratch.self, bytes);
  if (!d) return {StatusCode::OutOfMemory, "varlen on CUDA: allocating the " + std::to_string(bytes) + "-byte work list failed"};
  a->work = static_cast<const int32_t*>(d);
  return flat.empty() ? Status{} : upload_plan(d, flat.data(), flat.size() * sizeof(int32_t), stream);
}

}  // namespace cudak
}  // namespace fmha
