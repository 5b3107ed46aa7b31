#include "binding/async_queue.h"

#include <condition_variable>
#include <deque>
#include <mutex>
#include <thread>

namespace fmha {
namespace {

struct Entry;
void deliver(Napi::Env env, Napi::Function, std::nullptr_t*, Entry* e);
using Tsfn = Napi::TypedThreadSafeFunction<std::nullptr_t, Entry, deliver>;

struct Entry {
  std::unique_ptr<AsyncJob> job;
  std::shared_ptr<EnvState::Flight> flight;
  Status status;
  Tsfn tsfn;
};

void deliver(Napi::Env env, Napi::Function, std::nullptr_t*, Entry* e) {
  if (env != nullptr) {
    // An environment being terminated (worker.terminate()) refuses to run JS:
    // settling the promise then fails and node-addon-api throws. Nobody is left
    // to see the result, and no exception may escape into Node.
    try {
      e->job->complete(env, e->status);
    } catch (...) {
    }
  } else {
    e->job->abandon();  // environment torn down before the result arrived
  }
  delete e;
}

// Drops an entry that will never be delivered; any thread.
void discard(Entry* e) {
  Tsfn tsfn = e->tsfn;
  e->job->abandon();
  delete e;
  tsfn.Release();
}

class Dispatcher {
 public:
  void push(Entry* e) {
    {
      std::lock_guard<std::mutex> lock(mutex_);
      queue_.push_back(e);
      if (!started_) {
        started_ = true;
        std::thread([this] { loop(); }).detach();  // lives for the process
      }
    }
    ready_.notify_one();
  }

  // Removes the queued (not yet started) entries of one environment.
  std::deque<Entry*> take(const EnvState::Flight* flight) {
    std::lock_guard<std::mutex> lock(mutex_);
    std::deque<Entry*> mine, rest;
    for (Entry* e : queue_) (e->flight.get() == flight ? mine : rest).push_back(e);
    queue_.swap(rest);
    return mine;
  }

 private:
  void loop() {
    for (;;) {
      Entry* e;
      std::shared_ptr<EnvState::Flight> flight;
      {
        std::unique_lock<std::mutex> lock(mutex_);
        ready_.wait(lock, [&] { return !queue_.empty(); });
        e = queue_.front();
        queue_.pop_front();
        flight = e->flight;
        // Counted while still under the queue lock, so a concurrent take() + drain
        // either removes this entry or waits for it: never a gap in between.
        std::lock_guard<std::mutex> fl(flight->mutex);
        ++flight->running;
      }
      process(e);
      std::lock_guard<std::mutex> fl(flight->mutex);
      if (--flight->running == 0) flight->idle.notify_all();
    }
  }

  // Runs the job and hands it to its environment; the thread-safe function is
  // touched only while counted in flight->running (see drain_async).
  static void process(Entry* e) {
    if (__atomic_load_n(&e->flight->closing, __ATOMIC_RELAXED)) {
      e->status = {StatusCode::Aborted, "the JS environment is shutting down"};
    } else {
      try {
        e->status = e->job->run(&e->flight->closing);
      } catch (const std::bad_alloc&) {
        e->status = {StatusCode::OutOfMemory, "out of memory"};
      } catch (...) {
        e->status = {StatusCode::Backend, "fmha internal error"};
      }
    }
    Tsfn tsfn = e->tsfn;  // e is deleted by deliver() once the call lands
    if (tsfn.BlockingCall(e) != napi_ok) {
      e->job->abandon();
      delete e;
    }
    tsfn.Release();
  }

  std::mutex mutex_;
  std::condition_variable ready_;
  std::deque<Entry*> queue_;
  bool started_ = false;
};

Dispatcher& dispatcher() {
  static Dispatcher* d = new Dispatcher();  // leaked on purpose: its thread outlives static destruction
  return *d;
}

}  // namespace

void submit_async(Napi::Env env, std::unique_ptr<AsyncJob> job) {
  auto e = std::make_unique<Entry>();
  e->job = std::move(job);
  e->flight = env_state(env).flight;
  e->tsfn = Tsfn::New(env, "fmha.attention", 0, 1);
  dispatcher().push(e.release());
}

void drain_async(EnvState::Flight& f) {
  __atomic_store_n(&f.closing, 1, __ATOMIC_RELAXED);
  for (Entry* e : dispatcher().take(&f)) discard(e);
  std::unique_lock<std::mutex> lock(f.mutex);
  f.idle.wait(lock, [&] { return f.running == 0; });
}

}  // namespace fmha
