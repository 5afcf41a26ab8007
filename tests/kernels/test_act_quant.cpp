// Activation quantization: the reference semantics, and every ISA's version
// bit-exact against it (quants, scales, block sums).
#include <gtest/gtest.h>

#include <cmath>

#include "kernel_test_util.h"

namespace ms::test {
namespace {

std::vector<float> tricky_acts(int64_t n, int64_t cols, uint64_t seed) {
  auto x = gaussian(size_t(n * cols), seed, 2.0f);
  for (int64_t i = 0; i < n; ++i) {
    float* r = x.data() + i * cols;
    // An all-zero block, a block with exact .5 ties (amax 127 -> scale 1), tiny
  // values, huge values (scales beyond f16's range).
    if (cols >= 64) {
      for (int j = 0; j < 32; ++j) r[32 + j] = 0.0f;
    }
    if (cols >= 96) {
      for (int j = 0; j < 32; ++j) r[64 + j] = float(j) - 15.5f;
      r[64] = 127.0f;
    }
    if (cols >= 128) {
      for (int j = 0; j < 32; ++j) r[96 + j] *= 1e-20f;
    }
    if (cols >= 160) {
      for (int j = 0; j < 32; ++j) r[128 + j] *= 1e7f;
    }
  }
  return x;
}

TEST(ActQuant, ReferenceSemantics) {
  const int64_t cols = 512;
  const auto x = tricky_acts(1, cols, 3);
  for (auto f : {ref::ActFormat::Q8_32, ref::ActFormat::Q8_256}) {
    const int64_t B = ref::act_block(f);
    std::vector<int8_t> q(cols);
    std::vector<float> d(cols / B);
    std::vector<int32_t> s(cols / B);
    std::vector<int16_t> bs(cols / 16);
    ref::quantize_act_row(f, x.data(), cols, q.data(), d.data(), s.data(), bs.data());
    for (int64_t b = 0; b < cols / B; ++b) {
      float amax = 0;
      for (int64_t i = 0; i < B; ++i) amax = std::max(amax, std::fabs(x[b * B + i]));
      // llama.cpp's scales: q = round(x * 127/a); d = f16(a/127) for Q8_32
      // (f32 where f16 cannot hold it), 1 / (127/a) for Q8_256.
      const float id = amax > 0 ? 127.0f / amax : 0.0f;
      const float d32 = amax / 127.0f, d16 = f16_to_f32(f32_to_f16(d32));
      const float want = amax == 0 ? 0.0f
                         : f == ref::ActFormat::Q8_256 ? 1.0f / id
                         : (d16 != 0.0f && std::isfinite(d16) ? d16 : d32);
      EXPECT_EQ(d[b], want) << "block " << b;
      if (f == ref::ActFormat::Q8_32 && (b == 3 || b == 4)) {
        EXPECT_EQ(d[b], d32) << "block " << b << " is beyond f16's range and keeps an f32 scale";
      }
      // Reconstruction: half a quantization step, plus the scale's own rounding
      // (f16 has 11 significant bits) over at most 127 steps.
      const float bound = d32 * 0.5f * (1 + 1e-5f) + std::fabs(d[b] - d32) * 127.0f * (1 + 1e-5f);
      for (int64_t i = 0; i < B; ++i) {
        EXPECT_EQ(q[b * B + i], int8_t(std::nearbyint(x[b * B + i] * id)));
        EXPECT_LE(std::abs(int(q[b * B + i])), 127);
        EXPECT_LE(std::fabs(x[b * B + i] - d[b] * q[b * B + i]), bound);
      }
    }
    for (int64_t g = 0; g < cols / 16; ++g) {
      int sum = 0;
      for (int i = 0; i < 16; ++i) sum += q[16 * g + i];
      if (f == ref::ActFormat::Q8_256) {
        EXPECT_EQ(bs[g], sum);
      }
    }
  }
  // Ties round to even: block 2 has scale 1 and values k + 0.5.
  std::vector<int8_t> q(cols);
  std::vector<float> d(cols / 32);
  std::vector<int32_t> s(cols / 32);
  ref::quantize_act_row(ref::ActFormat::Q8_32, x.data(), cols, q.data(), d.data(), s.data(), nullptr);
  ASSERT_EQ(d[2], 1.0f);
  for (int j = 1; j < 32; ++j) EXPECT_EQ(q[64 + j], int8_t(std::nearbyint(float(j) - 15.5f)));
  EXPECT_EQ(q[64 + 16], 0);  // 0.5 -> 0
  EXPECT_EQ(q[64 + 14], -2);  // -1.5 -> -2
}

class ActQuantIsa : public ::testing::TestWithParam<Isa> {};

TEST_P(ActQuantIsa, BitExactAgainstReference) {
  MS_REQUIRE_ISA(GetParam());
  for (DType wt : {DType::Q8_0, DType::Q4_K}) {
    for (int64_t cols : {256, 512, 4096 + 256}) {
      const int64_t n = 5, ldx = cols + 3;
      const auto x = tricky_acts(n, ldx, uint64_t(cols));
      const ops::QuantizedActs R = ref_acts(wt, x.data(), ldx, n, cols);
      const ops::QuantizedActs F = isa_acts(GetParam(), wt, x.data(), ldx, n, cols);
      for (int64_t i = 0; i < n; ++i) {
        const ref::ActRow r = R.row(i), f = F.row(i);
        ASSERT_EQ(0, std::memcmp(r.qs, f.qs, size_t(cols))) << dtype_name(wt) << " row " << i;
        for (int64_t b = 0; b < R.nblk; ++b) ASSERT_EQ(bits(r.d[b]), bits(f.d[b])) << b;
        if (r.sum) {
          for (int64_t b = 0; b < R.nblk; ++b) ASSERT_EQ(r.sum[b], f.sum[b]);
        }
        if (r.bsum) {
          for (int64_t g = 0; g < cols / 16; ++g) ASSERT_EQ(r.bsum[g], f.bsum[g]);
        }
      }
    }
  }
}

INSTANTIATE_TEST_SUITE_P(Isas, ActQuantIsa, ::testing::Values(Isa::Avx2, Isa::Avx512),
                         [](const auto& i) { return std::string(isa_str(i.param)); });

TEST(ActQuant, OpsApi) {
  ThreadPool pool(2);
  const auto x = gaussian(3 * 256, 5);
  ops::QuantizedActs A = ops::quantize_acts(DType::Q4_0, x.data(), 256, 3, 256, pool);
  EXPECT_EQ(A.format, ref::ActFormat::Q8_32);
  EXPECT_EQ(A.nblk, 8);
  EXPECT_EQ(A.qs_stride % 64, 0);
  ops::QuantizedActs F = ops::quantize_acts(DType::BF16, x.data(), 256, 3, 256, pool);
  EXPECT_EQ(F.format, ref::ActFormat::None);
  EXPECT_EQ(F.xrow(2)[7], x[2 * 256 + 7]);
  EXPECT_THROW(ops::quantize_acts(DType::Q4_K, x.data(), 256, 3, 128, pool), Error);
}

}  // namespace
}  // namespace ms::test
