#include "core/dtype.h"

#include <algorithm>
#include <cctype>

#include "core/error.h"
#include "core/quant.h"

namespace ms {

namespace {
struct Info { DType t; const char* name; int64_t elems; size_t bytes; };
constexpr Info kInfo[] = {
    {DType::F32, "f32", 1, 4},
    {DType::F16, "f16", 1, 2},
    {DType::BF16, "bf16", 1, 2},
    {DType::I32, "i32", 1, 4},
    {DType::Q8_0, "q8_0", QK, sizeof(BlockQ8_0)},
    {DType::Q4_0, "q4_0", QK, sizeof(BlockQ4_0)},
    {DType::Q4_1, "q4_1", QK, sizeof(BlockQ4_1)},
    {DType::Q5_0, "q5_0", QK, sizeof(BlockQ5_0)},
    {DType::Q5_1, "q5_1", QK, sizeof(BlockQ5_1)},
    {DType::Q4_K, "q4_k", QK_K, sizeof(BlockQ4_K)},
    {DType::Q5_K, "q5_k", QK_K, sizeof(BlockQ5_K)},
    {DType::Q6_K, "q6_k", QK_K, sizeof(BlockQ6_K)},
    {DType::Q8_K, "q8_k", QK_K, sizeof(BlockQ8_K)},
};
const Info& info(DType t) { return kInfo[static_cast<int>(t)]; }
}  // namespace

int64_t block_elems(DType t) { return info(t).elems; }
size_t block_bytes(DType t) { return info(t).bytes; }
bool is_quantized(DType t) { return info(t).elems > 1; }
const char* dtype_name(DType t) { return info(t).name; }

size_t row_bytes(DType t, int64_t cols) {
  const Info& i = info(t);
  if (cols < 0 || cols % i.elems != 0)
    throw Error(ErrorKind::BadInput, std::string("row of ") + std::to_string(cols) +
                                         " elements is not a whole number of " + i.name + " blocks");
  return size_t(cols / i.elems) * i.bytes;
}

bool parse_dtype(const std::string& s, DType* out) {
  std::string l = s;
  std::transform(l.begin(), l.end(), l.begin(), [](unsigned char c) { return std::tolower(c); });
  for (const Info& i : kInfo)
    if (l == i.name) { *out = i.t; return true; }
  return false;
}

float f16_to_f32(uint16_t h) {
  const uint32_t sign = uint32_t(h & 0x8000) << 16;
  uint32_t exp = (h >> 10) & 0x1f;
  uint32_t man = h & 0x3ff;
  uint32_t u;
  if (exp == 0) {
    if (man == 0) {
      u = sign;
    } else {  // subnormal: normalise
      exp = 127 - 15 + 1;
      while (!(man & 0x400)) { man <<= 1; --exp; }
      man &= 0x3ff;
      u = sign | (exp << 23) | (man << 13);
    }
  } else if (exp == 31) {
    u = sign | 0x7f800000u | (man << 13);
  } else {
    u = sign | ((exp + 127 - 15) << 23) | (man << 13);
  }
  float f;
  std::memcpy(&f, &u, 4);
  return f;
}

uint16_t f32_to_f16(float f) {
  uint32_t u;
  std::memcpy(&u, &f, 4);
  const uint16_t sign = uint16_t((u >> 16) & 0x8000);
  const uint32_t au = u & 0x7fffffffu;
  if (au > 0x7f800000u) return uint16_t(sign | 0x7e00 | ((au >> 13) & 0x3ff));  // NaN: quiet, payload's top bits
  if (au >= 0x477ff000u) return sign | 0x7c00;          // overflow -> inf (incl. rounding up)
  if (au < 0x38800000u) {                                // subnormal or zero in f16
    if (au < 0x33000000u) return sign;                   // < half of smallest subnormal
    const uint32_t e = au >> 23;
    const uint32_t m = (au & 0x7fffff) | 0x800000;
    const int shift = 126 - int(e);                      // 14 + (113 - e) - ... (see below)
    // value = m * 2^(e-150); f16 subnormal unit = 2^-24 -> q = m * 2^(e-126)
    const int s = shift;                                 // right shift amount
    uint32_t q = m >> s;
    const uint32_t rem = m & ((1u << s) - 1);
    const uint32_t half = 1u << (s - 1);
    if (rem > half || (rem == half && (q & 1))) ++q;
    return sign | uint16_t(q);
  }
  uint32_t r = au + 0xfffu + ((au >> 13) & 1u);          // round mantissa to 10 bits, RNE
  r -= (127 - 15) << 23;
  return sign | uint16_t(r >> 13);
}

}  // namespace ms
