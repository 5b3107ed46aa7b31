// core/device.h for builds without CUDA (FMHA_HAVE_CUDA undefined): every
// call reports Backend "built without CUDA". The binding checks
// query_cuda().available before it gets here, so these only keep the link
// whole. CUDA builds get the real thing from cuda/device_memory.cu; this file
// then compiles to nothing.
#include "core/device.h"

#ifndef FMHA_HAVE_CUDA

namespace fmha {
namespace {

Status no_cuda() { return {StatusCode::Backend, "built without CUDA"}; }

}  // namespace

Status DeviceBuffer::allocate(int, size_t bytes, std::shared_ptr<DeviceBuffer>*) { return no_cuda(); }
DeviceBuffer::~DeviceBuffer() = default;

void* DeviceArena::alloc(size_t) {
  if (status_.ok()) status_ = no_cuda();
  return nullptr;
}

Status device_upload_small(int, const std::vector<DeviceUpload>&) { return no_cuda(); }
Status device_upload(int, void*, const void*, size_t) { return no_cuda(); }
Status device_download(int, void*, const void*, size_t) { return no_cuda(); }
Status device_download_2d(int, void*, size_t, const void*, size_t, size_t, size_t) { return no_cuda(); }
Status device_memset(int, void*, int, size_t) { return no_cuda(); }
Status device_fill_f32(int, float*, int64_t, float) { return no_cuda(); }
Status device_synchronize(int) { return no_cuda(); }
Status device_stream(int, void** stream) {
  *stream = nullptr;
  return no_cuda();
}
Status device_check_launch(int, const char*) { return no_cuda(); }
DeviceMemoryStats device_memory_stats(int) { return {}; }
Status device_empty_cache(int) { return no_cuda(); }
Status device_time(int, int, Status (*)(void*), void*, double* ms) {
  *ms = 0;
  return no_cuda();
}

}  // namespace fmha

#endif  // FMHA_HAVE_CUDA
