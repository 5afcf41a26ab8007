// kernel_test_util.h — shared helpers for the kernel tests: random data,
// random (valid) quantized rows, ISA availability, direct calls of the
// per-ISA entry points.
#pragma once
#include <gtest/gtest.h>

#include <cmath>
#include <cstdint>
#include <cstring>
#include <random>
#include <string>
#include <vector>

#include "core/cpu_features.h"
#include "core/dtype.h"
#include "core/error.h"
#include "core/thread_pool.h"
#include "core/quant.h"
#include "core/tensor.h"
#include "kernels/cpu/cpu_kernels.h"
#include "kernels/ops.h"
#include "kernels/ref/quant_ref.h"

namespace ms::test {

inline const DType kQuantTypes[] = {DType::Q8_0, DType::Q4_0, DType::Q4_1, DType::Q5_0, DType::Q5_1,
                                    DType::Q4_K, DType::Q5_K, DType::Q6_K, DType::Q8_K};
inline const DType kFastQuantTypes[] = {DType::Q8_0, DType::Q4_0, DType::Q4_1, DType::Q5_0,
                                        DType::Q5_1, DType::Q4_K, DType::Q5_K, DType::Q6_K};

// AvxVnni: the AVX2 quantized kernels built with AVX-VNNI (cpu::avx2vnni);
// everything else it runs is the AVX2 code.
enum class Isa { Avx2, AvxVnni, Avx512 };

inline bool has_isa(Isa i) {
  const CpuFeatures& f = cpu_features();
  if (i == Isa::Avx2) return f.avx2 && f.fma && f.f16c;
  if (i == Isa::AvxVnni) return f.avx2 && f.fma && f.f16c && f.avxvnni;
  return f.avx512f && f.avx512bw && f.avx512vl && f.avx512dq && f.avx512vnni && f.avx2 && f.fma && f.f16c;
}
inline const char* isa_str(Isa i) { return i == Isa::Avx2 ? "avx2" : i == Isa::AvxVnni ? "avxvnni" : "avx512"; }

#define MS_REQUIRE_ISA(isa)                                                           \
  do {                                                                                \
    if (!::ms::test::has_isa(isa)) GTEST_SKIP() << "CPU lacks " << ::ms::test::isa_str(isa); \
  } while (0)

inline std::vector<float> gaussian(size_t n, uint64_t seed, float scale = 1.0f) {
  std::mt19937_64 g(seed);
  std::normal_distribution<float> d(0.0f, scale);
  std::vector<float> v(n);
  for (auto& x : v) x = d(g);
  return v;
}

// A quantized matrix: rows x cols of type t, row_stride >= row_bytes.
struct QMat {
  DType t;
  int64_t rows = 0, cols = 0;
  size_t stride = 0;
  std::vector<uint8_t> bytes;
  MatView view() const {
    MatView m = make_mat(t, rows, cols, bytes.data());
    m.row_stride = stride;
    return m;
  }
};

// Weights quantized from Gaussian floats with the reference quantizer.
inline QMat quantized_matrix(DType t, int64_t rows, int64_t cols, uint64_t seed, size_t pad = 0) {
  QMat m{t, rows, cols, row_bytes(t, cols) + pad, {}};
  m.bytes.assign(m.stride * size_t(rows), 0);
  const std::vector<float> w = gaussian(size_t(rows * cols), seed, 0.5f);
  for (int64_t r = 0; r < rows; ++r) ref::quantize_row(t, w.data() + r * cols, m.bytes.data() + r * m.stride, cols);
  return m;
}

// Random bytes in every quant field (all bit patterns), sane random scales.
inline QMat random_block_matrix(DType t, int64_t rows, int64_t cols, uint64_t seed) {
  QMat m{t, rows, cols, row_bytes(t, cols), {}};
  m.bytes.resize(m.stride * size_t(rows));
  std::mt19937_64 g(seed);
  for (auto& b : m.bytes) b = uint8_t(g());
  std::uniform_real_distribution<float> u(-0.02f, 0.02f);
  auto f16 = [&](bool positive) {
    const float v = u(g);
    return f32_to_f16(positive ? std::fabs(v) : v);
  };
  const size_t bb = block_bytes(t);
  for (size_t off = 0; off < m.bytes.size(); off += bb) {
    uint8_t* p = m.bytes.data() + off;
    auto put = [&](size_t at, uint16_t v) { std::memcpy(p + at, &v, 2); };
    switch (t) {
      case DType::Q8_0: case DType::Q4_0: case DType::Q5_0: put(0, f16(false)); break;
      case DType::Q4_1: case DType::Q5_1: put(0, f16(false)); put(2, f16(false)); break;
      case DType::Q4_K: case DType::Q5_K: put(0, f16(false)); put(2, f16(false)); break;
      case DType::Q6_K: put(208, f16(false)); break;
      case DType::Q8_K: {
        float d = u(g);
        std::memcpy(p, &d, 4);
        break;
      }
      default: break;
    }
  }
  return m;
}

inline cpu::WeightsRef wref(const MatView& W) { return {W.dtype, W.rows, W.cols, W.data, W.row_stride, W.panel16}; }
inline cpu::ActsRef aref(const ops::QuantizedActs& A) {
  auto& M = const_cast<ops::QuantizedActs&>(A);
  return {int(A.format), A.n, A.cols, A.nblk, A.qs_stride, M.qs.data(), M.d.data(), M.sum.data(), M.bsum.data()};
}

// Reference quantization of activations into a QuantizedActs layout.
inline ops::QuantizedActs ref_acts(DType wtype, const float* X, int64_t ldx, int64_t n, int64_t cols) {
  ThreadPool one(1);
  // Sizes the buffers (whatever ISA runs), then overwrite with the reference.
  ops::QuantizedActs A = ops::quantize_acts(wtype, X, ldx, n, cols, one);
  if (A.format == ref::ActFormat::None) return A;
  std::memset(A.qs.data(), 0, A.qs.size());
  for (int64_t i = 0; i < n; ++i) {
    const ref::ActRow r = A.row(i);
    ref::quantize_act_row(A.format, X + i * ldx, cols, const_cast<int8_t*>(r.qs), const_cast<float*>(r.d),
                          const_cast<int32_t*>(r.sum), const_cast<int16_t*>(r.bsum));
  }
  return A;
}

// Quantizes activations with one ISA's entry point (buffers sized by ops).
inline ops::QuantizedActs isa_acts(Isa isa, DType wtype, const float* X, int64_t ldx, int64_t n, int64_t cols) {
  ThreadPool one(1);
  ops::QuantizedActs A = ops::quantize_acts(wtype, X, ldx, n, cols, one);
  std::memset(A.qs.data(), 0x5A, A.qs.size());
  const cpu::ActsRef R = aref(A);
  if (isa == Isa::Avx512)
    cpu::avx512::quantize_acts(X, ldx, 0, n, R);
  else
    cpu::avx2::quantize_acts(X, ldx, 0, n, R);
  return A;
}

inline void isa_matmul_q(Isa isa, const MatView& W, const ops::QuantizedActs& A, int64_t r0, int64_t r1, float* Y,
                         int64_t ldy) {
  if (isa == Isa::Avx512)
    cpu::avx512::matmul_q(wref(W), aref(A), r0, r1, Y, ldy);
  else if (isa == Isa::AvxVnni)
    cpu::avx2vnni::matmul_q(wref(W), aref(A), r0, r1, Y, ldy);
  else
    cpu::avx2::matmul_q(wref(W), aref(A), r0, r1, Y, ldy);
}

inline void isa_matmul_f(Isa isa, const MatView& W, const float* X, int64_t ldx, int64_t n, float* Y, int64_t ldy) {
  if (isa == Isa::Avx512)
    cpu::avx512::matmul_f(wref(W), X, ldx, n, 0, W.rows, Y, ldy);
  else
    cpu::avx2::matmul_f(wref(W), X, ldx, n, 0, W.rows, Y, ldy);
}

inline uint32_t bits(float f) {
  uint32_t u;
  std::memcpy(&u, &f, 4);
  return u;
}

}  // namespace ms::test
