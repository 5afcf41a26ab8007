// dtype.h — element and block types known to moeserve, and exact scalar
// conversions for the 16-bit float formats.
//
// Quantized types store rows as a sequence of fixed-size blocks (see quant.h).
// A row of `cols` elements of a block type occupies cols/block_elems(t) blocks;
// cols must be a multiple of block_elems(t).
#pragma once
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <string>

namespace ms {

enum class DType : uint8_t {
  F32, F16, BF16, I32,
  Q8_0, Q4_0, Q4_1, Q5_0, Q5_1,
  Q4_K, Q5_K, Q6_K, Q8_K,
};

// Elements per block (1 for plain types).
int64_t block_elems(DType t);
// Bytes per block (element size for plain types).
size_t block_bytes(DType t);
// Bytes used by one row of `cols` elements. Throws if cols is not a multiple of the block.
size_t row_bytes(DType t, int64_t cols);
bool is_quantized(DType t);
const char* dtype_name(DType t);
// Parses "f32", "bf16", "q8_0", "Q4_K" ... (case-insensitive); returns false if unknown.
bool parse_dtype(const std::string& s, DType* out);

// ---- exact 16-bit float conversions ----
inline float bf16_to_f32(uint16_t h) {
  uint32_t u = uint32_t(h) << 16;
  float f;
  std::memcpy(&f, &u, 4);
  return f;
}
// Round-to-nearest-even, NaN preserved (quiet).
inline uint16_t f32_to_bf16(float f) {
  uint32_t u;
  std::memcpy(&u, &f, 4);
  if ((u & 0x7fffffffu) > 0x7f800000u) return uint16_t((u >> 16) | 0x40);
  u += 0x7fffu + ((u >> 16) & 1u);
  return uint16_t(u >> 16);
}
float f16_to_f32(uint16_t h);
uint16_t f32_to_f16(float f);  // round-to-nearest-even, like _cvtss_sh(x, 0)

}  // namespace ms
