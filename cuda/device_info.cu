// query_cuda() for CUDA builds: which devices exist, answered once, never throwing.
//
// The CUDA runtime is linked statically (CUDA::cudart_static), so this code runs
// on machines without a GPU or without a driver; the runtime reports that as an
// error code, which becomes CudaInfo::reason.
#include <cuda_runtime_api.h>

#include <exception>
#include <string>
#include <utility>

#include "core/cuda_info.h"

namespace fmha {
namespace {

std::string cuda_error_text(const char* what, cudaError_t err) {
  std::string text = what;
  text += ": ";
  const char* name = cudaGetErrorName(err);
  const char* desc = cudaGetErrorString(err);
  text += desc ? desc : "unknown CUDA error";
  if (name) {
    text += " (";
    text += name;
    text += ")";
  }
  return text;
}

std::string version_text(int v) {  // 12040 -> "12.4"
  return std::to_string(v / 1000) + "." + std::to_string((v % 1000) / 10);
}

CudaInfo unavailable(std::string reason) {
  CudaInfo info;
  info.available = false;
  info.reason = std::move(reason);
  return info;
}

CudaInfo discover() noexcept {
  try {
    int count = 0;
    cudaError_t err = cudaGetDeviceCount(&count);
    if (err == cudaErrorNoDevice) {
      cudaGetLastError();  // clear the runtime's last-error slot
      return unavailable("no CUDA device");
    }
    if (err != cudaSuccess) {
      // No driver (libcuda.so missing) or one older than this runtime:
      // cudaErrorInsufficientDriver, "CUDA driver version is insufficient for
      // CUDA runtime version". Say which versions were found.
      cudaGetLastError();
      std::string reason = cuda_error_text("cudaGetDeviceCount", err);
      int driver = 0, runtime = 0;
      if (cudaDriverGetVersion(&driver) == cudaSuccess && cudaRuntimeGetVersion(&runtime) == cudaSuccess) {
        reason += driver == 0 ? "; no CUDA driver installed"
                              : "; driver supports CUDA " + version_text(driver);
        reason += ", runtime is CUDA " + version_text(runtime);
      }
      cudaGetLastError();
      return unavailable(std::move(reason));
    }
    if (count <= 0) {
      return unavailable("no CUDA device");
    }

    CudaInfo info;
    info.devices.reserve(static_cast<std::size_t>(count));
    std::string first_error;
    for (int i = 0; i < count; ++i) {
      cudaDeviceProp prop{};
      err = cudaGetDeviceProperties(&prop, i);
      if (err != cudaSuccess) {
        cudaGetLastError();
        if (first_error.empty()) {
          first_error = cuda_error_text("cudaGetDeviceProperties", err) + " for device " + std::to_string(i);
        }
        continue;
      }
      CudaDevice dev;
      dev.index = i;
      dev.name = prop.name;
      dev.major = prop.major;
      dev.minor = prop.minor;
      dev.total_memory = prop.totalGlobalMem;
      dev.multiprocessors = prop.multiProcessorCount;
      info.devices.push_back(std::move(dev));
    }
    if (info.devices.empty()) {
      return unavailable(first_error.empty() ? std::string("no CUDA device") : first_error);
    }
    info.available = true;
    return info;
  } catch (const std::exception& e) {
    return unavailable(std::string("CUDA device query failed: ") + e.what());
  } catch (...) {
    return unavailable("CUDA device query failed");
  }
}

}  // namespace

CudaInfo query_cuda() {
  // Thread-safe one-time initialization (C++11 magic static); the answer does
  // not change during the process' life (CUDA itself caches device enumeration).
  static const CudaInfo cached = discover();
  try {
    return cached;
  } catch (...) {  // copying can only fail on allocation
    CudaInfo info;
    info.available = false;
    return info;
  }
}

}  // namespace fmha
