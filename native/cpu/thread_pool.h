// fmha's process-wide CPU pool: one parallel region at a time, the calling
// thread joins as worker 0, so a region uses exactly `threads` threads.
#pragma once
#include <cstdint>
#include <functional>

namespace fmha {

// Default thread count: FMHA_NUM_THREADS if set, else hardware concurrency.
int default_num_threads();
int get_num_threads();
void set_num_threads(int n);

// Runs fn(task, thread) for task in [0, ntasks) on up to `threads` threads
// (thread in [0, threads)); tasks are handed out dynamically in increasing
// order. Blocks until all tasks finish. Regions from different callers run one
// after another. fn must not throw.
void parallel_for(int threads, int64_t ntasks, const std::function<void(int64_t task, int thread)>& fn);

// parallel_for that never waits for another caller's region: while the pool is
// busy (an async attention call), every task runs on the calling thread. For
// short synchronous work on the JS thread (packSequences) that must not stall
// the event loop behind a long kernel.
void parallel_for_unless_busy(int threads, int64_t ntasks, const std::function<void(int64_t task, int thread)>& fn);

}  // namespace fmha
