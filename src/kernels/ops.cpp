// ops.cpp — run-time dispatch from ops.h to the fastest available kernel.
#include "kernels/ops.h"

#include "core/error.h"
#include "kernels/ref/ref.h"

namespace ms::ops {

void matmul(const MatView& W, const float* X, int64_t ldx, int64_t n, float* Y, int64_t ldy,
            ThreadPool& pool) {
  if (is_quantized(W.dtype))
    throw Error(ErrorKind::Unsupported, std::string("matmul: no kernel yet for ") + dtype_name(W.dtype));
  // Split output rows across threads; each thread runs the reference on its slice.
  pool.parallel_for(W.rows, 16, [&](int64_t r0, int64_t r1, int) {
    ref::matmul_float(W.slice_rows(r0, r1 - r0), X, ldx, n, Y + r0, ldy);
  });
}

void dequantize_row(DType t, const void* src, float* dst, int64_t n) {
  if (!is_quantized(t)) return ref::float_row_to_f32(t, src, dst, n);
  throw Error(ErrorKind::Unsupported, std::string("dequantize_row: not yet for ") + dtype_name(t));
}

void quantize_row(DType t, const float* src, void* dst, int64_t n) {
  throw Error(ErrorKind::Unsupported, std::string("quantize_row: not yet for ") + dtype_name(t));
}

void rmsnorm(const float* x, const float* w, int64_t n, float eps, float* out) { ref::rmsnorm(x, w, n, eps, out); }
void softmax(float* x, int64_t n) { ref::softmax(x, n); }
void silu_mul(const float* gate, const float* up, int64_t n, float* out) { ref::silu_mul(gate, up, n, out); }

}  // namespace ms::ops
