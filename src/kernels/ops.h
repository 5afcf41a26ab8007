// ops.h — the operations the model is built from. Kernels know nothing about
// models: they see matrices, vectors and strides.
//
// Every op has a plain scalar version in kernels/ref (namespace ms::ref) that
// is the numerical specification; the functions here dispatch at run time to
// the fastest implementation the CPU supports (kernels/cpu), and fall back to
// the reference. Tests compare each fast path against ref over awkward shapes.
#pragma once
#include <cstdint>

#include "core/tensor.h"
#include "core/thread_pool.h"

namespace ms::ops {

// Y[i][r] = sum_c X[i][c] * W[r][c]  for i < n, r < W.rows.
// X is float32 [n][W.cols] (row stride ldx floats), Y float32 [n][W.rows] (row stride ldy).
// W may be any DType. For quantized W the activations are quantized per block
// to 8 bits (Q8_0 or Q8_K) as the format is meant to be run.
void matmul(const MatView& W, const float* X, int64_t ldx, int64_t n, float* Y, int64_t ldy,
            ThreadPool& pool);

// Converts one row of n elements of type t to float32. Bit-exact to the format's definition.
void dequantize_row(DType t, const void* src, float* dst, int64_t n);
// Quantizes one row (n a multiple of the block size) to type t.
void quantize_row(DType t, const float* src, void* dst, int64_t n);

// out[i] = x[i] / sqrt(mean(x^2) + eps) * w[i]
void rmsnorm(const float* x, const float* w, int64_t n, float eps, float* out);
// In-place softmax over n values.
void softmax(float* x, int64_t n);
// out[i] = silu(gate[i]) * up[i]
void silu_mul(const float* gate, const float* up, int64_t n, float* out);

}  // namespace ms::ops
