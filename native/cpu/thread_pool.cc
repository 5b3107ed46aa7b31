#include "cpu/thread_pool.h"

#include <algorithm>
#include <atomic>
#include <condition_variable>
#include <cstdlib>
#include <mutex>
#include <thread>
#include <vector>

namespace fmha {
namespace {

class Pool {
 public:
  // wait = false: when another region holds the pool, run inline instead of waiting for it.
  void run(int threads, int64_t ntasks, const std::function<void(int64_t, int)>& fn, bool wait) {
    threads = int(std::max<int64_t>(1, std::min<int64_t>(threads, ntasks)));
    std::unique_lock<std::mutex> region(region_mutex_, std::defer_lock);  // one region at a time
    bool pooled = threads > 1;
    if (pooled && wait) region.lock();
    else if (pooled) pooled = region.try_lock();
    if (!pooled) {
      for (int64_t t = 0; t < ntasks; ++t) fn(t, 0);
      return;
    }
    grow(threads - 1);
    {
      std::lock_guard<std::mutex> lock(mutex_);
      fn_ = &fn;
      ntasks_ = ntasks;
      next_.store(0, std::memory_order_relaxed);
      participants_ = threads - 1;
      pending_ = threads - 1;
      ++generation_;
    }
    wake_.notify_all();
    work(0);
    std::unique_lock<std::mutex> lock(mutex_);
    done_.wait(lock, [&] { return pending_ == 0; });
    fn_ = nullptr;
  }

 private:
  void grow(int workers) {
    while (int(threads_.size()) < workers) {
      const int id = int(threads_.size()) + 1;
      threads_.emplace_back([this, id] { loop(id); });
      threads_.back().detach();  // the pool lives for the process; never joined at exit
    }
  }

  void work(int id) {
    for (;;) {
      const int64_t t = next_.fetch_add(1, std::memory_order_relaxed);
      if (t >= ntasks_) break;
      (*fn_)(t, id);
    }
  }

  void loop(int id) {
    uint64_t seen = 0;
    for (;;) {
      {
        std::unique_lock<std::mutex> lock(mutex_);
        wake_.wait(lock, [&] { return generation_ != seen; });
        seen = generation_;
        if (id > participants_) continue;  // not needed in this region
      }
      work(id);
      std::lock_guard<std::mutex> lock(mutex_);
      if (--pending_ == 0) done_.notify_one();
    }
  }

  std::mutex region_mutex_;
  std::mutex mutex_;
  std::condition_variable wake_, done_;
  std::vector<std::thread> threads_;
  const std::function<void(int64_t, int)>* fn_ = nullptr;
  int64_t ntasks_ = 0;
  std::atomic<int64_t> next_{0};
  int participants_ = 0, pending_ = 0;
  uint64_t generation_ = 0;
};

Pool& pool() {
  static Pool* p = new Pool();  // leaked on purpose: detached workers outlive static destruction
  return *p;
}

std::atomic<int> g_threads{0};

}  // namespace

int default_num_threads() {
  if (const char* env = std::getenv("FMHA_NUM_THREADS")) {
    const long n = std::strtol(env, nullptr, 10);
    if (n >= 1 && n <= 1024) return int(n);
  }
  return std::max(1u, std::thread::hardware_concurrency());
}

int get_num_threads() {
  int n = g_threads.load(std::memory_order_relaxed);
  if (n == 0) {
    n = default_num_threads();
    int expected = 0;
    g_threads.compare_exchange_strong(expected, n);
    n = g_threads.load();
  }
  return n;
}

void set_num_threads(int n) { g_threads.store(n); }

void parallel_for(int threads, int64_t ntasks, const std::function<void(int64_t, int)>& fn) {
  if (ntasks <= 0) return;
  pool().run(threads, ntasks, fn, true);
}

void parallel_for_unless_busy(int threads, int64_t ntasks, const std::function<void(int64_t, int)>& fn) {
  if (ntasks <= 0) return;
  pool().run(threads, ntasks, fn, false);
}

}  // namespace fmha
