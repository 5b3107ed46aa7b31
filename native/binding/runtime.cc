// [sync] init, backends, setNumThreads, and the process-wide settings.
#include <unistd.h>

#include <cmath>
#include <cstdlib>

#include "binding/env_state.h"
#include "binding/errors.h"
#include "binding/exports.h"
#include "binding/runtime_config.h"
#include "core/cuda_info.h"
#include "cpu/cpu_features.h"
#include "cpu/machine_probes.h"
#include "cpu/thread_pool.h"

namespace fmha {
namespace {

int64_t read_max_scratch() {
  if (const char* env = std::getenv("FMHA_MAX_SCRATCH_BYTES")) {
    char* end = nullptr;
    const long long v = std::strtoll(env, &end, 10);
    if (end != env && v > 0) return v;
  }
  const long pages = sysconf(_SC_PHYS_PAGES), page = sysconf(_SC_PAGESIZE);
  return pages > 0 && page > 0 ? int64_t(pages) * page / 2 : (int64_t(1) << 32);
}

// [sync] init(FmhaError): registers the error class this environment throws.
Napi::Value init(const Napi::CallbackInfo& info) {
  return guard(info.Env(), [&]() -> Napi::Value {
    if (!info[0].IsFunction()) fail(code::kArgument, "init expects the FmhaError class");
    env_state(info.Env()).error_class = Napi::Persistent(info[0].As<Napi::Function>());
    return info.Env().Undefined();
  });
}

Napi::Value backends(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  return guard(env, [&]() -> Napi::Value {
    const CpuFeatures& f = cpu_features();
    Napi::Object cpu = Napi::Object::New(env);
    cpu.Set("isa", isa_name(f.isa));
    cpu.Set("threads", get_num_threads());
    cpu.Set("amx", f.amx_bf16);

    const CudaInfo& c = query_cuda();
    Napi::Object cuda = Napi::Object::New(env);
    cuda.Set("available", c.available);
    if (!c.available) cuda.Set("reason", c.reason);
    Napi::Array devices = Napi::Array::New(env, c.devices.size());
    for (uint32_t i = 0; i < c.devices.size(); ++i) {
      const CudaDevice& d = c.devices[i];
      Napi::Object o = Napi::Object::New(env);
      o.Set("index", d.index);
      o.Set("name", d.name);
      o.Set("computeCapability", std::to_string(d.major) + "." + std::to_string(d.minor));
      o.Set("totalMemory", double(d.total_memory));
      o.Set("multiprocessors", d.multiprocessors);
      devices.Set(i, o);
    }
    cuda.Set("devices", devices);

    Napi::Object r = Napi::Object::New(env);
    r.Set("cpu", cpu);
    r.Set("cuda", cuda);
    return r;
  });
}

Napi::Value js_set_num_threads(const Napi::CallbackInfo& info) {
  return guard(info.Env(), [&]() -> Napi::Value {
    const double n = info[0].IsNumber() ? info[0].As<Napi::Number>().DoubleValue() : NAN;
    if (!(n >= 1 && n <= 1024) || std::floor(n) != n)
      fail(code::kArgument, "setNumThreads(n): n must be an integer in [1, 1024], got " + describe(info[0]));
    set_num_threads(int(n));
    return info.Env().Undefined();
  });
}

// Blocks the calling thread for about `seconds` (0.01–10): meant for benchmarks.
Napi::Value measure_cpu_peak(const Napi::CallbackInfo& info) {
  return guard(info.Env(), [&]() -> Napi::Value {
    const double secs = info[0].IsUndefined() ? 0.25 : info[0].IsNumber() ? info[0].As<Napi::Number>().DoubleValue() : NAN;
    if (!(secs >= 0.01 && secs <= 10))
      fail(code::kArgument, "measureCpuPeak(seconds): seconds must be in [0.01, 10], got " + describe(info[0]));
    const int threads = get_num_threads();
    Napi::Object r = Napi::Object::New(info.Env());
    r.Set("gflops", measure_fma_gflops(threads, secs));
    r.Set("threads", threads);
    r.Set("isa", isa_name(cpu_features().isa));
    return r;
  });
}

// Blocks the calling thread: allocates and reads `mib` MiB (16–16384) a few times.
Napi::Value measure_memory_bandwidth(const Napi::CallbackInfo& info) {
  return guard(info.Env(), [&]() -> Napi::Value {
    const double mib = info[0].IsUndefined() ? 512 : info[0].IsNumber() ? info[0].As<Napi::Number>().DoubleValue() : NAN;
    if (!(mib >= 16 && mib <= 16384) || std::floor(mib) != mib)
      fail(code::kArgument, "measureMemoryBandwidth(mib): mib must be an integer in [16, 16384], got " + describe(info[0]));
    const int threads = get_num_threads();
    double gbps = 0;
    const Status st = measure_read_gbps(threads, int64_t(mib) << 20, 3, &gbps);
    if (!st.ok()) throw status_error(info.Env(), st);
    Napi::Object r = Napi::Object::New(info.Env());
    r.Set("gbps", gbps);
    r.Set("bytes", double(int64_t(mib) << 20));
    r.Set("threads", threads);
    return r;
  });
}

}  // namespace

int64_t max_scratch_bytes() {
  static const int64_t v = read_max_scratch();
  return v;
}

ExecContext call_context(const int32_t* abort_flag) {
  ExecContext ctx;
  ctx.num_threads = get_num_threads();
  ctx.abort_flag = abort_flag;
  ctx.max_scratch_bytes = max_scratch_bytes();
  return ctx;
}

void register_runtime(Napi::Env env, Napi::Object exports) {
  exports.Set("init", Napi::Function::New(env, init, "init"));
  exports.Set("backends", Napi::Function::New(env, backends, "backends"));
  exports.Set("setNumThreads", Napi::Function::New(env, js_set_num_threads, "setNumThreads"));
  exports.Set("measureCpuPeak", Napi::Function::New(env, measure_cpu_peak, "measureCpuPeak"));
  exports.Set("measureMemoryBandwidth", Napi::Function::New(env, measure_memory_bandwidth, "measureMemoryBandwidth"));
}

}  // namespace fmha
