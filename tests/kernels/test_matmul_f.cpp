// Float-weight matmul (F32/F16/BF16): the reference, each ISA's kernel and
// ops::matmul against a double-precision dot of the exactly widened weights,
// with an error bound derived from the data: (terms per partial sum +
// reduction depth) * eps * Σ|x||w|; and every kernel equal to the reference
// bit for bit (the same 16 partial sums and tree, ref/lanes16.h).
#include <gtest/gtest.h>

#include <cmath>
#include <cstring>

#include "kernel_test_util.h"
#include "core/argmax.h"
#include "kernels/ref/ref.h"

namespace ms::test {
namespace {

struct FMat {
  DType t;
  int64_t rows, cols;
  std::vector<uint8_t> bytes;
  MatView view() const { return make_mat(t, rows, cols, bytes.data()); }
};

FMat float_matrix(DType t, int64_t rows, int64_t cols, uint64_t seed) {
  FMat m{t, rows, cols, std::vector<uint8_t>(row_bytes(t, cols) * size_t(rows))};
  const auto w = gaussian(size_t(rows * cols), seed);
  for (int64_t r = 0; r < rows; ++r) ref::quantize_row(t, w.data() + r * cols, m.bytes.data() + r * row_bytes(t, cols), cols);
  return m;
}

void check_against_double(const FMat& W, const std::vector<float>& X, int64_t ldx, int64_t n,
                          const std::vector<float>& Y, int64_t ldy, const char* what) {
  std::vector<float> w(size_t(W.cols));
  for (int64_t r = 0; r < W.rows; ++r) {
    ref::float_row_to_f32(W.t, W.view().row(r), w.data(), W.cols);
    for (int64_t i = 0; i < n; ++i) {
      double exact = 0, mag = 0;
      for (int64_t c = 0; c < W.cols; ++c) {
        exact += double(w[c]) * X[i * ldx + c];
        mag += std::fabs(double(w[c]) * X[i * ldx + c]);
      }
      // 16 lanes each summing cols/16 terms and a reduction tree (bound kept loose: cols/8).
      const double tol = double(W.cols / 8 + 24) * 0x1p-24 * mag;
      ASSERT_NEAR(Y[i * ldy + r], exact, tol) << what << " " << dtype_name(W.t) << " rows " << W.rows << " cols "
                                              << W.cols << " n " << n << " r=" << r << " i=" << i;
    }
  }
}

struct Shape { int64_t rows, cols, n; };
const Shape kShapes[] = {{1, 1, 1},  {7, 15, 2},  {33, 16, 3},  {5, 17, 7},     {9, 100, 16},
                         {4, 33, 33}, {6, 64, 100}, {37, 4096 + 40, 1}, {4097, 64, 2}, {13, 4096 + 7, 5}, {9, 4096 + 9, 40},
                         // Many activation rows (decode batches of an lm_head): partial 4x4 tiles on both
                         // sides, K not a multiple of 16, one or several blocks of widened rows.
                         {4, 128, 32}, {38, 128, 200}, {70, 131, 33}, {5, 1, 81}, {11, 1024, 150}, {36, 17, 47},
                         // K a multiple of 16 up to 256 with 64+ activation rows, or 32+ and 4096+ weight rows (the
                         // AVX-512 vocabulary-in-lanes form): panels of 48 weight rows and a partial last one
                         // (1, 17, 33 rows), 1-3 activation rows left over; K = 272 is past it.
                         {97, 16, 64}, {49, 256, 65}, {145, 48, 66}, {65, 128, 67}, {4100, 32, 33}, {48, 272, 64}};

class MatmulFIsa : public ::testing::TestWithParam<std::tuple<Isa, DType>> {};

TEST_P(MatmulFIsa, WithinFloatRoundingAndBitIdenticalToTheReference) {
  const auto [isa, t] = GetParam();
  MS_REQUIRE_ISA(isa);
  uint64_t seed = 1;
  for (const Shape& s : kShapes) {
    const FMat W = float_matrix(t, s.rows, s.cols, ++seed);
    const int64_t ldx = s.cols + 3, ldy = s.rows + 2;
    const auto X = gaussian(size_t(s.n * ldx), ++seed);
    std::vector<float> Y(size_t(s.n * ldy), 555.0f);
    isa_matmul_f(isa, W.view(), X.data(), ldx, s.n, Y.data(), ldy);
    check_against_double(W, X, ldx, s.n, Y, ldy, isa_str(isa));
    for (int64_t i = 0; i < s.n; ++i)
      for (int64_t r = s.rows; r < ldy; ++r) ASSERT_EQ(Y[i * ldy + r], 555.0f);
    std::vector<float> R(Y.size(), 555.0f);
    ref::matmul_float(W.view(), X.data(), ldx, s.n, R.data(), ldy);
    EXPECT_EQ(std::memcmp(Y.data(), R.data(), Y.size() * sizeof(float)), 0)
        << isa_str(isa) << " " << dtype_name(t) << " rows " << s.rows << " cols " << s.cols << " n " << s.n
        << ": not the reference's bits";
  }
}

INSTANTIATE_TEST_SUITE_P(All, MatmulFIsa,
                         ::testing::Combine(::testing::Values(Isa::Avx2, Isa::Avx512),
                                            ::testing::Values(DType::F32, DType::F16, DType::BF16)),
                         [](const auto& i) {
                           return std::string(isa_str(std::get<0>(i.param))) + "_" + dtype_name(std::get<1>(i.param));
                         });

TEST(MatmulF, OpsAndReferenceWithinFloatRoundingAndEqual) {
  ThreadPool pool(2);
  for (DType t : {DType::F32, DType::F16, DType::BF16}) {
    for (const Shape& s : {Shape{130, 300, 1}, Shape{64, 128, 40}, Shape{1003, 128, 200}}) {
      const FMat W = float_matrix(t, s.rows, s.cols, 9);
      const auto X = gaussian(size_t(s.n * s.cols), 10);
      std::vector<float> Y(size_t(s.n * s.rows)), Yr(size_t(s.n * s.rows));
      ops::matmul(W.view(), X.data(), s.cols, s.n, Y.data(), s.rows, pool);
      check_against_double(W, X, s.cols, s.n, Y, s.rows, "ops");
      ref::matmul_float(W.view(), X.data(), s.cols, s.n, Yr.data(), s.rows);
      check_against_double(W, X, s.cols, s.n, Yr, s.rows, "ref");
      EXPECT_EQ(std::memcmp(Y.data(), Yr.data(), Y.size() * sizeof(float)), 0) << dtype_name(t);
    }
  }
}

// ops::matmul_argmax: each row's token is greedy_argmax of the outputs
// ops::matmul writes — through both threads' ranges, partial panels and
// 1-3 rows left over; with ties (the first index wins), rows whose every
// output is negative (a panel's zero padding must not win), NaN outputs
// (never taken) and rows of -inf (token 0, as greedy_argmax gives).
TEST(MatmulArgmax, TheGreedyTokenOfTheOutputs) {
  if (std::string(ops::isa_name()) != "avx512") GTEST_SKIP() << "kernels below AVX-512: ops::matmul_argmax is not fused";
  for (int threads : {1, 2}) {
    ThreadPool pool(threads);
    for (DType t : {DType::BF16, DType::F16}) {
      for (const Shape& s : {Shape{1003, 128, 200}, Shape{37, 16, 8}, Shape{4097, 64, 11}, Shape{130, 256, 9}}) {
        FMat W = float_matrix(t, s.rows, s.cols, 40 + uint64_t(s.rows));
        auto X = gaussian(size_t(s.n * s.cols), 41);
        const size_t rb = row_bytes(t, s.cols);
        // Ties: rows 2, 3 and 18 (lane 2 again) are copies of row s.rows - 1
        // (the largest output is made to be there for activation row 0);
        // rows 5 and s.rows - 2 (the last of their lane) are NaN for every
        // activation row whose first two columns are positive; for
        // activation row 1 every output is negative.
        std::vector<float> big(size_t(s.cols), 4.0f), nan_row(size_t(s.cols), 0.0f);
        ref::quantize_row(t, big.data(), W.bytes.data() + size_t(s.rows - 1) * rb, s.cols);
        for (int64_t r : {2, 3, 18})
          if (r < s.rows - 1) std::memcpy(W.bytes.data() + size_t(r) * rb, W.bytes.data() + size_t(s.rows - 1) * rb, rb);
        for (int64_t c = 0; c < s.cols; ++c) X[size_t(c)] = std::fabs(X[size_t(c)]) + 0.5f;
        nan_row[0] = INFINITY;
        nan_row[1] = -INFINITY;
        for (int64_t r : {int64_t(5), s.rows - 2}) ref::quantize_row(t, nan_row.data(), W.bytes.data() + size_t(r) * rb, s.cols);
        for (int64_t c = 0; c < s.cols; ++c) X[size_t(s.cols + c)] = 0.0f;
        X[size_t(s.cols)] = 1.0f;  // activation row 1: outputs = column 0 of W
        std::vector<uint8_t> neg(W.bytes);
        FMat Wn = W;
        for (int64_t r = 0; r < s.rows; ++r) {
          std::vector<float> w(size_t(s.cols));
          ref::float_row_to_f32(t, W.bytes.data() + size_t(r) * rb, w.data(), s.cols);
          w[0] = -std::fabs(w[0]) - 0.25f;
          ref::quantize_row(t, w.data(), Wn.bytes.data() + size_t(r) * rb, s.cols);
        }
        for (const FMat* m : {&W, &Wn}) {
          std::vector<float> Y(size_t(s.n * s.rows));
          ops::matmul(m->view(), X.data(), s.cols, s.n, Y.data(), s.rows, pool);
          std::vector<int32_t> got(size_t(s.n), -7);
          ASSERT_TRUE(ops::matmul_argmax(m->view(), X.data(), s.cols, s.n, got.data(), pool));
          for (int64_t i = 0; i < s.n; ++i)
            ASSERT_EQ(got[size_t(i)], greedy_argmax(Y.data() + i * s.rows, s.rows))
                << dtype_name(t) << " rows " << s.rows << " cols " << s.cols << " n " << s.n << " row " << i
                << " threads " << threads << (m == &Wn ? " (negative column 0)" : "");
          EXPECT_EQ(got[0], 2) << "the first of the tied largest outputs";
        }
      }
      // Every output -inf: token 0.
      FMat W = float_matrix(t, 70, 32, 3);
      std::vector<float> ninf(32, -INFINITY);
      for (int64_t r = 0; r < 70; ++r) ref::quantize_row(t, ninf.data(), W.bytes.data() + size_t(r) * row_bytes(t, 32), 32);
      std::vector<float> X(8 * 32, 1.0f);
      std::vector<int32_t> got(8, -7);
      ASSERT_TRUE(ops::matmul_argmax(W.view(), X.data(), 32, 8, got.data(), pool));
      for (int32_t g : got) EXPECT_EQ(g, 0);
    }
  }
}

TEST(MatmulArgmax, DeclinesWhatItDoesNotFuse) {
  ThreadPool pool(2);
  std::vector<int32_t> out(16, -7);
  const auto X = gaussian(16 * 300, 5);
  for (const Shape& s : {Shape{64, 131, 16}, Shape{64, 272, 16}, Shape{64, 128, 7}}) {
    const FMat W = float_matrix(DType::BF16, s.rows, s.cols, 6);
    EXPECT_FALSE(ops::matmul_argmax(W.view(), X.data(), s.cols, s.n, out.data(), pool)) << s.cols << " " << s.n;
  }
  const FMat F = float_matrix(DType::F32, 64, 128, 7);
  EXPECT_FALSE(ops::matmul_argmax(F.view(), X.data(), 128, 16, out.data(), pool));
  for (int32_t v : out) EXPECT_EQ(v, -7);
}

}  // namespace
}  // namespace ms::test
