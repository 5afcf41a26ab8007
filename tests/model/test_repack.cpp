// The kernels' panel layout (QuantPlan::repack) changes where the weights'
// bytes sit, never the results: logits are bit-identical with and without it,
// for Q8_0 / Q4_0 GGUF files and for load-time quantization.
#include <gtest/gtest.h>

#include <cstring>

#include "kernels/ops.h"
#include "model_util.h"

namespace ms::test {
namespace {

bool any_panel(const Mixtral& m) {
  for (const LayerWeights& l : m.weights().layers)
    for (const MatView* v : {&l.wq, &l.wk, &l.wv, &l.wo, &l.w1[0], &l.w2[0], &l.w3[0]})
      if (v->panel16) return true;
  return false;
}

void expect_same(const std::string& path, const std::string& quant, DType t) {
  if (!ops::can_repack(t)) GTEST_SKIP() << "this machine's kernels do not use the panel layout";
  const std::vector<int32_t> ids = {1, 415, 2245, 773, 28725, 304, 272, 2245, 403, 1179, 28723, 13, 1014, 2245, 295,
                                    7946, 272, 2456, 28725, 369, 378, 403, 1179, 28747};
  Harness a(path, 2, 64, quant, 16, true), b(path, 2, 64, quant, 16, false);
  ASSERT_TRUE(any_panel(*a.model));
  ASSERT_FALSE(any_panel(*b.model));
  const auto la = a.prefill_all(ids), lb = b.prefill_all(ids);
  ASSERT_EQ(la.size(), lb.size());
  EXPECT_EQ(std::memcmp(la.data(), lb.data(), la.size() * sizeof(float)), 0);
  std::vector<float> pa, pb;
  EXPECT_EQ(a.greedy(ids, 8, &pa), b.greedy(ids, 8, &pb));
}

TEST(Repack, Q8_0GgufBitIdentical) { expect_same(fixture("gguf/tiny-mixtral-kjv.Q8_0.gguf"), "none", DType::Q8_0); }
TEST(Repack, Q4_0GgufBitIdentical) { expect_same(fixture("gguf/tiny-mixtral-kjv.Q4_0.gguf"), "none", DType::Q4_0); }
TEST(Repack, LoadTimeQ8_0BitIdentical) { expect_same(bundled_model(), "q8_0", DType::Q8_0); }

}  // namespace
}  // namespace ms::test
