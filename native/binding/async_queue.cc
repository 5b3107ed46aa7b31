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
  if (env != nullptr) e->job->complete(env, e->status);
  else e->job->abandon();  // environment torn down before the result arrived
  delete e;
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

 private:
  void loop() {
    for (;;) {
      Entry* e;
      {
        std::unique_lock<std::mutex> lock(mutex_);
        ready_.wait(lock, [&] { return !queue_.empty(); });
        e = queue_.front();
        queue_.pop_front();
      }
      run(e);
      Tsfn tsfn = e->tsfn;  // e is deleted by deliver() once the call lands
      if (tsfn.BlockingCall(e) != napi_ok) {
        e->job->abandon();
        delete e;
      }
      tsfn.Release();
    }
  }

  static void run(Entry* e) {
    EnvState::Flight& f = *e->flight;
    {
      std::lock_guard<std::mutex> lock(f.mutex);
      if (f.closing) {
        e->status = {StatusCode::Aborted, "the JS environment is shutting down"};
        return;
      }
      ++f.running;
    }
    try {
      e->status = e->job->run(&f.closing);
    } catch (const std::bad_alloc&) {
      e->status = {StatusCode::OutOfMemory, "out of memory"};
    } catch (...) {
      e->status = {StatusCode::Backend, "fmha internal error"};
    }
    std::lock_guard<std::mutex> lock(f.mutex);
    if (--f.running == 0) f.idle.notify_all();
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
  std::unique_lock<std::mutex> lock(f.mutex);
  __atomic_store_n(&f.closing, 1, __ATOMIC_RELAXED);
  f.idle.wait(lock, [&] { return f.running == 0; });
}

}  // namespace fmha
