// panel_layout.h — where block b of a Q8_0 / Q4_0 panel lies in the panel
// layout (ops::repack_panels writes it, the AVX-512 kernels read it).
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
