// ref.h — scalar reference implementations: the numerical specification of
// every op in ops.h. Slow and obvious on purpose; fast paths are tested
// against these.
#pragma once
#include <cstdint>

#include "core/tensor.h"

namespace ms::ref {

// Y[i][r] = sum_c X[i][c] * W[r][c]. W of a float type (F32/F16/BF16) is
// converted exactly to f32 and the dot product is accumulated in f32 with
// FMAs in the 16-lane order of ref/lanes16.h (as the SIMD kernels do, bit for
// bit). (Quantized W: see ref/quant_ref.h.)
void matmul_float(const MatView& W, const float* X, int64_t ldx, int64_t n, float* Y, int64_t ldy);

void rmsnorm(const float* x, const float* w, int64_t n, float eps, float* out);
void softmax(float* x, int64_t n);
// out[i] = gate[i] / (1 + e^-gate[i]) * up[i], e^x by ref/lanes16.h's exp16
// (within 2 ulp of libm's expf; the SIMD kernels' bits).
void silu_mul(const float* gate, const float* up, int64_t n, float* out);
// Converts one row of a float type (F32/F16/BF16) to f32.
void float_row_to_f32(DType t, const void* src, float* dst, int64_t n);

}  // namespace ms::ref
