// tensor.h — non-owning views of weight matrices as they lie in memory
// (usually inside an mmap'd file), in their stored type.
#pragma once
#include <cstddef>
#include <cstdint>

#include "core/dtype.h"

namespace ms {

// A row-major matrix [rows][cols] of `dtype`. Row r starts at data + r*row_stride.
// For block types each row is cols/block_elems(dtype) whole blocks.
struct MatView {
  DType dtype = DType::F32;
  int64_t rows = 0;
  int64_t cols = 0;
  const uint8_t* data = nullptr;
  size_t row_stride = 0;  // bytes between consecutive rows (>= row_bytes(dtype, cols))
  // Rows interleaved in panels of 16 for the SIMD kernels (ops::repack_panels):
  // only ops::matmul / matmul_q may read such a matrix; row() does not apply.
  bool panel16 = false;

  const uint8_t* row(int64_t r) const { return data + size_t(r) * row_stride; }
  bool empty() const { return data == nullptr; }
  // Rows [r0, r0+n) as a view.
  MatView slice_rows(int64_t r0, int64_t n) const {
    MatView v = *this;
    v.rows = n;
    v.data = row(r0);
    return v;
  }
};

inline MatView make_mat(DType t, int64_t rows, int64_t cols, const void* data) {
  MatView m;
  m.dtype = t;
  m.rows = rows;
  m.cols = cols;
  m.data = static_cast<const uint8_t*>(data);
  m.row_stride = row_bytes(t, cols);
  return m;
}

}  // namespace ms
