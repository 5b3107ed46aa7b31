#include "cpu/machine_probes.h"

#include <algorithm>
#include <atomic>
#include <chrono>
#include <memory>
#include <new>
#include <string>

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

Status measure_read_gbps(int threads, int64_t bytes, int passes, double* gbps) {
  const CpuMicrokernels& mk = cpu_microkernels(cpu_features().isa);
  const int64_t n = bytes / int64_t(sizeof(float));
  std::unique_ptr<float[]> buf(new (std::nothrow) float[size_t(n)]);
  if (!buf) return {StatusCode::OutOfMemory, "measureMemoryBandwidth: allocating " + std::to_string(bytes) + " bytes failed"};
  // Each thread first-touches its own slice (pages land near the thread that reads them).
  const int64_t slice = (n + threads - 1) / threads;
  auto each_slice = [&](auto fn) {
    parallel_for(threads, threads, [&](int64_t t, int) {
      const int64_t lo = t * slice, hi = std::min(n, lo + slice);
      if (lo < hi) fn(buf.get() + lo, hi - lo);
    });
  };
  each_slice([](float* x, int64_t m) { for (int64_t i = 0; i < m; ++i) x[i] = 1.0f; });
  using clock = std::chrono::steady_clock;
  std::atomic<float> sink{0};
  double best = 0;
  for (int pass = 0; pass <= passes; ++pass) {
    const auto t0 = clock::now();
    each_slice([&](float* x, int64_t m) { sink.store(mk.read_sum(x, m), std::memory_order_relaxed); });
    const double secs = std::chrono::duration<double>(clock::now() - t0).count();
    if (pass > 0) best = std::max(best, double(n) * sizeof(float) / secs / 1e9);  // pass 0 warms up
  }
  *gbps = best;
  return {};
}

}  // namespace fmha
