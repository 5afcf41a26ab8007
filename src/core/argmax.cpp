// argmax.cpp — greedy_argmax (see argmax.h).
#include "core/argmax.h"

#include <algorithm>
#include <limits>

namespace ms {

namespace {
constexpr float kNegInf = -std::numeric_limits<float>::infinity();
}  // namespace

// Eight independent maxima (a loop the compiler vectorises), then their maximum.
float max_value(const float* x, int64_t n) {
  float a[8] = {kNegInf, kNegInf, kNegInf, kNegInf, kNegInf, kNegInf, kNegInf, kNegInf};
  int64_t i = 0;
  for (; i + 8 <= n; i += 8)
    for (int j = 0; j < 8; ++j) a[j] = x[i + j] > a[j] ? x[i + j] : a[j];
  for (; i < n; ++i) a[0] = x[i] > a[0] ? x[i] : a[0];
  float m = a[0];
  for (int j = 1; j < 8; ++j) m = a[j] > m ? a[j] : m;
  return m;
}

int32_t greedy_argmax(const float* x, int64_t n) {
  constexpr int64_t kBlock = 512;
  float best = kNegInf;
  int64_t best_block = -1;
  for (int64_t b = 0; b < n; b += kBlock) {
    const float m = max_value(x + b, std::min(kBlock, n - b));
    if (m > best) {
      best = m;
      best_block = b;
    }
  }
  if (best_block < 0) return 0;
  const int64_t end = std::min(n, best_block + kBlock);
  for (int64_t i = best_block; i < end; ++i)
    if (x[i] == best) return static_cast<int32_t>(i);
  return 0;  // unreachable
}

}  // namespace ms
