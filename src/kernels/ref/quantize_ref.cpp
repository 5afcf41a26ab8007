// quantize_ref.cpp — quantization of rows to the legacy block formats (exactly
// llama.cpp's reference quantizers, so our Q8_0/Q4_0... files match theirs),
// to Q8_K, and to the 16-bit float types; plus the quantize_row dispatcher.
#include <cmath>
#include <cstring>
#include <string>

#include "core/error.h"
#include "core/quant.h"
#include "kernels/ref/quant_ref.h"

namespace ms::ref {

namespace {

// (int)v truncated toward zero and clamped to [lo, hi]; NaN gives lo.
inline int trunc_clamp(float v, int lo, int hi) {
  if (!(v >= float(lo))) return lo;
  if (v >= float(hi + 1)) return hi;
  return int(v);
}

// Value with the largest magnitude (first one on ties), as the legacy quantizers use.
inline float signed_absmax(const float* x, int n, float* amax_out) {
  float amax = 0.0f, mx = 0.0f;
  for (int j = 0; j < n; ++j) {
    if (amax < std::fabs(x[j])) {
      amax = std::fabs(x[j]);
      mx = x[j];
    }
  }
  *amax_out = amax;
  return mx;
}

void q8_0(const float* x, BlockQ8_0* y, int64_t nb) {
  for (int64_t i = 0; i < nb; ++i, x += QK) {
    float amax = 0.0f;
    for (int j = 0; j < QK; ++j) amax = std::fmax(amax, std::fabs(x[j]));
    const float d = amax / 127.0f;
    const float id = d != 0.0f ? 1.0f / d : 0.0f;
    y[i].d = f32_to_f16(d);
    for (int j = 0; j < QK; ++j) {
      const float v = std::round(x[j] * id);  // half away from zero, like roundf
      y[i].qs[j] = int8_t(v > 127.0f ? 127 : v < -127.0f ? -127 : v != v ? 0 : int(v));
    }
  }
}

void q4_0(const float* x, BlockQ4_0* y, int64_t nb) {
  for (int64_t i = 0; i < nb; ++i, x += QK) {
    float amax;
    const float mx = signed_absmax(x, QK, &amax);
    const float d = mx / -8.0f;
    const float id = d != 0.0f ? 1.0f / d : 0.0f;
    y[i].d = f32_to_f16(d);
    for (int j = 0; j < QK / 2; ++j) {
      const int q0 = trunc_clamp(x[j] * id + 8.5f, 0, 15);
      const int q1 = trunc_clamp(x[j + QK / 2] * id + 8.5f, 0, 15);
      y[i].qs[j] = uint8_t(q0 | (q1 << 4));
    }
  }
}

void q4_1(const float* x, BlockQ4_1* y, int64_t nb) {
  for (int64_t i = 0; i < nb; ++i, x += QK) {
    float mn = x[0], mx = x[0];
    for (int j = 1; j < QK; ++j) {
      if (x[j] < mn) mn = x[j];
      if (x[j] > mx) mx = x[j];
    }
    const float d = (mx - mn) / 15.0f;
    const float id = d != 0.0f ? 1.0f / d : 0.0f;
    y[i].d = f32_to_f16(d);
    y[i].m = f32_to_f16(mn);
    for (int j = 0; j < QK / 2; ++j) {
      const int q0 = trunc_clamp((x[j] - mn) * id + 0.5f, 0, 15);
      const int q1 = trunc_clamp((x[j + QK / 2] - mn) * id + 0.5f, 0, 15);
      y[i].qs[j] = uint8_t(q0 | (q1 << 4));
    }
  }
}

void q5_0(const float* x, BlockQ5_0* y, int64_t nb) {
  for (int64_t i = 0; i < nb; ++i, x += QK) {
    float amax;
    const float mx = signed_absmax(x, QK, &amax);
    const float d = mx / -16.0f;
    const float id = d != 0.0f ? 1.0f / d : 0.0f;
    y[i].d = f32_to_f16(d);
    uint32_t qh = 0;
    for (int j = 0; j < QK / 2; ++j) {
      const int q0 = trunc_clamp(x[j] * id + 16.5f, 0, 31);
      const int q1 = trunc_clamp(x[j + QK / 2] * id + 16.5f, 0, 31);
      y[i].qs[j] = uint8_t((q0 & 0xF) | ((q1 & 0xF) << 4));
      qh |= uint32_t(q0 >> 4) << j;
      qh |= uint32_t(q1 >> 4) << (j + 16);
    }
    std::memcpy(y[i].qh, &qh, 4);
  }
}

void q5_1(const float* x, BlockQ5_1* y, int64_t nb) {
  for (int64_t i = 0; i < nb; ++i, x += QK) {
    float mn = x[0], mx = x[0];
    for (int j = 1; j < QK; ++j) {
      if (x[j] < mn) mn = x[j];
      if (x[j] > mx) mx = x[j];
    }
    const float d = (mx - mn) / 31.0f;
    const float id = d != 0.0f ? 1.0f / d : 0.0f;
    y[i].d = f32_to_f16(d);
    y[i].m = f32_to_f16(mn);
    uint32_t qh = 0;
    for (int j = 0; j < QK / 2; ++j) {
      const int q0 = trunc_clamp((x[j] - mn) * id + 0.5f, 0, 31);
      const int q1 = trunc_clamp((x[j + QK / 2] - mn) * id + 0.5f, 0, 31);
      y[i].qs[j] = uint8_t((q0 & 0xF) | ((q1 & 0xF) << 4));
      qh |= uint32_t(q0 >> 4) << j;
      qh |= uint32_t(q1 >> 4) << (j + 16);
    }
    std::memcpy(y[i].qh, &qh, 4);
  }
}

void q8_K(const float* x, BlockQ8_K* y, int64_t nb) {
  for (int64_t i = 0; i < nb; ++i, x += QK_K)
    quantize_act_row(ActFormat::Q8_256, x, QK_K, y[i].qs, &y[i].d, nullptr, y[i].bsums);
}

}  // namespace

void kquant_pack_scales(const uint8_t* sc, const uint8_t* m, uint8_t* s) {
  for (int j = 0; j < 12; ++j) s[j] = 0;
  for (int j = 0; j < 8; ++j) {
    const uint8_t ls = sc[j] & 63, lm = m[j] & 63;
    if (j < 4) {
      s[j] |= ls;
      s[j + 4] |= lm;
    } else {
      s[j + 4] = uint8_t((ls & 0xF) | ((lm & 0xF) << 4));
      s[j - 4] |= uint8_t((ls >> 4) << 6);
      s[j] |= uint8_t((lm >> 4) << 6);
    }
  }
}

void quantize_row(DType t, const float* src, void* dst, int64_t n) {
  if (n < 0 || n % block_elems(t) != 0)
    throw Error(ErrorKind::BadInput, std::string("quantize_row: ") + std::to_string(n) +
                                         " elements is not a whole number of " + dtype_name(t) + " blocks");
  const int64_t nb = n / block_elems(t);
  switch (t) {
    case DType::F32: std::memcpy(dst, src, size_t(n) * 4); return;
    case DType::F16: {
      uint16_t* o = static_cast<uint16_t*>(dst);
      for (int64_t i = 0; i < n; ++i) o[i] = f32_to_f16(src[i]);
      return;
    }
    case DType::BF16: {
      uint16_t* o = static_cast<uint16_t*>(dst);
      for (int64_t i = 0; i < n; ++i) o[i] = f32_to_bf16(src[i]);
      return;
    }
    case DType::Q8_0: return q8_0(src, static_cast<BlockQ8_0*>(dst), nb);
    case DType::Q4_0: return q4_0(src, static_cast<BlockQ4_0*>(dst), nb);
    case DType::Q4_1: return q4_1(src, static_cast<BlockQ4_1*>(dst), nb);
    case DType::Q5_0: return q5_0(src, static_cast<BlockQ5_0*>(dst), nb);
    case DType::Q5_1: return q5_1(src, static_cast<BlockQ5_1*>(dst), nb);
    case DType::Q4_K: return quantize_row_q4_K(src, dst, n);
    case DType::Q5_K: return quantize_row_q5_K(src, dst, n);
    case DType::Q6_K: return quantize_row_q6_K(src, dst, n);
    case DType::Q8_K: return q8_K(src, static_cast<BlockQ8_K*>(dst), nb);
    case DType::I32: break;
  }
  throw Error(ErrorKind::Unsupported, std::string("quantize_row: cannot quantize to ") + dtype_name(t));
}

}  // namespace ms::ref
