// The greedy token computed with the logits (Backend::argmax_rows, the rows
// split over the CPU backend's threads) against a plain scan: the lowest
// index of the largest value, NaN never chosen, 0 when nothing is finite or
// +inf — over rows that tie within and across core/argmax.h's blocks, hold
// NaN, +-inf, or nothing else, and vocabularies that are not a multiple of
// a block.
#include <gtest/gtest.h>

#include <cmath>
#include <limits>
#include <random>
#include <vector>

#include "core/argmax.h"
#include "core/thread_pool.h"
#include "kernels/backend.h"

namespace ms {
namespace {

int32_t scan(const float* x, int64_t n) {
  int32_t best = -1;
  for (int64_t i = 0; i < n; ++i)
    if (!std::isnan(x[i]) && (best < 0 || x[i] > x[best])) best = int32_t(i);
  return best < 0 || x[best] == -std::numeric_limits<float>::infinity() ? 0 : best;
}

TEST(ArgmaxRows, EveryBackendRowIsThePlainScan) {
  const float nan = std::nanf(""), inf = std::numeric_limits<float>::infinity();
  for (int64_t v : {int64_t(1), int64_t(7), int64_t(513), int64_t(32000)}) {
    const int64_t rows = 41;
    std::vector<float> l(size_t(rows * v));
    std::mt19937 rng{static_cast<unsigned>(v)};
    std::normal_distribution<float> d;
    for (float& x : l) x = d(rng);
    for (int64_t r = 0; r < rows; ++r) {
      float* x = l.data() + r * v;
      switch (r % 8) {
        case 1: x[0] = x[v - 1] = 9.0f; break;                       // a tie across blocks: the lower id
        case 2: x[v / 2] = 9.0f, x[0] = nan; break;
        case 3: for (int64_t i = 0; i < v; ++i) x[i] = nan; break;   // nothing: 0
        case 4: for (int64_t i = 0; i < v; ++i) x[i] = -inf; break;
        case 5: x[v - 1] = inf, x[0] = nan; break;
        case 6: for (int64_t i = 0; i < v; ++i) x[i] = i % 3 ? nan : -inf; break;
        case 7: for (int64_t i = 0; i < v; ++i) x[i] = i % 2 ? 1.0f : nan; break;  // ties everywhere
        default: break;
      }
    }
    for (int threads : {1, 2, 3}) {
      ThreadPool pool(threads);
      auto be = make_backend("cpu", pool);
      std::vector<int32_t> got(size_t(rows), -7);
      be->argmax_rows(l.data(), rows, v, got.data());
      for (int64_t r = 0; r < rows; ++r) {
        EXPECT_EQ(got[size_t(r)], scan(l.data() + r * v, v)) << "vocab " << v << " row " << r << " threads " << threads;
        EXPECT_EQ(greedy_argmax(l.data() + r * v, v), got[size_t(r)]);
      }
      std::vector<int32_t> few(2, -7);  // fewer rows than 2 per thread: on the caller's thread
      be->argmax_rows(l.data(), 2, v, few.data());
      EXPECT_EQ(few[0], got[0]);
      EXPECT_EQ(few[1], got[1]);
    }
  }
}

}  // namespace
}  // namespace ms
