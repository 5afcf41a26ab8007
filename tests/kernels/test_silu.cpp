// SwiGLU's elementwise step: the scalar reference against libm's expf over
// awkward lengths and the edges of exp, and each ISA's silu_mul and
// ops::silu_mul equal to the reference bit for bit (one exp polynomial).
//
// Tolerance of the reference against libm, from the arithmetic: the
// polynomial e^x is within 2 ulp of libm's (itself within 1 ulp), and 1 + e,
// the division and the product by u add one rounding each, so
// |ref - libm| <= 8·2^-24·|libm|. Outputs in the subnormal range (g below
// about -87) have an absolute spacing of 2^-149 instead, so 16·2^-149·max(1, |u|)
// is allowed on top. NaN and infinities must match.
#include <gtest/gtest.h>

#include <cmath>
#include <cstring>
#include <limits>
#include <vector>

#include "kernel_test_util.h"
#include "kernels/cpu/cpu_kernels.h"
#include "kernels/ops.h"
#include "kernels/ref/ref.h"

namespace ms::test {
namespace {

std::vector<float> gate_values(int64_t n, uint64_t seed) {
  const float inf = std::numeric_limits<float>::infinity();
  const std::vector<float> edges = {0.0f,  -0.0f, 1e-30f, -1e-30f, 80.0f,  -80.0f, 87.5f, -87.5f, 88.5f,
                                    -88.5f, 89.0f, -89.0f, 100.0f, -100.0f, 104.0f, -104.0f, 110.0f, -110.0f,
                                    1e30f, -1e30f, inf,   -inf,  std::nanf(""), 20.0f, -20.0f};
  std::vector<float> g = gaussian(size_t(n), seed, 4.0f);
  for (size_t i = 0; i < g.size() && n > 30; i += 3) g[i] = edges[(i / 3) % edges.size()];
  return g;
}

void expect_close(const std::vector<float>& got, const std::vector<float>& want, const std::vector<float>& u,
                  const char* what) {
  for (size_t i = 0; i < want.size(); ++i) {
    if (std::isnan(want[i]) || std::isinf(want[i])) {
      EXPECT_EQ(std::isnan(got[i]), std::isnan(want[i])) << what << " i=" << i;
      if (std::isinf(want[i])) {
        EXPECT_EQ(got[i], want[i]) << what << " i=" << i;
      }
      continue;
    }
    const double tol = 8 * 0x1p-24 * std::fabs(double(want[i])) + 16 * 0x1p-149 * std::max(1.0, std::fabs(double(u[i])));
    ASSERT_NEAR(got[i], want[i], tol) << what << " i=" << i;
  }
}

// The same bits, NaN payloads aside (a NaN must stay a NaN).
void expect_same(const std::vector<float>& got, const std::vector<float>& want, const char* what) {
  for (size_t i = 0; i < want.size(); ++i) {
    if (std::isnan(want[i])) {
      EXPECT_TRUE(std::isnan(got[i])) << what << " i=" << i;
      continue;
    }
    EXPECT_EQ(std::memcmp(&got[i], &want[i], 4), 0) << what << " i=" << i << ": " << got[i] << " vs " << want[i];
  }
}

TEST(Silu, ReferenceWithinAFewUlpOfLibm) {
  uint64_t seed = 30;
  for (int64_t n : {1, 7, 33, 4097}) {
    const auto g = gate_values(n, ++seed);
    const auto u = gaussian(size_t(n), ++seed);
    std::vector<float> want(static_cast<size_t>(n)), got(static_cast<size_t>(n));
    for (int64_t i = 0; i < n; ++i) want[size_t(i)] = (g[size_t(i)] / (1.0f + std::exp(-g[size_t(i)]))) * u[size_t(i)];
    ref::silu_mul(g.data(), u.data(), n, got.data());
    expect_close(got, want, u, "ref");
  }
}

class SiluIsa : public ::testing::TestWithParam<Isa> {};

TEST_P(SiluIsa, BitIdenticalToTheReference) {
  const Isa isa = GetParam();
  MS_REQUIRE_ISA(isa);
  uint64_t seed = 3;
  for (int64_t n : {1, 7, 8, 15, 16, 17, 33, 100, 4097}) {
    const auto g = gate_values(n, ++seed);
    const auto u = gaussian(size_t(n), ++seed);
    std::vector<float> want(static_cast<size_t>(n)), got(static_cast<size_t>(n) + 1, 777.0f);
    ref::silu_mul(g.data(), u.data(), n, want.data());
    if (isa == Isa::Avx512)
      cpu::avx512::silu_mul(g.data(), u.data(), n, got.data());
    else
      cpu::avx2::silu_mul(g.data(), u.data(), n, got.data());
    EXPECT_EQ(got[size_t(n)], 777.0f) << "wrote past the end, n=" << n;
    got.resize(size_t(n));
    expect_same(got, want, isa_str(isa));
  }
}

INSTANTIATE_TEST_SUITE_P(All, SiluIsa, ::testing::Values(Isa::Avx2, Isa::Avx512),
                         [](const auto& i) { return std::string(isa_str(i.param)); });

TEST(Silu, OpsInPlaceBitIdenticalToTheReference) {
  const int64_t n = 14336 + 5;
  const auto g = gate_values(n, 11);
  const auto u = gaussian(size_t(n), 12);
  std::vector<float> want(static_cast<size_t>(n)), got = g;
  ref::silu_mul(g.data(), u.data(), n, want.data());
  ops::silu_mul(got.data(), u.data(), n, got.data());  // in place, as the model calls it
  expect_same(got, want, "ops");
}

}  // namespace
}  // namespace ms::test
