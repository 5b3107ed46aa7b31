// One way to turn a CUDA error into a Status: every runtime call goes through
// FMHA_CUDA_TRY, every kernel launch is followed by FMHA_CUDA_LAUNCHED.
#pragma once
#include <cuda_runtime_api.h>

#include <string>

#include "core/attention_params.h"

namespace fmha {
namespace cudak {

inline Status cuda_status(const char* what, cudaError_t err) {
  const char* text = cudaGetErrorString(err);
  return {StatusCode::Cuda, std::string(what) + ": " + (text ? text : "unknown CUDA error")};
}

}  // namespace cudak
}  // namespace fmha

// Evaluates a cudaError_t expression; returns a Cuda Status from the enclosing function on failure.
#define FMHA_CUDA_TRY(expr, what)                                   \
  do {                                                              \
    const cudaError_t fmha_err_ = (expr);                           \
    if (fmha_err_ != cudaSuccess) return ::fmha::cudak::cuda_status((what), fmha_err_); \
  } while (0)

// After a <<<...>>> launch: configuration errors surface here (execution errors surface on the stream later).
#define FMHA_CUDA_LAUNCHED(what) FMHA_CUDA_TRY(cudaGetLastError(), (what))
