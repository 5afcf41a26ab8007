// Quantized matmul: every SIMD kernel (called directly per ISA) bit-exact
// against ref::vec_dot over awkward shapes; the reference itself against a
// double-precision dot of the dequantized operands; ops::matmul dispatch.
#include <gtest/gtest.h>

#include <cmath>

#include "kernel_test_util.h"

namespace ms::test {
namespace {

struct Shape { int64_t rows, blocks, n; };

// blocks: number of weight blocks per row; -1 means "4096 + one block".
const Shape kShapes[] = {
    {1, 1, 1},   {7, 2, 2},    {33, 3, 3},   {33, 1, 7},   {17, 2, 16}, {33, 3, 33}, {40, 2, 100},
    {31, 2, 13}, {4097, 1, 1}, {4097, 1, 3}, {65, -1, 1},  {33, -1, 5}, {16, -1, 16}, {48, 5, 8},
};

int64_t cols_of(DType t, int64_t blocks) {
  const int64_t B = block_elems(t);
  return blocks < 0 ? 4096 + B : blocks * B;
}

std::vector<float> ref_matmul(const MatView& W, const ops::QuantizedActs& A, int64_t ldy) {
  std::vector<float> Y(size_t(A.n * ldy), 0.0f);
  for (int64_t i = 0; i < A.n; ++i)
    for (int64_t r = 0; r < W.rows; ++r) Y[i * ldy + r] = ref::vec_dot(W.dtype, W.row(r), A.row(i), W.cols);
  return Y;
}

class MatmulQIsa : public ::testing::TestWithParam<std::tuple<Isa, DType>> {};

TEST_P(MatmulQIsa, BitExactAgainstReference) {
  const auto [isa, t] = GetParam();
  MS_REQUIRE_ISA(isa);
  uint64_t seed = 100;
  for (const Shape& s : kShapes) {
    const int64_t cols = cols_of(t, s.blocks);
    for (bool random_fields : {false, true}) {
      if (random_fields && s.rows > 1000) continue;
      const QMat W = random_fields ? random_block_matrix(t, s.rows, cols, ++seed) : quantized_matrix(t, s.rows, cols, ++seed, 6);
      const int64_t ldx = cols + 5, ldy = s.rows + 3;
      const auto X = gaussian(size_t(s.n * ldx), ++seed);
      const ops::QuantizedActs A = ref_acts(t, X.data(), ldx, s.n, cols);
      const auto Yr = ref_matmul(W.view(), A, ldy);
      std::vector<float> Y(size_t(s.n * ldy), 777.0f);
      isa_matmul_q(isa, W.view(), A, 0, s.rows, Y.data(), ldy);
      for (int64_t i = 0; i < s.n; ++i) {
        for (int64_t r = 0; r < s.rows; ++r)
          ASSERT_EQ(bits(Y[i * ldy + r]), bits(Yr[i * ldy + r]))
              << dtype_name(t) << " rows " << s.rows << " cols " << cols << " n " << s.n << " at i=" << i << " r=" << r
              << " fast " << Y[i * ldy + r] << " ref " << Yr[i * ldy + r] << (random_fields ? " (random fields)" : "");
        for (int64_t r = s.rows; r < ldy; ++r) ASSERT_EQ(Y[i * ldy + r], 777.0f) << "wrote past the rows";
      }
    }
  }
}

TEST_P(MatmulQIsa, RowSubRangeWritesOnlyThoseRows) {
  const auto [isa, t] = GetParam();
  MS_REQUIRE_ISA(isa);
  const int64_t rows = 70, cols = cols_of(t, 2), n = 9;
  const QMat W = quantized_matrix(t, rows, cols, 5);
  const auto X = gaussian(size_t(n * cols), 6);
  const ops::QuantizedActs A = ref_acts(t, X.data(), cols, n, cols);
  const auto Yr = ref_matmul(W.view(), A, rows);
  std::vector<float> Y(size_t(n * rows), -1.0f);
  isa_matmul_q(isa, W.view(), A, 5, 38, Y.data(), rows);
  for (int64_t i = 0; i < n; ++i)
    for (int64_t r = 0; r < rows; ++r) {
      if (r >= 5 && r < 38)
        ASSERT_EQ(bits(Y[i * rows + r]), bits(Yr[i * rows + r])) << r;
      else
        ASSERT_EQ(Y[i * rows + r], -1.0f) << r;
    }
}

INSTANTIATE_TEST_SUITE_P(All, MatmulQIsa,
                         ::testing::Combine(::testing::Values(Isa::Avx2, Isa::AvxVnni, Isa::Avx512), ::testing::ValuesIn(kFastQuantTypes)),
                         [](const auto& i) {
                           return std::string(isa_str(std::get<0>(i.param))) + "_" + dtype_name(std::get<1>(i.param));
                         });

// The reference dot product equals the exact dot of the dequantized operands
// up to float rounding: per block one product and one fma (plus the f16/float
// rounding of the dequantized weights) relative to Σ|w||a|.
TEST(MatmulQRef, AgreesWithDequantizedDoubleDot) {
  for (DType t : kQuantTypes) {
    const int64_t cols = cols_of(t, 12), rows = 9, n = 3;
    const QMat W = quantized_matrix(t, rows, cols, 17);
    const auto X = gaussian(size_t(n * cols), 18);
    const ops::QuantizedActs A = ref_acts(t, X.data(), cols, n, cols);
    const int64_t B = ref::act_block(A.format);
    std::vector<float> w(static_cast<size_t>(cols));
    for (int64_t r = 0; r < rows; ++r) {
      ref::dequantize_row(t, W.view().row(r), w.data(), cols);
      for (int64_t i = 0; i < n; ++i) {
        const ref::ActRow a = A.row(i);
        double exact = 0, mag = 0;
        for (int64_t c = 0; c < cols; ++c) {
          const double av = double(a.d[c / B]) * a.qs[c];
          exact += double(w[c]) * av;
          mag += std::fabs(double(w[c]) * av);
        }
        const double got = ref::vec_dot(t, W.view().row(r), a, cols);
        const double tol = 8.0 * double(cols / block_elems(t) + 4) * 0x1p-24 * mag + 1e-30;
        EXPECT_NEAR(got, exact, tol) << dtype_name(t) << " r=" << r << " i=" << i;
      }
    }
  }
}

// ops::matmul (whatever ISA this CPU dispatches to) equals the reference for
// every quantized type, including the ones without a SIMD kernel (Q8_K).
TEST(MatmulQOps, DispatchMatchesReference) {
  ThreadPool pool(2);
  for (DType t : kQuantTypes) {
    for (const Shape& s : {Shape{33, 3, 1}, Shape{70, 2, 20}}) {
      const int64_t cols = cols_of(t, s.blocks);
      const QMat W = quantized_matrix(t, s.rows, cols, 23);
      const auto X = gaussian(size_t(s.n * cols), 24);
      std::vector<float> Y(size_t(s.n * s.rows)), Yr(size_t(s.n * s.rows));
      ops::matmul(W.view(), X.data(), cols, s.n, Y.data(), s.rows, pool);
      ref::matmul_q(W.view(), X.data(), cols, s.n, Yr.data(), s.rows);
      for (size_t k = 0; k < Y.size(); ++k) ASSERT_EQ(bits(Y[k]), bits(Yr[k])) << dtype_name(t) << " " << k;
    }
  }
}

TEST(MatmulQOps, SharedActivationsAcrossWeightTypes) {
  ThreadPool pool(2);
  const int64_t cols = 512, n = 4;
  const auto X = gaussian(size_t(n * cols), 31);
  const ops::QuantizedActs legacy = ops::quantize_acts(DType::Q8_0, X.data(), cols, n, cols, pool);
  const ops::QuantizedActs kq = ops::quantize_acts(DType::Q6_K, X.data(), cols, n, cols, pool);
  for (DType t : kFastQuantTypes) {
    const QMat W = quantized_matrix(t, 40, cols, 32);
    const ops::QuantizedActs& A = ref::act_format(t) == ref::ActFormat::Q8_32 ? legacy : kq;
    std::vector<float> Y1(size_t(n * 40)), Y2(size_t(n * 40));
    ops::matmul_q(W.view(), A, Y1.data(), 40, pool);
    ops::matmul(W.view(), X.data(), cols, n, Y2.data(), 40, pool);
    for (size_t k = 0; k < Y1.size(); ++k) ASSERT_EQ(bits(Y1[k]), bits(Y2[k])) << dtype_name(t);
    const ops::QuantizedActs& wrong = &A == &legacy ? kq : legacy;
    EXPECT_THROW(ops::matmul_q(W.view(), wrong, Y1.data(), 40, pool), Error);
  }
}

}  // namespace
}  // namespace ms::test
