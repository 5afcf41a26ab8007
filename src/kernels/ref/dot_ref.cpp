// dot_ref.cpp — activation quantization and quantized dot products: the
// specification in quant_ref.h, written out one block at a time.
#include <cmath>
#include <cstring>
#include <string>
#include <vector>

#include "core/error.h"
#include "core/quant.h"
#include "kernels/ref/quant_ref.h"

namespace ms::ops {

ActFormat act_format(DType t) {
  switch (t) {
    case DType::Q8_0:
    case DType::Q4_0:
    case DType::Q4_1:
    case DType::Q5_0:
    case DType::Q5_1: return ActFormat::Q8_32;
    case DType::Q4_K:
    case DType::Q5_K:
    case DType::Q6_K:
    case DType::Q8_K: return ActFormat::Q8_256;
    default: return ActFormat::None;
  }
}

int64_t act_block(ActFormat f) { return f == ActFormat::Q8_32 ? 32 : f == ActFormat::Q8_256 ? 256 : 1; }

}  // namespace ms::ops

namespace ms::ref {

namespace {
// Round half to even of |v| < 2^22 without a libm call (like VCVTPS2DQ).
inline int round_even(float v) {
  const float t = v + 12582912.0f;
  int32_t i;
  std::memcpy(&i, &t, 4);
  return (i & 0x007fffff) - 0x00400000;
}
}  // namespace

ActScale act_scale(ActFormat f, float amax) {
  if (amax == 0.0f) return {0.0f, 0.0f};
  const float id = 127.0f / amax;
  if (f == ActFormat::Q8_32) {
    // Outside f16's range (|x| beyond ~8e6 or below ~8e-6) the scale stays f32
    // rather than becoming inf or 0.
    const float d = amax / 127.0f, d16 = f16_to_f32(f32_to_f16(d));
    return {d16 != 0.0f && std::isfinite(d16) ? d16 : d, id};
  }
  return {1.0f / id, id};
}

void quantize_act_row(ActFormat f, const float* x, int64_t cols, int8_t* qs, float* d, int32_t* sum,
                      int16_t* bsum) {
  const int64_t B = act_block(f);
  if (f == ActFormat::None || cols % B != 0)
    throw Error(ErrorKind::Internal, "quantize_act_row: bad format or length " + std::to_string(cols));
  for (int64_t b = 0; b < cols / B; ++b) {
    const float* xb = x + b * B;
    int8_t* q = qs + b * B;
    float amax = 0.0f;
    for (int64_t i = 0; i < B; ++i) amax = std::fmax(amax, std::fabs(xb[i]));
    const ActScale sc = act_scale(f, amax);
    d[b] = sc.d;
    for (int64_t i = 0; i < B; ++i) q[i] = int8_t(round_even(xb[i] * sc.id));
    if (f == ActFormat::Q8_32 && sum) {
      int32_t s = 0;
      for (int64_t i = 0; i < B; ++i) s += q[i];
      sum[b] = s;
    }
    if (f == ActFormat::Q8_256 && bsum) {
      for (int64_t g = 0; g < B / 16; ++g) {
        int s = 0;
        for (int i = 0; i < 16; ++i) s += q[16 * g + i];
        bsum[b * (B / 16) + g] = int16_t(s);
      }
    }
  }
}

namespace {

inline uint32_t load_u32(const uint8_t* p) {
  uint32_t v;
  std::memcpy(&v, p, 4);
  return v;
}

float dot_q8_0(const BlockQ8_0* w, const ActRow& a, int64_t nb) {
  float acc = 0.0f;
  for (int64_t b = 0; b < nb; ++b) {
    int32_t s = 0;
    for (int j = 0; j < QK; ++j) s += int32_t(w[b].qs[j]) * a.qs[b * QK + j];
    acc = std::fma(float(s), f16_to_f32(w[b].d) * a.d[b], acc);
  }
  return acc;
}

float dot_q4_0(const BlockQ4_0* w, const ActRow& a, int64_t nb) {
  float acc = 0.0f;
  for (int64_t b = 0; b < nb; ++b) {
    const int8_t* q = a.qs + b * QK;
    int32_t s = 0;
    for (int j = 0; j < QK / 2; ++j)
      s += ((w[b].qs[j] & 0xF) - 8) * q[j] + ((w[b].qs[j] >> 4) - 8) * q[j + 16];
    acc = std::fma(float(s), f16_to_f32(w[b].d) * a.d[b], acc);
  }
  return acc;
}

float dot_q4_1(const BlockQ4_1* w, const ActRow& a, int64_t nb) {
  float acc = 0.0f;
  for (int64_t b = 0; b < nb; ++b) {
    const int8_t* q = a.qs + b * QK;
    int32_t s = 0;
    for (int j = 0; j < QK / 2; ++j) s += (w[b].qs[j] & 0xF) * q[j] + (w[b].qs[j] >> 4) * q[j + 16];
    acc = std::fma(float(s), f16_to_f32(w[b].d) * a.d[b], acc);
    acc = std::fma(f16_to_f32(w[b].m), a.d[b] * float(a.sum[b]), acc);
  }
  return acc;
}

template <class Block>
int32_t q5_isum(const Block& w, const int8_t* q, int offset) {
  const uint32_t qh = load_u32(w.qh);
  int32_t s = 0;
  for (int j = 0; j < QK / 2; ++j) {
    const int v0 = ((w.qs[j] & 0xF) | int(((qh >> j) & 1u) << 4)) - offset;
    const int v1 = ((w.qs[j] >> 4) | int(((qh >> (j + 16)) & 1u) << 4)) - offset;
    s += v0 * q[j] + v1 * q[j + 16];
  }
  return s;
}

float dot_q5_0(const BlockQ5_0* w, const ActRow& a, int64_t nb) {
  float acc = 0.0f;
  for (int64_t b = 0; b < nb; ++b)
    acc = std::fma(float(q5_isum(w[b], a.qs + b * QK, 16)), f16_to_f32(w[b].d) * a.d[b], acc);
  return acc;
}

float dot_q5_1(const BlockQ5_1* w, const ActRow& a, int64_t nb) {
  float acc = 0.0f;
  for (int64_t b = 0; b < nb; ++b) {
    acc = std::fma(float(q5_isum(w[b], a.qs + b * QK, 0)), f16_to_f32(w[b].d) * a.d[b], acc);
    acc = std::fma(f16_to_f32(w[b].m), a.d[b] * float(a.sum[b]), acc);
  }
  return acc;
}

// Quant j*32+l (0..15 or 0..31) of a Q4_K / Q5_K super-block.
inline int kq_value(const BlockQ4_K& w, int j, int l) { return (w.qs[32 * (j / 2) + l] >> ((j & 1) * 4)) & 0xF; }
inline int kq_value(const BlockQ5_K& w, int j, int l) {
  return ((w.qs[32 * (j / 2) + l] >> ((j & 1) * 4)) & 0xF) | (((w.qh[l] >> j) & 1) << 4);
}

template <class Block>
float dot_q45_K(const Block* w, const ActRow& a, int64_t nb) {
  float acc = 0.0f;
  for (int64_t b = 0; b < nb; ++b) {
    const int8_t* q = a.qs + b * QK_K;
    const int16_t* bs = a.bsum + b * (QK_K / 16);
    int32_t isum = 0, msum = 0;
    for (int j = 0; j < 8; ++j) {
      uint8_t sc, m;
      kquant_scale_min(j, w[b].scales, &sc, &m);
      int32_t p = 0;
      for (int l = 0; l < 32; ++l) p += kq_value(w[b], j, l) * q[32 * j + l];
      isum += int32_t(sc) * p;
      msum += int32_t(m) * (bs[2 * j] + bs[2 * j + 1]);
    }
    acc = std::fma(float(isum), f16_to_f32(w[b].d) * a.d[b], acc);
    acc = std::fma(-float(msum), f16_to_f32(w[b].dmin) * a.d[b], acc);
  }
  return acc;
}

float dot_q6_K(const BlockQ6_K* w, const ActRow& a, int64_t nb) {
  float acc = 0.0f;
  for (int64_t b = 0; b < nb; ++b) {
    const int8_t* q = a.qs + b * QK_K;
    int32_t isum = 0;
    for (int s = 0; s < 16; ++s) {  // sub-block of 16 elements e = 16 s + l
      int32_t p = 0;
      for (int l = 0; l < 16; ++l) {
        const int e = 16 * s + l;
        const int h = e / 128, k = (e % 128) / 32, m = e % 32;
        const uint8_t lq = w[b].ql[64 * h + m + (k & 1) * 32];
        const int lo = (k < 2) ? (lq & 0xF) : (lq >> 4);
        const int hi = (w[b].qh[32 * h + m] >> (2 * k)) & 3;
        p += ((lo | (hi << 4)) - 32) * q[e];
      }
      isum += int32_t(w[b].scales[s]) * p;
    }
    acc = std::fma(float(isum), f16_to_f32(w[b].d) * a.d[b], acc);
  }
  return acc;
}

float dot_q8_K(const BlockQ8_K* w, const ActRow& a, int64_t nb) {
  float acc = 0.0f;
  for (int64_t b = 0; b < nb; ++b) {
    int32_t s = 0;
    for (int j = 0; j < QK_K; ++j) s += int32_t(w[b].qs[j]) * a.qs[b * QK_K + j];
    acc = std::fma(float(s), w[b].d * a.d[b], acc);
  }
  return acc;
}

}  // namespace

float vec_dot(DType t, const void* wrow, const ActRow& a, int64_t cols) {
  const int64_t nb = cols / block_elems(t);
  switch (t) {
    case DType::Q8_0: return dot_q8_0(static_cast<const BlockQ8_0*>(wrow), a, nb);
    case DType::Q4_0: return dot_q4_0(static_cast<const BlockQ4_0*>(wrow), a, nb);
    case DType::Q4_1: return dot_q4_1(static_cast<const BlockQ4_1*>(wrow), a, nb);
    case DType::Q5_0: return dot_q5_0(static_cast<const BlockQ5_0*>(wrow), a, nb);
    case DType::Q5_1: return dot_q5_1(static_cast<const BlockQ5_1*>(wrow), a, nb);
    case DType::Q4_K: return dot_q45_K(static_cast<const BlockQ4_K*>(wrow), a, nb);
    case DType::Q5_K: return dot_q45_K(static_cast<const BlockQ5_K*>(wrow), a, nb);
    case DType::Q6_K: return dot_q6_K(static_cast<const BlockQ6_K*>(wrow), a, nb);
    case DType::Q8_K: return dot_q8_K(static_cast<const BlockQ8_K*>(wrow), a, nb);
    default: break;
  }
  throw Error(ErrorKind::Internal, std::string("vec_dot: not a quantized type: ") + dtype_name(t));
}

void matmul_q(const MatView& W, const float* X, int64_t ldx, int64_t n, float* Y, int64_t ldy) {
  const ActFormat f = act_format(W.dtype);
  const int64_t B = act_block(f);
  if (f == ActFormat::None || W.cols % B != 0)
    throw Error(ErrorKind::Internal, std::string("ref::matmul_q: bad weight type/shape ") + dtype_name(W.dtype));
  const int64_t nblk = W.cols / B;
  std::vector<int8_t> qs(static_cast<size_t>(W.cols));
  std::vector<float> d(static_cast<size_t>(nblk));
  std::vector<int32_t> sum(static_cast<size_t>(nblk));
  std::vector<int16_t> bsum(static_cast<size_t>(W.cols / 16));
  for (int64_t i = 0; i < n; ++i) {
    quantize_act_row(f, X + i * ldx, W.cols, qs.data(), d.data(), sum.data(), bsum.data());
    ActRow a{qs.data(), d.data(), sum.data(), bsum.data()};
    for (int64_t r = 0; r < W.rows; ++r) Y[i * ldy + r] = vec_dot(W.dtype, W.row(r), a, W.cols);
  }
}

}  // namespace ms::ref
