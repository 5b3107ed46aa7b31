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
  if (t == DType::F32) {
    mk.transpose(static_cast<const float*>(base), row_stride, rows, cols, alpha, dst, ld);
    return;
  }
  for (int r0 = 0; r0 < rows; r0 += kTransposeRows) {
    const int n = rows - r0 < kTransposeRows ? rows - r0 : kTransposeRows;
    pack_rows(mk, row_ptr(base, t, r0 * row_stride), t, row_stride, n, cols, 1.0f, row_tmp, cols);
    mk.transpose(row_tmp, cols, n, cols, alpha, dst + r0, ld);
  }
}

}  // namespace fmha
