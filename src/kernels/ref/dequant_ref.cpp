// dequant_ref.cpp — dequantization of every block format, bit-exact to the
// GGML definitions (same element order and the same float operations).
#include <cstring>
#include <string>

#include "core/error.h"
#include "core/quant.h"
#include "kernels/ref/quant_ref.h"
#include "kernels/ref/ref.h"

namespace ms::ref {

namespace {

void deq_q8_0(const BlockQ8_0* x, float* y, int64_t nb) {
  for (int64_t i = 0; i < nb; ++i) {
    const float d = f16_to_f32(x[i].d);
    for (int j = 0; j < QK; ++j) y[i * QK + j] = float(x[i].qs[j]) * d;
  }
}

void deq_q4_0(const BlockQ4_0* x, float* y, int64_t nb) {
  for (int64_t i = 0; i < nb; ++i) {
    const float d = f16_to_f32(x[i].d);
    for (int j = 0; j < QK / 2; ++j) {
      y[i * QK + j] = float((x[i].qs[j] & 0x0F) - 8) * d;
      y[i * QK + j + QK / 2] = float((x[i].qs[j] >> 4) - 8) * d;
    }
  }
}

void deq_q4_1(const BlockQ4_1* x, float* y, int64_t nb) {
  for (int64_t i = 0; i < nb; ++i) {
    const float d = f16_to_f32(x[i].d), m = f16_to_f32(x[i].m);
    for (int j = 0; j < QK / 2; ++j) {
      y[i * QK + j] = float(x[i].qs[j] & 0x0F) * d + m;
      y[i * QK + j + QK / 2] = float(x[i].qs[j] >> 4) * d + m;
    }
  }
}

inline uint32_t load_qh(const uint8_t* p) {
  uint32_t v;
  std::memcpy(&v, p, 4);
  return v;
}

void deq_q5_0(const BlockQ5_0* x, float* y, int64_t nb) {
  for (int64_t i = 0; i < nb; ++i) {
    const float d = f16_to_f32(x[i].d);
    const uint32_t qh = load_qh(x[i].qh);
    for (int j = 0; j < QK / 2; ++j) {
      const int q0 = (x[i].qs[j] & 0x0F) | int(((qh >> j) & 1u) << 4);
      const int q1 = (x[i].qs[j] >> 4) | int(((qh >> (j + 16)) & 1u) << 4);
      y[i * QK + j] = float(q0 - 16) * d;
      y[i * QK + j + QK / 2] = float(q1 - 16) * d;
    }
  }
}

void deq_q5_1(const BlockQ5_1* x, float* y, int64_t nb) {
  for (int64_t i = 0; i < nb; ++i) {
    const float d = f16_to_f32(x[i].d), m = f16_to_f32(x[i].m);
    const uint32_t qh = load_qh(x[i].qh);
    for (int j = 0; j < QK / 2; ++j) {
      const int q0 = (x[i].qs[j] & 0x0F) | int(((qh >> j) & 1u) << 4);
      const int q1 = (x[i].qs[j] >> 4) | int(((qh >> (j + 16)) & 1u) << 4);
      y[i * QK + j] = float(q0) * d + m;
      y[i * QK + j + QK / 2] = float(q1) * d + m;
    }
  }
}

void deq_q4_K(const BlockQ4_K* x, float* y, int64_t nb) {
  for (int64_t i = 0; i < nb; ++i) {
    const float d = f16_to_f32(x[i].d), dmin = f16_to_f32(x[i].dmin);
    const uint8_t* q = x[i].qs;
    for (int c = 0; c < 4; ++c) {  // 64 elements per chunk: 32 low nibbles, 32 high
      uint8_t sc, m;
      kquant_scale_min(2 * c, x[i].scales, &sc, &m);
      const float d1 = d * float(sc), m1 = dmin * float(m);
      kquant_scale_min(2 * c + 1, x[i].scales, &sc, &m);
      const float d2 = d * float(sc), m2 = dmin * float(m);
      for (int l = 0; l < 32; ++l) *y++ = d1 * float(q[l] & 0xF) - m1;
      for (int l = 0; l < 32; ++l) *y++ = d2 * float(q[l] >> 4) - m2;
      q += 32;
    }
  }
}

void deq_q5_K(const BlockQ5_K* x, float* y, int64_t nb) {
  for (int64_t i = 0; i < nb; ++i) {
    const float d = f16_to_f32(x[i].d), dmin = f16_to_f32(x[i].dmin);
    const uint8_t* ql = x[i].qs;
    const uint8_t* qh = x[i].qh;
    for (int c = 0; c < 4; ++c) {
      uint8_t sc, m;
      kquant_scale_min(2 * c, x[i].scales, &sc, &m);
      const float d1 = d * float(sc), m1 = dmin * float(m);
      kquant_scale_min(2 * c + 1, x[i].scales, &sc, &m);
      const float d2 = d * float(sc), m2 = dmin * float(m);
      const int b1 = 2 * c, b2 = 2 * c + 1;  // bit of qh[l] holding the 5th bit
      for (int l = 0; l < 32; ++l) *y++ = d1 * float((ql[l] & 0xF) | (((qh[l] >> b1) & 1) << 4)) - m1;
      for (int l = 0; l < 32; ++l) *y++ = d2 * float((ql[l] >> 4) | (((qh[l] >> b2) & 1) << 4)) - m2;
      ql += 32;
    }
  }
}

void deq_q6_K(const BlockQ6_K* x, float* y, int64_t nb) {
  for (int64_t i = 0; i < nb; ++i) {
    const float d = f16_to_f32(x[i].d);
    const uint8_t* ql = x[i].ql;
    const uint8_t* qh = x[i].qh;
    const int8_t* sc = x[i].scales;
    for (int h = 0; h < 2; ++h) {  // two halves of 128 elements
      for (int l = 0; l < 32; ++l) {
        const int is = l / 16;
        const int q1 = ((ql[l] & 0xF) | (((qh[l] >> 0) & 3) << 4)) - 32;
        const int q2 = ((ql[l + 32] & 0xF) | (((qh[l] >> 2) & 3) << 4)) - 32;
        const int q3 = ((ql[l] >> 4) | (((qh[l] >> 4) & 3) << 4)) - 32;
        const int q4 = ((ql[l + 32] >> 4) | (((qh[l] >> 6) & 3) << 4)) - 32;
        y[l + 0] = d * float(sc[is + 0]) * float(q1);
        y[l + 32] = d * float(sc[is + 2]) * float(q2);
        y[l + 64] = d * float(sc[is + 4]) * float(q3);
        y[l + 96] = d * float(sc[is + 6]) * float(q4);
      }
      y += 128;
      ql += 64;
      qh += 32;
      sc += 8;
    }
  }
}

void deq_q8_K(const BlockQ8_K* x, float* y, int64_t nb) {
  for (int64_t i = 0; i < nb; ++i)
    for (int j = 0; j < QK_K; ++j) y[i * QK_K + j] = x[i].d * float(x[i].qs[j]);
}

}  // namespace

void dequantize_row(DType t, const void* src, float* dst, int64_t n) {
  if (n < 0 || n % block_elems(t) != 0)
    throw Error(ErrorKind::BadInput, std::string("dequantize_row: ") + std::to_string(n) +
                                         " elements is not a whole number of " + dtype_name(t) + " blocks");
  const int64_t nb = n / block_elems(t);
  switch (t) {
    case DType::F32:
    case DType::F16:
    case DType::BF16: return float_row_to_f32(t, src, dst, n);
    case DType::Q8_0: return deq_q8_0(static_cast<const BlockQ8_0*>(src), dst, nb);
    case DType::Q4_0: return deq_q4_0(static_cast<const BlockQ4_0*>(src), dst, nb);
    case DType::Q4_1: return deq_q4_1(static_cast<const BlockQ4_1*>(src), dst, nb);
    case DType::Q5_0: return deq_q5_0(static_cast<const BlockQ5_0*>(src), dst, nb);
    case DType::Q5_1: return deq_q5_1(static_cast<const BlockQ5_1*>(src), dst, nb);
    case DType::Q4_K: return deq_q4_K(static_cast<const BlockQ4_K*>(src), dst, nb);
    case DType::Q5_K: return deq_q5_K(static_cast<const BlockQ5_K*>(src), dst, nb);
    case DType::Q6_K: return deq_q6_K(static_cast<const BlockQ6_K*>(src), dst, nb);
    case DType::Q8_K: return deq_q8_K(static_cast<const BlockQ8_K*>(src), dst, nb);
    case DType::I32: break;
  }
  throw Error(ErrorKind::Unsupported, std::string("dequantize_row: cannot convert ") + dtype_name(t) + " to f32");
}

}  // namespace ms::ref
