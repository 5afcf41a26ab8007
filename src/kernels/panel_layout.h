// panel_layout.h — the sizes of the panel layout (ops::repack_panels writes
// it, the AVX-512 kernels read it; ops.h describes each format's bytes) and
// where block b of a Q8_0 / Q4_0 panel lies.
//
// A panel (16 rows x nb blocks of 32 weights) is one stream of groups of
// kGroup blocks, each [kGroup x vb bytes of vectors][kGroup x 32 bytes of the
// 16 rows' f16 scales]; the last group holds nb % kGroup blocks when nb is not
// a multiple of kGroup. vb = 512 (Q8_0) or 256 (Q4_0), so a panel is still
// nb * (vb + 32) bytes, and block b's bytes start about b * (vb + 32) in.
// (Vectors and scales in two separate regions of the panel streamed 16-27%
// slower at one token, alternating call by call.)
#pragma once
#include <cstddef>
#include <cstdint>

namespace ms::panel {

constexpr int64_t kGroup = 8;

// Bytes of one block's vectors (16 rows x 32 weights): Q8_0, Q4_0.
constexpr size_t kQ8_0Vec = 512, kQ4_0Vec = 256;
// Bytes per 16 rows x 256 weights: Q4_K / Q5_K (the quants, Q5_K's high bits
// at kKQh, the header words at the block's last 256 bytes) and Q6_K (its
// transposes, the header words at kQ6kHeader).
constexpr size_t kKQh = 2048, kQ4kBlock = 2048 + 256, kQ5kBlock = 2048 + 512 + 256;
constexpr size_t kQ6kHeader = 3072, kQ6kBlock = kQ6kHeader + 320;

// Bytes of block b's vectors / scales from the start of the panel.
inline size_t vec_offset(size_t vb, int64_t b) {
  const int64_t g = b - b % kGroup;
  return size_t(g) * (vb + 32) + size_t(b - g) * vb;
}
inline size_t scale_offset(size_t vb, int64_t nb, int64_t b) {
  const int64_t g = b - b % kGroup, n = nb - g < kGroup ? nb - g : kGroup;
  return size_t(g) * (vb + 32) + size_t(n) * vb + size_t(b - g) * 32;
}

}  // namespace ms::panel
