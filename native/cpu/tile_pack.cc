#include "cpu/tile_pack.h"

namespace fmha {

void pack_rows(const CpuMicrokernels& mk, const void* base, DType t, int64_t row_stride, int rows,
               int cols, float alpha, float* dst, int64_t ld) {
  for (int r = 0; r < rows; ++r) {
    float* d = dst + r * ld;
    mk.load_row(row_ptr(base, t, r * row_stride), t, cols, d);
    if (alpha != 1.0f) mk.scale(d, cols, alpha);
  }
}

void pack_transposed(const CpuMicrokernels& mk, const void* base, DType t, int64_t row_stride, int rows,
                     int cols, float alpha, float* dst, int64_t ld, float* row_tmp) {
  for (int r = 0; r < rows; ++r) {
    mk.load_row(row_ptr(base, t, r * row_stride), t, cols, row_tmp);
    for (int c = 0; c < cols; ++c) dst[c * ld + r] = alpha * row_tmp[c];
  }
}

}  // namespace fmha
