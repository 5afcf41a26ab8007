#include <cmath>
#include <cstring>
#include <vector>

#include "core/error.h"
#include "kernels/ref/lanes16.h"
#include "kernels/ref/ref.h"

namespace ms::ref {

void float_row_to_f32(DType t, const void* src, float* dst, int64_t n) {
  switch (t) {
    case DType::F32:
      std::memcpy(dst, src, size_t(n) * 4);
      return;
    case DType::F16: {
      const uint16_t* s = static_cast<const uint16_t*>(src);
      for (int64_t i = 0; i < n; ++i) dst[i] = f16_to_f32(s[i]);
      return;
    }
    case DType::BF16: {
      const uint16_t* s = static_cast<const uint16_t*>(src);
      for (int64_t i = 0; i < n; ++i) dst[i] = bf16_to_f32(s[i]);
      return;
    }
    default:
      throw Error(ErrorKind::Internal, std::string("float_row_to_f32: not a float type: ") + dtype_name(t));
  }
}

void matmul_float(const MatView& W, const float* X, int64_t ldx, int64_t n, float* Y, int64_t ldy) {
  std::vector<float> w(static_cast<size_t>(W.cols));
  for (int64_t r = 0; r < W.rows; ++r) {
    float_row_to_f32(W.dtype, W.row(r), w.data(), W.cols);
    for (int64_t i = 0; i < n; ++i) {
      Y[i * ldy + r] = dot16(w.data(), X + i * ldx, W.cols);
    }
  }
}

void rmsnorm(const float* x, const float* w, int64_t n, float eps, float* out) {
  double ss = 0.0;
  for (int64_t i = 0; i < n; ++i) ss += double(x[i]) * x[i];
  const float inv = 1.0f / std::sqrt(float(ss / double(n)) + eps);
  for (int64_t i = 0; i < n; ++i) out[i] = (x[i] * inv) * w[i];
}

void softmax(float* x, int64_t n) {
  float mx = -INFINITY;
  for (int64_t i = 0; i < n; ++i) mx = std::max(mx, x[i]);
  double sum = 0.0;
  for (int64_t i = 0; i < n; ++i) {
    x[i] = std::exp(x[i] - mx);
    sum += x[i];
  }
  const float inv = float(1.0 / sum);
  for (int64_t i = 0; i < n; ++i) x[i] *= inv;
}

void silu_mul(const float* gate, const float* up, int64_t n, float* out) {
  for (int64_t i = 0; i < n; ++i) {
    const float g = gate[i];
    // e^-g with -g clamped to [kExpMin, kExpMax], beyond which e^x is 0 or
    // +inf anyway; a NaN g stays NaN through the division.
    const float ng = 0.0f - g;
    const float x = ng >= kExpMin ? (ng <= kExpMax ? ng : kExpMax) : kExpMin;
    out[i] = (g / (1.0f + exp16(x))) * up[i];
  }
}

}  // namespace ms::ref
