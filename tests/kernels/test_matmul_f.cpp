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
#include "core/cpu_features.h"
#include "kernels/cpu/cpu_kernels.h"
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
// Both passes: f32, and (where the CPU has AVX512_BF16) bf16 scores with the
// near-best entries computed again in f32.
std::vector<cpu::avx512::ArgmaxPass> argmax_passes() {
  std::vector<cpu::avx512::ArgmaxPass> p{cpu::avx512::ArgmaxPass::F32};
  if (cpu_features().avx512bf16) p.push_back(cpu::avx512::ArgmaxPass::Bf16Candidates);
  return p;
}

// Puts back the pass the process chose when the test ends.
struct PassGuard {
  cpu::avx512::ArgmaxPass was = cpu::avx512::argmax_pass();
  ~PassGuard() { cpu::avx512::set_argmax_pass(was); }
};

TEST(MatmulArgmax, TheGreedyTokenOfTheOutputs) {
  if (std::string(ops::isa_name()) != "avx512") GTEST_SKIP() << "kernels below AVX-512: ops::matmul_argmax is not fused";
  PassGuard guard;
  for (cpu::avx512::ArgmaxPass pass : argmax_passes())
  for (int threads : {1, 2}) {
    cpu::avx512::set_argmax_pass(pass);
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
                << " threads " << threads << (m == &Wn ? " (negative column 0)" : "") << " pass " << int(pass);
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

// The bf16 pass (argmax_bf16_avx512.cpp) against the outputs' greedy token
// where it is hardest: the winner tied with, or a bit of one weight away
// from, other entries in other panels and threads' ranges; more near-ties
// than a row keeps (those rows go to the f32 pass); a row with a NaN and a
// row too large for the bound (the f32 pass). The counters show which way
// each row went, so each case is known to have run.
TEST(MatmulArgmax, Bf16PassKeepsTheF32Token) {
  if (std::string(ops::isa_name()) != "avx512" || !cpu_features().avx512bf16)
    GTEST_SKIP() << "no AVX512_BF16: the bf16 pass is not used";
  PassGuard guard;
  cpu::avx512::set_argmax_pass(cpu::avx512::ArgmaxPass::Bf16Candidates);
  for (int threads : {1, 2}) {
    ThreadPool pool(threads);
    for (const Shape& s : {Shape{4099, 128, 37}, Shape{1003, 256, 9}, Shape{200, 16, 8}, Shape{97, 48, 13}}) {
      FMat W = float_matrix(DType::BF16, s.rows, s.cols, 70 + uint64_t(s.rows));
      auto X = gaussian(size_t(s.n * s.cols), 71);
      const size_t rb = row_bytes(DType::BF16, s.cols);
      auto row = [&](int64_t r) { return W.bytes.data() + size_t(r) * rb; };
      // Row 0's winner: entry 7 along x0; entry s.rows - 3 (the last panel,
      // the other thread) the same but for the lowest bit of one weight, and
      // entry s.rows / 2 an exact copy (a tie: 7, the first, wins).
      std::vector<float> w(size_t(s.cols));
      for (int64_t c = 0; c < s.cols; ++c) w[size_t(c)] = 2.0f * X[size_t(c)];
      ref::quantize_row(DType::BF16, w.data(), row(7), s.cols);
      std::memcpy(row(s.rows / 2), row(7), rb);
      std::memcpy(row(s.rows - 3), row(7), rb);
      row(s.rows - 3)[2 * (s.cols / 2)] ^= 1;  // the low mantissa bit of weight cols/2
      // Row 1: 80 entries (more than a row keeps) within a few bits of each other.
      for (int64_t c = 0; c < s.cols; ++c) w[size_t(c)] = 2.0f * X[size_t(s.cols + c)];
      for (int64_t k = 0; k < std::min<int64_t>(80, s.rows - 10); ++k) {
        uint8_t* r = row(10 + k);
        ref::quantize_row(DType::BF16, w.data(), r, s.cols);
        r[2 * (k % s.cols)] ^= uint8_t(k & 1);
      }
      // Row 4: bf16 rounding reverses the order of the two best entries.
      // x = (1.0040, 1.0035, 0...) rounds to (1.0078125, 1.0); entry 3 =
      // 16 * (1.0078125, 0...) and entry s.rows - 6 = 16 * (0, 1.015625, 0...)
      // score 16.2510 and 16.2500, but their logits are 16.1896 and 16.3069.
      for (int64_t c = 0; c < s.cols; ++c) X[size_t(4 * s.cols + c)] = 0.0f;
      X[size_t(4 * s.cols)] = 1.0040f, X[size_t(4 * s.cols + 1)] = 1.0035f;
      std::fill(w.begin(), w.end(), 0.0f);
      w[0] = 16.0f * 1.0078125f;
      ref::quantize_row(DType::BF16, w.data(), row(3), s.cols);
      w[0] = 0.0f, w[1] = 16.0f * 1.015625f;
      ref::quantize_row(DType::BF16, w.data(), row(s.rows - 6), s.cols);
      if (s.n > 2) X[size_t(2 * s.cols + 1)] = NAN;                // row 2: a NaN (every output NaN: token 0)
      if (s.n > 3) X[size_t(3 * s.cols)] = 1e32f;                  // row 3: too large for the bound
      const auto before = cpu::avx512::bf16_argmax_stats();
      std::vector<int32_t> got(size_t(s.n), -7);
      ASSERT_TRUE(ops::matmul_argmax(W.view(), X.data(), s.cols, s.n, got.data(), pool));
      const auto after = cpu::avx512::bf16_argmax_stats();
      std::vector<float> Y(size_t(s.n * s.rows));
      ops::matmul(W.view(), X.data(), s.cols, s.n, Y.data(), s.rows, pool);
      for (int64_t i = 0; i < s.n; ++i)
        ASSERT_EQ(got[size_t(i)], greedy_argmax(Y.data() + i * s.rows, s.rows))
            << "rows " << s.rows << " cols " << s.cols << " n " << s.n << " row " << i << " threads " << threads;
      const float y7 = Y[7], yc = Y[size_t(s.rows - 3)];
      EXPECT_EQ(got[0], yc > y7 ? s.rows - 3 : 7) << y7 << " " << yc;
      EXPECT_EQ(got[4], s.rows - 6) << "the larger logit, not the larger bf16 score";
      // Each call (a range of entries) scores every row; rows 2 and 3 go to
      // the f32 pass in each, and row 1 where one range holds its 80 near-ties
      // (one thread: one range), as may any row those 80 lead; the rest keep
      // a few entries each and compute those again.
      const uint64_t scored = after.rows - before.rows, f32 = after.f32_rows - before.f32_rows;
      const uint64_t calls = scored / uint64_t(s.n);
      EXPECT_EQ(scored % uint64_t(s.n), 0u);
      EXPECT_GE(calls, 1u);
      EXPECT_GE(f32, 2 * calls + (threads == 1 ? 1 : 0)) << "rows 1-3 took the f32 pass";
      EXPECT_LT(f32, scored) << "some rows took the bf16 pass to its end";
      EXPECT_GT(after.recomputed - before.recomputed, 0u);
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
