// Quantization: per-element error bounds for the legacy formats, round-trip
// error levels for every format, quality of the K-quant search against a plain
// min/max quantizer, and degenerate inputs.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>

#include "kernel_test_util.h"

namespace ms::test {
namespace {

std::vector<float> roundtrip(DType t, const std::vector<float>& x) {
  std::vector<uint8_t> q(row_bytes(t, int64_t(x.size())));
  ops::quantize_row(t, x.data(), q.data(), int64_t(x.size()));
  std::vector<float> y(x.size());
  ops::dequantize_row(t, q.data(), y.data(), int64_t(x.size()));
  return y;
}

double rel_rmse(const std::vector<float>& x, const std::vector<float>& y) {
  double e = 0, s = 0;
  for (size_t i = 0; i < x.size(); ++i) {
    e += double(x[i] - y[i]) * (x[i] - y[i]);
    s += double(x[i]) * x[i];
  }
  return std::sqrt(e / s);
}

// Relative RMS error on Gaussian data: an upper bound per type (measured
// levels are ~10-20% below these) and a lower bound that catches a type that
// silently stores more precision than it should.
struct Level { DType t; double lo, hi; };
const Level kLevels[] = {
    {DType::Q8_0, 0.004, 0.0064}, {DType::Q4_0, 0.06, 0.103},  {DType::Q4_1, 0.055, 0.094},
    {DType::Q5_0, 0.03, 0.051},   {DType::Q5_1, 0.027, 0.046}, {DType::Q4_K, 0.05, 0.084},
    {DType::Q5_K, 0.024, 0.042},  {DType::Q6_K, 0.012, 0.0215}, {DType::Q8_K, 0.005, 0.0083},
    {DType::F16, 0.0, 0.0003},    {DType::BF16, 0.0, 0.0021},
};

TEST(Quantize, RoundTripErrorLevels) {
  const auto x = gaussian(256 * 64, 7);
  for (const Level& l : kLevels) {
    const double e = rel_rmse(x, roundtrip(l.t, x));
    EXPECT_GT(e, l.lo) << dtype_name(l.t);
    EXPECT_LT(e, l.hi) << dtype_name(l.t);
  }
}

TEST(Quantize, LegacyPerElementBounds) {
  const auto x = gaussian(32 * 200, 11, 3.0f);
  for (DType t : {DType::Q8_0, DType::Q4_0, DType::Q4_1, DType::Q5_0, DType::Q5_1}) {
    const auto y = roundtrip(t, x);
    for (size_t b = 0; b < x.size() / 32; ++b) {
      float mn = x[32 * b], mx = x[32 * b], amax = 0;
      for (int j = 0; j < 32; ++j) {
        mn = std::min(mn, x[32 * b + j]);
        mx = std::max(mx, x[32 * b + j]);
        amax = std::max(amax, std::fabs(x[32 * b + j]));
      }
      // Step of the grid; the stored f16 scale (and min) add a relative error of
      // 2^-11 over at most 32 steps. Q4_0/Q5_0 put the largest magnitude at -8
      // (-16) steps, so values of the other sign can sit one step past +7 (+15).
      const float step = t == DType::Q8_0 ? amax / 127 : t == DType::Q4_0 ? amax / 8 : t == DType::Q5_0 ? amax / 16
                         : t == DType::Q4_1 ? (mx - mn) / 15 : (mx - mn) / 31;
      const float half = (t == DType::Q4_0 || t == DType::Q5_0) ? 1.0f : 0.5f;
      const float bound = step * half + (amax + step * 32) * 1.1e-3f;
      for (int j = 0; j < 32; ++j) ASSERT_LE(std::fabs(x[32 * b + j] - y[32 * b + j]), bound) << dtype_name(t) << " " << b;
    }
  }
}

TEST(Quantize, Q8_0MatchesGridExactly) {
  // amax = 127 -> d = 1 exactly: values on the grid come back unchanged.
  std::vector<float> x(32);
  for (int j = 0; j < 32; ++j) x[j] = float(j * 8 - 127 + (j == 0 ? 0 : 1));
  x[5] = -127;
  const auto y = roundtrip(DType::Q8_0, x);
  for (int j = 0; j < 32; ++j) EXPECT_EQ(y[j], x[j]);
}

// Weighted squared error with the K-quant importance weights (rms + |x|).
double weighted_err(const std::vector<float>& x, const std::vector<float>& y) {
  double e = 0;
  for (size_t sb = 0; sb < x.size() / 256; ++sb) {
    double s2 = 0;
    for (int i = 0; i < 256; ++i) s2 += double(x[256 * sb + i]) * x[256 * sb + i];
    const double av = std::sqrt(2 * s2 / 256);
    for (int i = 0; i < 256; ++i) {
      const size_t k = 256 * sb + i;
      e += (av + std::fabs(x[k])) * double(x[k] - y[k]) * (x[k] - y[k]);
    }
  }
  return e;
}

// Plain min/max quantizer in the Q4_K/Q5_K layout (what the search must beat):
// per sub-block scale = (max-min)/nmax, min = -min(0, min), 6-bit scales by rounding.
std::vector<float> plain_kquant(const std::vector<float>& x, int nmax) {
  std::vector<float> y(x.size());
  for (size_t sb = 0; sb < x.size() / 256; ++sb) {
    const float* xs = x.data() + 256 * sb;
    float sc[8], mn[8], msc = 0, mmn = 0;
    for (int j = 0; j < 8; ++j) {
      float lo = 0, hi = xs[32 * j];
      for (int l = 0; l < 32; ++l) {
        lo = std::min(lo, xs[32 * j + l]);
        hi = std::max(hi, xs[32 * j + l]);
      }
      sc[j] = (hi - lo) / float(nmax);
      mn[j] = -lo;
      msc = std::max(msc, sc[j]);
      mmn = std::max(mmn, mn[j]);
    }
    const float d = f16_to_f32(f32_to_f16(msc / 63)), dm = f16_to_f32(f32_to_f16(mmn / 63));
    for (int j = 0; j < 8; ++j) {
      const float s = d * float(std::lround(sc[j] / (msc / 63))), m = dm * float(std::lround(mn[j] / (mmn / 63)));
      for (int l = 0; l < 32; ++l) {
        const long q = s > 0 ? std::clamp(std::lround((xs[32 * j + l] + m) / s), 0L, long(nmax)) : 0;
        y[256 * sb + 32 * j + l] = s * float(q) - m;
      }
    }
  }
  return y;
}

TEST(Quantize, KQuantSearchBeatsPlainMinMax) {
  for (uint64_t seed : {1, 2, 3}) {
    // Heavy-tailed data (Gaussian with occasional outliers) like real weights.
    auto x = gaussian(256 * 32, seed);
    for (size_t i = 0; i < x.size(); i += 97) x[i] *= 6.0f;
    for (auto [t, nmax] : {std::pair{DType::Q4_K, 15}, std::pair{DType::Q5_K, 31}}) {
      const double ours = weighted_err(x, roundtrip(t, x));
      const double plain = weighted_err(x, plain_kquant(x, nmax));
      EXPECT_LT(ours, 0.9 * plain) << dtype_name(t) << " seed " << seed;
    }
  }
}

TEST(Quantize, DegenerateInputs) {
  for (DType t : kQuantTypes) {
    const int64_t n = 512;
    for (float v : {0.0f, 1.0f, -3.5f, 1e-30f, 1e4f}) {
      std::vector<float> x(n, v);
      const auto y = roundtrip(t, x);
      for (int64_t i = 0; i < n; ++i) {
        ASSERT_TRUE(std::isfinite(y[i])) << dtype_name(t) << " " << v;
        ASSERT_LE(std::fabs(y[i] - v), std::fabs(v) * 0.07f + 1e-6f) << dtype_name(t) << " " << v;
      }
    }
    // One large value among zeros, sign changes.
    std::vector<float> x(n, 0.0f);
    x[3] = 100.0f;
    x[300] = -50.0f;
    const auto y = roundtrip(t, x);
    for (int64_t i = 0; i < n; ++i) ASSERT_TRUE(std::isfinite(y[i]));
    EXPECT_NEAR(y[3], 100.0f, 100.0f * 0.07f) << dtype_name(t);
  }
}

TEST(Quantize, FloatTypesRoundToNearestEven) {
  const float x[3] = {1.0f + std::ldexp(1.0f, -8), 1.0f + 3 * std::ldexp(1.0f, -8), -2.0f};
  uint16_t b[3];
  ops::quantize_row(DType::BF16, x, b, 3);
  EXPECT_EQ(b[0], 0x3F80);  // tie -> even
  EXPECT_EQ(b[1], 0x3F82);  // tie -> even (up)
  EXPECT_EQ(b[2], 0xC000);
}

}  // namespace
}  // namespace ms::test
