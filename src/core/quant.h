// quant.h — on-disk block layouts of the GGML quantization formats, as written
// by llama.cpp (GGUF). Field order and sizes are part of the file format.
//
//  type  elems  bytes  value of element i
//  Q8_0   32     34    d * qs[i]
//  Q4_0   32     18    d * ((nibble(i)) - 8)        nibble i<16: qs[i]&15, else qs[i-16]>>4
//  Q4_1   32     20    d * nibble(i) + m
//  Q5_0   32     22    d * ((nibble(i) | bit(qh,i)<<4) - 16)
//  Q5_1   32     24    d * (nibble(i) | bit(qh,i)<<4) + m
//  Q4_K  256    144    8 sub-blocks of 32, 6-bit scales/mins packed in scales[12]
//  Q5_K  256    176    as Q4_K plus a 5th bit per element in qh[32]
//  Q6_K  256    210    16 sub-blocks of 16, int8 scales, 6-bit quants (ql + qh) - 32
//  Q8_K  256    292    activation format for the K-quants: f32 d, int8 qs, per-16 sums
#pragma once
#include <cstdint>

namespace ms {

constexpr int QK = 32;    // block size of the legacy formats
constexpr int QK_K = 256; // super-block size of the K formats

#pragma pack(push, 1)
struct BlockQ8_0 { uint16_t d; int8_t qs[QK]; };
struct BlockQ4_0 { uint16_t d; uint8_t qs[QK / 2]; };
struct BlockQ4_1 { uint16_t d; uint16_t m; uint8_t qs[QK / 2]; };
struct BlockQ5_0 { uint16_t d; uint8_t qh[4]; uint8_t qs[QK / 2]; };
struct BlockQ5_1 { uint16_t d; uint16_t m; uint8_t qh[4]; uint8_t qs[QK / 2]; };
struct BlockQ4_K { uint16_t d; uint16_t dmin; uint8_t scales[12]; uint8_t qs[QK_K / 2]; };
struct BlockQ5_K { uint16_t d; uint16_t dmin; uint8_t scales[12]; uint8_t qh[QK_K / 8]; uint8_t qs[QK_K / 2]; };
struct BlockQ6_K { uint8_t ql[QK_K / 2]; uint8_t qh[QK_K / 4]; int8_t scales[QK_K / 16]; uint16_t d; };
struct BlockQ8_K { float d; int8_t qs[QK_K]; int16_t bsums[QK_K / 16]; };
#pragma pack(pop)

static_assert(sizeof(BlockQ8_0) == 34);
static_assert(sizeof(BlockQ4_0) == 18);
static_assert(sizeof(BlockQ4_1) == 20);
static_assert(sizeof(BlockQ5_0) == 22);
static_assert(sizeof(BlockQ5_1) == 24);
static_assert(sizeof(BlockQ4_K) == 144);
static_assert(sizeof(BlockQ5_K) == 176);
static_assert(sizeof(BlockQ6_K) == 210);
static_assert(sizeof(BlockQ8_K) == 292);

}  // namespace ms
