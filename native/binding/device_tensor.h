// The native half of DeviceTensor (lib/device.ts). A DeviceTensor's `handle`
// is an External, type-tagged as fmha's, that holds a reference to a device
// block (core/device.h). dispose() drops the reference at once; the External's
// finalizer drops it for a forgotten tensor. Calls in flight hold their own
// references, so the block returns to the cache when the last of them ends.
#pragma once
#include <napi.h>
#include <cstdint>
#include "core/device.h"

namespace fmha {

struct DeviceHandle {
  DeviceBufferPtr storage;     // null once disposed
  int64_t offset_bytes = 0;    // a view's first byte within the block
  int64_t external_bytes = 0;  // reported to V8 as external memory by this handle (the block's owner)
};

// A new handle. `owner`: this handle stands for the block (not a view of it),
// and reports its size to V8 so that forgotten DeviceTensors are collected
// under device memory pressure, not only host memory pressure.
Napi::Value make_device_handle(Napi::Env env, DeviceBufferPtr storage, int64_t offset_bytes, bool owner);

// The handle behind v when v is one fmha made, else null.
DeviceHandle* device_handle(const Napi::Value& v);

// Throws ERR_FMHA_BACKEND with query_cuda()'s reason when CUDA is unavailable,
// and ERR_FMHA_ARGUMENT when `device` is not a device index.
void expect_cuda_device(int64_t device, const std::string& what);

}  // namespace fmha
