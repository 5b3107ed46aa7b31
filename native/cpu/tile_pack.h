// Copies tiles of [*, S, H, D] tensors into float32 scratch laid out for the
// microkernels, converting 16-bit types on the way. Shared by both CPU kernels.
#pragma once
#include <cstdint>
#include "core/dtype.h"
#include "cpu/microkernels.h"

namespace fmha {

// Address of the element `offset_elems` elements past base.
inline const void* row_ptr(const void* base, DType t, int64_t offset_elems) {
  return static_cast<const char*>(base) + offset_elems * dtype_size(t);
}

// dst[r·ld + c] = alpha · src_r[c], r < rows, c < cols; src_r = base + r·row_stride (elements).
void pack_rows(const CpuMicrokernels& mk, const void* base, DType t, int64_t row_stride, int rows,
               int cols, float alpha, float* dst, int64_t ld);

// Rows of 16-bit data pack_transposed converts at a time: its row_tmp holds
// kTransposeRows × cols floats.
constexpr int kTransposeRows = 16;

// dst[c·ld + r] = alpha · src_r[c] (transposed: a K tile becomes Kᵀ, D × rows).
void pack_transposed(const CpuMicrokernels& mk, const void* base, DType t, int64_t row_stride, int rows,
                     int cols, float alpha, float* dst, int64_t ld, float* row_tmp);

}  // namespace fmha
