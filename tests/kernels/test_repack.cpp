// Panel layout (ops::repack_panels): a repacked Q8_0 / Q4_0 matrix gives
// bit for bit the same products as the row-major original, for every n (the
// fused small-n path and the packed GEMM path), thread count, row count not
// a multiple of 16, and row range split.
#include <gtest/gtest.h>

#include <cstdlib>
#include <string>

#include "core/aligned.h"
#include "kernel_test_util.h"

namespace ms::test {
namespace {

struct Repacked {
  std::vector<uint8_t, AlignedAllocator<uint8_t>> bytes;
  MatView view;
};

Repacked repack(const MatView& src, ThreadPool& pool) {
  Repacked r;
  r.bytes.resize(ops::repacked_bytes(src.dtype, src.rows, src.cols));
  r.view = ops::repack_panels(src, r.bytes.data(), pool);
  return r;
}

std::vector<float> product(const MatView& W, const std::vector<float>& X, int64_t n, ThreadPool& pool) {
  std::vector<float> Y(size_t(n * W.rows), -1.0f);
  ops::matmul(W, X.data(), W.cols, n, Y.data(), W.rows, pool);
  return Y;
}

TEST(Repack, SameBitsAsRowMajor) {
  int checked = 0;
  for (DType t : {DType::Q8_0, DType::Q4_0, DType::Q4_K, DType::Q5_K, DType::Q6_K}) {
    if (!ops::can_repack(t)) continue;  // no panel kernels for t on this ISA, or MOESERVE_REPACK=0
    ++checked;
    const int64_t k = block_elems(t) / 32;  // columns in multiples of the block
    for (auto [rows, cols] : {std::pair<int64_t, int64_t>{1, 32 * k}, {7, 64 * k}, {16, 96 * k}, {20, 32 * k}, {33, 128 * k},
                              {100, 4096 + 32 * k}}) {
      const QMat M = random_block_matrix(t, rows, cols, uint64_t(rows * 7 + cols));
      for (int threads : {1, 3}) {
        ThreadPool pool(threads);
        const Repacked R = repack(M.view(), pool);
        ASSERT_TRUE(R.view.panel16);
        for (int64_t n : {1, 2, 3, 4, 5, 6, 7, 8, 9, 12, 16, 17, 37}) {
          const auto X = gaussian(size_t(n * cols), uint64_t(n + 100 * rows));
          const auto want = product(M.view(), X, n, pool);
          const auto got = product(R.view, X, n, pool);
          for (size_t k = 0; k < want.size(); ++k)
            ASSERT_EQ(bits(want[k]), bits(got[k]))
                << dtype_name(t) << " rows " << rows << " cols " << cols << " n " << n << " threads " << threads
                << " at " << k;
        }
      }
    }
  }
  if (checked == 0) GTEST_SKIP() << "panel layout off (MOESERVE_REPACK=0, or no panel kernels on " << ops::isa_name() << ")";
}

// Each ISA's panel kernels called directly (so that the AVX2 ones are checked
// on an AVX-512 machine too): bit for bit ref::vec_dot, for the fused small-n
// path and the packed large-n path, rows not a multiple of 8 or 16, and a row
// range that starts at a later panel.
TEST(Repack, EachIsaBitExactAgainstReference) {
  for (Isa isa : {Isa::Avx2, Isa::AvxVnni, Isa::Avx512}) {
    if (!has_isa(isa)) continue;
    for (DType t : {DType::Q8_0, DType::Q4_0, DType::Q4_K, DType::Q5_K, DType::Q6_K}) {
      const int64_t k = block_elems(t) / 32;  // columns in multiples of the block
      for (auto [rows, cols] : {std::pair<int64_t, int64_t>{1, 32 * k}, {7, 64 * k}, {16, 96 * k}, {20, 32 * k},
                                {33, 128 * k}, {100, 4096 + 32 * k}}) {
        const QMat M = random_block_matrix(t, rows, cols, uint64_t(rows * 3 + cols));
        ThreadPool pool(1);
        const Repacked R = repack(M.view(), pool);
        for (int64_t n : {1, 2, 3, 4, 5, 6, 7, 8, 9, 12, 16, 17, 37}) {
          const auto X = gaussian(size_t(n * cols), uint64_t(n + 10 * rows));
          const ops::QuantizedActs A = ref_acts(t, X.data(), cols, n, cols);
          const int64_t ldy = rows + 3;
          for (int64_t r0 : {int64_t(0), int64_t(16)}) {
            if (r0 >= rows) continue;
            std::vector<float> Y(size_t(n * ldy), 777.0f);
            isa_matmul_q(isa, R.view, A, r0, rows, Y.data(), ldy);
            for (int64_t i = 0; i < n; ++i)
              for (int64_t r = 0; r < ldy; ++r) {
                const float want = r >= r0 && r < rows ? ref::vec_dot(t, M.view().row(r), A.row(i), cols) : 777.0f;
                ASSERT_EQ(bits(Y[i * ldy + r]), bits(want)) << isa_str(isa) << " " << dtype_name(t) << " rows " << rows
                                                            << " cols " << cols << " n " << n << " from row " << r0
                                                            << " at i=" << i << " r=" << r;
              }
          }
        }
      }
    }
  }
}

TEST(Repack, LayoutAndErrors) {
  EXPECT_EQ(ops::repacked_bytes(DType::Q8_0, 16, 64), size_t(2 * 544));
  EXPECT_EQ(ops::repacked_bytes(DType::Q8_0, 17, 64), size_t(2 * 2 * 544));  // padded to 2 panels
  EXPECT_EQ(ops::repacked_bytes(DType::Q4_0, 32, 4096), size_t(2 * 128 * 288));
  EXPECT_EQ(ops::repacked_bytes(DType::Q4_K, 17, 512), size_t(2 * 2 * 16 * 144));  // as stored, padded to 2 panels
  EXPECT_EQ(ops::repacked_bytes(DType::Q5_K, 16, 256), size_t(16 * 176));          // as stored
  EXPECT_EQ(ops::repacked_bytes(DType::Q6_K, 16, 256), size_t(16 * 210 + 32));      // + the header's overlap
  ThreadPool pool(1);
  const QMat M = random_block_matrix(DType::Q4_1, 16, 64, 1);
  std::vector<uint8_t> dst(4096);
  EXPECT_THROW(ops::repack_panels(M.view(), dst.data(), pool), Error);
}

TEST(Repack, PanelMatrixNeedsItsKernels) {
  // A panel-layout view must never reach a kernel that reads rows: panels
  // need the AVX2 or AVX-512 kernels.
  const std::string isa = ops::isa_name();
  const char* env = std::getenv("MOESERVE_REPACK");
  const bool repack_off = env && std::string(env) == "0";
  ThreadPool pool(1);
  for (DType t : {DType::Q8_0, DType::Q4_K, DType::Q6_K}) {
    const bool has_kernels = isa == "avx512" || isa == "avx2";
    EXPECT_EQ(ops::can_repack(t), has_kernels && !repack_off) << dtype_name(t) << " on " << isa;
    if (has_kernels) continue;
    const int64_t cols = block_elems(t);
    const QMat M = random_block_matrix(t, 16, cols, 2);
    MatView v = M.view();
    v.panel16 = true;
    const auto X = gaussian(size_t(cols), 3);
    std::vector<float> Y(16);
    EXPECT_THROW(ops::matmul(v, X.data(), cols, 1, Y.data(), 16, pool), Error) << dtype_name(t) << " on " << isa;
  }
}

}  // namespace
}  // namespace ms::test
