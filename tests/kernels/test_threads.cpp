// Threading: results are bit-for-bit independent of the number of threads,
// and of the batch size (a row of X gives the same output alone or batched).
#include <gtest/gtest.h>

#include "kernel_test_util.h"

namespace ms::test {
namespace {

std::vector<float> run(const MatView& W, const std::vector<float>& X, int64_t n, int threads) {
  ThreadPool pool(threads);
  std::vector<float> Y(size_t(n * W.rows));
  ops::matmul(W, X.data(), W.cols, n, Y.data(), W.rows, pool);
  return Y;
}

TEST(Threads, ThreadCountDoesNotChangeResults) {
  const DType types[] = {DType::Q8_0, DType::Q4_0, DType::Q4_1, DType::Q5_0, DType::Q5_1, DType::Q4_K,
                         DType::Q5_K, DType::Q6_K, DType::Q8_K, DType::F32,  DType::F16,  DType::BF16};
  for (DType t : types) {
    const int64_t rows = 333, cols = 1024;
    QMat W{t, rows, cols, row_bytes(t, cols), {}};
    W.bytes.resize(W.stride * rows);
    const auto w = gaussian(size_t(rows * cols), 3);
    for (int64_t r = 0; r < rows; ++r) ops::quantize_row(t, w.data() + r * cols, W.bytes.data() + r * W.stride, cols);
    for (int64_t n : {1, 37}) {
      const auto X = gaussian(size_t(n * cols), 4);
      const auto Y1 = run(W.view(), X, n, 1);
      for (int threads : {2, 3}) {
        const auto Yt = run(W.view(), X, n, threads);
        for (size_t k = 0; k < Y1.size(); ++k) ASSERT_EQ(bits(Y1[k]), bits(Yt[k])) << dtype_name(t) << " threads " << threads;
      }
    }
  }
}

TEST(Threads, BatchInvariantForQuantizedTypes) {
  ThreadPool pool(2);
  for (DType t : kQuantTypes) {
    const int64_t rows = 100, cols = 512, n = 21;
    const QMat W = quantized_matrix(t, rows, cols, 8);
    const auto X = gaussian(size_t(n * cols), 9);
    std::vector<float> Yb(static_cast<size_t>(n * rows)), Y1(static_cast<size_t>(rows));
    ops::matmul(W.view(), X.data(), cols, n, Yb.data(), rows, pool);
    for (int64_t i : {0L, 7L, 20L}) {
      ops::matmul(W.view(), X.data() + i * cols, cols, 1, Y1.data(), rows, pool);
      for (int64_t r = 0; r < rows; ++r) ASSERT_EQ(bits(Y1[r]), bits(Yb[i * rows + r])) << dtype_name(t);
    }
  }
}

TEST(Threads, ReadMemoryChecksum) {
  // The bandwidth probe reads every byte: its checksum is the sum of the
  // 64-bit words (plus the trailing bytes), whatever the threads and offsets.
  std::vector<uint8_t> buf((size_t(1) << 20) + 77);
  for (size_t i = 0; i < buf.size(); ++i) buf[i] = uint8_t(i * 131 + 7);
  for (size_t off : {size_t(0), size_t(8)}) {
    const size_t n = buf.size() - off;
    uint64_t want = 0;
    const size_t words = n / 64 * 64 / 8;
    for (size_t w = 0; w < words; ++w) {
      uint64_t v;
      std::memcpy(&v, buf.data() + off + 8 * w, 8);
      want += v;
    }
    for (size_t i = words * 8; i < n; ++i) want += buf[off + i];
    for (int threads : {1, 2, 3}) {
      ThreadPool pool(threads);
      EXPECT_EQ(ops::read_memory(buf.data() + off, n, pool), want) << "threads " << threads << " offset " << off;
    }
  }
}

TEST(Threads, Int8PeakProbe) {
  // The compute probe `moeserve bench` divides prefill by: every thread runs
  // the loop, so it reports a rate wherever SIMD int8 kernels run, and none
  // at the scalar level (MOESERVE_ISA=scalar), where there is no such peak.
  ThreadPool pool(2);
  const double g = ops::probe_int8_gmacs(pool, 0.005);
  if (std::string(ops::isa_name()) == "scalar")
    EXPECT_EQ(g, 0.0);
  else
    EXPECT_GT(g, 0.1) << ops::isa_name();
}

TEST(Threads, Int8ProbeLoopsCountTheirMultiplyAdds) {
  // Each ISA's probe loop (one asm block over fixed registers) reports the
  // multiply-adds it ran, and returns at once for no iterations: its loop
  // counts down to zero, so a zero count must not enter it (2^64 steps).
  const struct { Isa isa; uint64_t (*loop)(int64_t); uint64_t per_iter; } loops[] = {
      {Isa::Avx2, cpu::avx2::int8_dot_loop, 12 * 32},
      {Isa::AvxVnni, cpu::avx2::int8_dot_loop_vnni, 12 * 32},
      {Isa::Avx512, cpu::avx512::int8_dot_loop, 12 * 64},
  };
  for (const auto& l : loops) {
    if (!has_isa(l.isa)) continue;
    for (int64_t iters : {int64_t(-3), int64_t(0)}) EXPECT_EQ(l.loop(iters), 0u) << isa_str(l.isa);
    for (int64_t iters : {int64_t(1), int64_t(7), int64_t(1000)})
      EXPECT_EQ(l.loop(iters), uint64_t(iters) * l.per_iter) << isa_str(l.isa) << " iters " << iters;
  }
}

TEST(Threads, MatmulManyEqualsOneByOne) {
  // Several weights sharing the activations in one parallel pass give each
  // the bits matmul_q gives it alone (row counts not multiples of 32).
  for (DType t : {DType::Q8_0, DType::Q4_K, DType::F16}) {
    const int64_t cols = 512, n = 5;
    const QMat a = quantized_matrix(t, 45, cols, 1), b = quantized_matrix(t, 7, cols, 2), c = quantized_matrix(t, 100, cols, 3);
    const auto X = gaussian(size_t(n * cols), 9);
    for (int threads : {1, 2, 3}) {
      ThreadPool pool(threads);
      const ops::QuantizedActs A = ops::quantize_acts(t, X.data(), cols, n, cols, pool);
      const MatView va = a.view(), vb = b.view(), vc = c.view();
      std::vector<float> ya(size_t(n * 45)), yb(size_t(n * 7)), yc(size_t(n * 100));
      const ops::MatTarget ts[3] = {{&va, ya.data(), 45, &A}, {&vb, yb.data(), 7, &A}, {&vc, yc.data(), 100, &A}};
      ops::matmul_q_many(ts, 3, pool);
      for (const auto& [v, y] : {std::pair{&va, &ya}, std::pair{&vb, &yb}, std::pair{&vc, &yc}}) {
        std::vector<float> want(y->size());
        ops::matmul_q(*v, A, want.data(), v->rows, pool);
        for (size_t k = 0; k < want.size(); ++k) ASSERT_EQ(bits(want[k]), bits((*y)[k])) << dtype_name(t) << " threads " << threads;
      }
    }
  }
}

TEST(Threads, MatmulManyWithOwnActivations) {
  // A grouped pass (every expert over its own tokens): each target brings its
  // activations, with different token counts (0 included), and gets the bits
  // matmul_q gives it alone.
  for (DType t : {DType::Q8_0, DType::Q4_0, DType::Q4_K, DType::BF16}) {
    const int64_t cols = 256;
    const int64_t ns[4] = {3, 0, 9, 16};
    const int64_t rows[4] = {45, 7, 100, 33};
    std::vector<QMat> w;
    std::vector<ops::QuantizedActs> acts(4);
    std::vector<std::vector<float>> y(4);
    for (int k = 0; k < 4; ++k) w.push_back(quantized_matrix(t, rows[k], cols, uint64_t(k + 1)));
    for (int threads : {1, 2, 3}) {
      ThreadPool pool(threads);
      std::vector<MatView> views;
      std::vector<ops::MatTarget> ts;
      for (int k = 0; k < 4; ++k) {
        const auto X = gaussian(size_t(std::max<int64_t>(ns[k], 1) * cols), uint64_t(20 + k));
        ops::quantize_acts(t, X.data(), cols, ns[k], cols, pool, &acts[size_t(k)]);
        views.push_back(w[size_t(k)].view());
        y[size_t(k)].assign(size_t(ns[k] * rows[k]), -1.0f);
      }
      for (int k = 0; k < 4; ++k) ts.push_back({&views[size_t(k)], y[size_t(k)].data(), rows[k], &acts[size_t(k)]});
      ops::matmul_q_many(ts.data(), 4, pool);
      for (int k = 0; k < 4; ++k) {
        std::vector<float> want(y[size_t(k)].size());
        ops::matmul_q(views[size_t(k)], acts[size_t(k)], want.data(), rows[k], pool);
        for (size_t i = 0; i < want.size(); ++i)
          ASSERT_EQ(bits(want[i]), bits(y[size_t(k)][i])) << dtype_name(t) << " target " << k << " threads " << threads;
      }
    }
  }
  // A target without activations is the caller's bug, reported as such.
  ThreadPool pool(2);
  const QMat m = quantized_matrix(DType::Q8_0, 16, 64, 5);
  const MatView v = m.view();
  std::vector<float> out(16);
  const ops::MatTarget bad{&v, out.data(), 16, nullptr};
  EXPECT_THROW(ops::matmul_q_many(&bad, 1, pool), Error);
}

}  // namespace
}  // namespace ms::test
