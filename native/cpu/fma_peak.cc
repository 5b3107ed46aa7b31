#include "cpu/fma_peak.h"

#include <atomic>
#include <chrono>

#include "cpu/cpu_features.h"
#include "cpu/microkernels.h"
#include "cpu/thread_pool.h"

namespace fmha {

double measure_fma_gflops(int threads, double seconds) {
  const CpuMicrokernels& mk = cpu_microkernels(cpu_features().isa);
  using clock = std::chrono::steady_clock;
  // Calibrate on one thread (this also wakes the core up), then size the run.
  int64_t iters = 1 << 16;
  double secs = 0;
  for (;;) {
    const auto t0 = clock::now();
    mk.fma_probe(iters);
    secs = std::chrono::duration<double>(clock::now() - t0).count();
    if (secs > 0.02) break;
    iters *= 4;
  }
  iters = int64_t(double(iters) * seconds / secs);
  std::atomic<double> flops{0};
  const auto t0 = clock::now();
  parallel_for(threads, threads, [&](int64_t, int) {
    const double f = mk.fma_probe(iters);
    double cur = flops.load();
    while (!flops.compare_exchange_weak(cur, cur + f)) {}
  });
  return flops.load() / std::chrono::duration<double>(clock::now() - t0).count() / 1e9;
}

}  // namespace fmha
