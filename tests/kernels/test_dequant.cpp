// Dequantization against hand-built blocks: every field set to known values,
// expected values written from the format definitions (not from ref code).
#include <gtest/gtest.h>

#include <cstring>

#include "core/error.h"
#include "kernels/ops.h"
#include "kernel_test_util.h"

namespace ms::test {
namespace {

constexpr uint16_t kHalf = 0x3800, kQuarter = 0x3400, kOne = 0x3C00, kMinusOne = 0xBC00;

std::vector<float> deq(DType t, const void* p, int64_t n) {
  std::vector<float> y(size_t(n), -12345.0f);
  ops::dequantize_row(t, p, y.data(), n);
  return y;
}

TEST(Dequant, Q8_0) {
  BlockQ8_0 b[2];
  for (int k = 0; k < 2; ++k) {
    b[k].d = k ? kQuarter : kHalf;
    for (int j = 0; j < 32; ++j) b[k].qs[j] = int8_t(j * 8 - 128 + k);
  }
  const auto y = deq(DType::Q8_0, b, 64);
  for (int k = 0; k < 2; ++k)
    for (int j = 0; j < 32; ++j) EXPECT_EQ(y[32 * k + j], float(j * 8 - 128 + k) * (k ? 0.25f : 0.5f)) << k << " " << j;
}

TEST(Dequant, Q4_0) {
  BlockQ4_0 b;
  b.d = kQuarter;
  for (int j = 0; j < 16; ++j) b.qs[j] = uint8_t(j | ((15 - j) << 4));
  const auto y = deq(DType::Q4_0, &b, 32);
  for (int j = 0; j < 16; ++j) {
    EXPECT_EQ(y[j], float(j - 8) * 0.25f);
    EXPECT_EQ(y[j + 16], float(15 - j - 8) * 0.25f);
  }
}

TEST(Dequant, Q4_1) {
  BlockQ4_1 b;
  b.d = kHalf;
  b.m = kMinusOne;
  for (int j = 0; j < 16; ++j) b.qs[j] = uint8_t(j | ((15 - j) << 4));
  const auto y = deq(DType::Q4_1, &b, 32);
  for (int j = 0; j < 16; ++j) {
    EXPECT_EQ(y[j], float(j) * 0.5f - 1.0f);
    EXPECT_EQ(y[j + 16], float(15 - j) * 0.5f - 1.0f);
  }
}

TEST(Dequant, Q5_0AndQ5_1) {
  const uint32_t qh = 0xA5C3F00Fu;  // bit e = 5th bit of element e
  BlockQ5_0 b0;
  BlockQ5_1 b1;
  b0.d = kOne;
  b1.d = kHalf;
  b1.m = kQuarter;
  std::memcpy(b0.qh, &qh, 4);
  std::memcpy(b1.qh, &qh, 4);
  for (int j = 0; j < 16; ++j) b0.qs[j] = b1.qs[j] = uint8_t(((3 * j) & 15) | (((5 * j + 1) & 15) << 4));
  const auto y0 = deq(DType::Q5_0, &b0, 32);
  const auto y1 = deq(DType::Q5_1, &b1, 32);
  for (int e = 0; e < 32; ++e) {
    const int lo = e < 16 ? (3 * e) & 15 : (5 * (e - 16) + 1) & 15;
    const int q = lo | (((qh >> e) & 1) << 4);
    EXPECT_EQ(y0[e], float(q - 16)) << e;
    EXPECT_EQ(y1[e], float(q) * 0.5f + 0.25f) << e;
  }
}

// 6-bit scales/mins of Q4_K/Q5_K written byte by byte from the layout:
// bytes 0-3: scale j (low 6 bits) | high 2 bits of scale j+4; bytes 4-7: the same
// for mins; bytes 8-11: low 4 bits of scale j+4 | low 4 bits of min j+4 << 4.
void put_k_scales(uint8_t* s, const int* sc, const int* mn) {
  for (int j = 0; j < 4; ++j) {
    s[j] = uint8_t(sc[j] | ((sc[j + 4] >> 4) << 6));
    s[j + 4] = uint8_t(mn[j] | ((mn[j + 4] >> 4) << 6));
    s[j + 8] = uint8_t((sc[j + 4] & 15) | ((mn[j + 4] & 15) << 4));
  }
}

const int kSc[8] = {1, 17, 33, 63, 5, 20, 40, 62};
const int kMn[8] = {0, 16, 31, 63, 7, 48, 3, 33};

// Element e of a Q4_K/Q5_K super-block: chunk e/64 of 32 bytes, low nibbles
// for the first 32 elements of the chunk, high nibbles for the next 32.
void put_nibble(uint8_t* qs, int e, int v) {
  uint8_t& byte = qs[32 * (e / 64) + (e % 32)];
  if ((e % 64) < 32)
    byte = uint8_t((byte & 0xF0) | v);
  else
    byte = uint8_t((byte & 0x0F) | (v << 4));
}

TEST(Dequant, Q4_K) {
  BlockQ4_K b{};
  b.d = kOne;
  b.dmin = kHalf;
  put_k_scales(b.scales, kSc, kMn);
  for (int e = 0; e < 256; ++e) put_nibble(b.qs, e, (e * 7) % 16);
  const auto y = deq(DType::Q4_K, &b, 256);
  for (int e = 0; e < 256; ++e) {
    const int j = e / 32;
    EXPECT_EQ(y[e], float(kSc[j]) * float((e * 7) % 16) - 0.5f * float(kMn[j])) << e;
  }
}

TEST(Dequant, Q5_K) {
  BlockQ5_K b{};
  b.d = kHalf;
  b.dmin = kOne;
  put_k_scales(b.scales, kSc, kMn);
  for (int e = 0; e < 256; ++e) {
    const int v = (e * 11 + 3) % 32;
    put_nibble(b.qs, e, v & 15);
    if (v & 16) b.qh[e % 32] |= uint8_t(1 << (e / 32));  // bit j of qh[l] for sub-block j
  }
  const auto y = deq(DType::Q5_K, &b, 256);
  for (int e = 0; e < 256; ++e) {
    const int j = e / 32;
    EXPECT_EQ(y[e], 0.5f * float(kSc[j]) * float((e * 11 + 3) % 32) - float(kMn[j])) << e;
  }
}

TEST(Dequant, Q6_K) {
  BlockQ6_K b{};
  b.d = kHalf;
  const int sc[16] = {-128, 127, -1, 3, 0, 64, -64, 1, 2, -2, 100, -100, 7, -7, 31, -31};
  for (int s = 0; s < 16; ++s) b.scales[s] = int8_t(sc[s]);
  // Element e = 128h + 32k + l: low 4 bits in ql[64h + 32(k&1) + l] (low nibble for
  // k < 2, high for k >= 2), high 2 bits in qh[32h + l] bits 2k..2k+1.
  for (int e = 0; e < 256; ++e) {
    const int v = (e * 5 + 1) % 64;
    const int h = e / 128, k = (e % 128) / 32, l = e % 32;
    uint8_t& lq = b.ql[64 * h + 32 * (k & 1) + l];
    lq |= uint8_t((v & 15) << (k < 2 ? 0 : 4));
    b.qh[32 * h + l] |= uint8_t((v >> 4) << (2 * k));
  }
  const auto y = deq(DType::Q6_K, &b, 256);
  for (int e = 0; e < 256; ++e) EXPECT_EQ(y[e], 0.5f * float(sc[e / 16]) * float((e * 5 + 1) % 64 - 32)) << e;
}

TEST(Dequant, Q8_K) {
  BlockQ8_K b{};
  b.d = 0.125f;
  for (int j = 0; j < 256; ++j) b.qs[j] = int8_t(j - 128);
  const auto y = deq(DType::Q8_K, &b, 256);
  for (int j = 0; j < 256; ++j) EXPECT_EQ(y[j], 0.125f * float(j - 128));
}

TEST(Dequant, FloatTypes) {
  const uint16_t h[4] = {kOne, kMinusOne, 0x7BFF /* 65504 */, 0x0001 /* 2^-24 */};
  const auto y = deq(DType::F16, h, 4);
  EXPECT_EQ(y[0], 1.0f);
  EXPECT_EQ(y[1], -1.0f);
  EXPECT_EQ(y[2], 65504.0f);
  EXPECT_EQ(y[3], std::ldexp(1.0f, -24));
  const uint16_t bf[2] = {0x3F80, 0xC040};
  const auto z = deq(DType::BF16, bf, 2);
  EXPECT_EQ(z[0], 1.0f);
  EXPECT_EQ(z[1], -3.0f);
}

TEST(Dequant, RejectsBadLengths) {
  BlockQ8_0 b{};
  float y[64];
  EXPECT_THROW(ops::dequantize_row(DType::Q8_0, &b, y, 31), Error);
  EXPECT_THROW(ops::dequantize_row(DType::Q4_K, &b, y, 32), Error);
  EXPECT_THROW(ops::dequantize_row(DType::I32, &b, y, 4), Error);
  EXPECT_THROW(ops::quantize_row(DType::Q8_0, y, &b, 33), Error);
}

}  // namespace
}  // namespace ms::test
