// repack.cpp — the panel layout of Q8_0 / Q4_0 / Q4_K / Q5_K / Q6_K matrices (see ops.h).
#include <algorithm>
#include <cstdlib>
#include <cstring>
#include <string>

#include "core/error.h"
#include "core/quant.h"
#include "kernels/cpu/dispatch.h"
#include "kernels/ops.h"
#include "kernels/panel_layout.h"

namespace ms::ops {

namespace {
// Bytes of one block of vectors (16 rows) in the panel layout.
size_t panel_vec_bytes(DType t) { return t == DType::Q8_0 ? panel::kQ8_0Vec : panel::kQ4_0Vec; }

// Q4_K / Q5_K: per 16-row panel and super-block, the quants as the AVX-512
// kernel's 16x32 transposes give them, [4 pairs of sub-blocks][8][64 B] with
// byte 4r+k of vector (c, j) = quant byte 32c + 4j + k of row r; Q5_K then
// its 32 high-bit bytes the same way ([8][64 B], byte 4r+k of vector j = qh
// byte 4j + k of row r); then the first 16 header bytes (d, dmin, 12 scale
// bytes) as [4 words][16 rows] int32. 2304 (Q4_K) or 2816 (Q5_K) bytes: the
// same as the 16 rows' blocks.
template <bool kFive>
void repack_k45_panel(const MatView& src, int64_t P, uint8_t* dst) {
  const int64_t nb = src.cols / 256;
  const size_t bb = kFive ? sizeof(BlockQ5_K) : sizeof(BlockQ4_K), qs = kFive ? 48 : 16;
  const size_t pb = kFive ? panel::kQ5kBlock : panel::kQ4kBlock, hdr = pb - 256;
  for (int r = 0; r < 16; ++r) {
    const uint8_t* row = src.row(std::min<int64_t>(P * 16 + r, src.rows - 1));
    for (int64_t b = 0; b < nb; ++b) {
      const uint8_t* blk = row + size_t(b) * bb;
      uint8_t* o = dst + size_t(b) * pb;
      for (int c = 0; c < 4; ++c)
        for (int j = 0; j < 8; ++j) std::memcpy(o + (8 * c + j) * 64 + 4 * r, blk + qs + 32 * c + 4 * j, 4);
      if (kFive)
        for (int j = 0; j < 8; ++j) std::memcpy(o + panel::kKQh + 64 * j + 4 * r, blk + 16 + 4 * j, 4);
      for (int w = 0; w < 4; ++w) std::memcpy(o + hdr + 64 * w + 4 * r, blk + 4 * w, 4);
    }
  }
}

// Q6_K: per 16-row panel and super-block, for each half h the transposes of
// ql bytes 64h.., 64h+32.. and qh bytes 128+32h.. ([2][3][8][64 B], lane r =
// 4 bytes of row r), then the header words at bytes 192, 196, 200, 204, 206
// (scales, and d in the last one's high half) as [5][16] int32: 3392 bytes,
// 1% more than the 16 rows' blocks.
void repack_q6k_panel(const MatView& src, int64_t P, uint8_t* dst) {
  const int64_t nb = src.cols / 256;
  static constexpr size_t kHdr[5] = {192, 196, 200, 204, 206};
  for (int r = 0; r < 16; ++r) {
    const uint8_t* row = src.row(std::min<int64_t>(P * 16 + r, src.rows - 1));
    for (int64_t b = 0; b < nb; ++b) {
      const uint8_t* blk = row + size_t(b) * sizeof(BlockQ6_K);
      uint8_t* o = dst + size_t(b) * panel::kQ6kBlock;
      for (int h = 0; h < 2; ++h)
        for (int j = 0; j < 8; ++j) {
          std::memcpy(o + (24 * h + j) * 64 + 4 * r, blk + 64 * h + 4 * j, 4);
          std::memcpy(o + (24 * h + 8 + j) * 64 + 4 * r, blk + 64 * h + 32 + 4 * j, 4);
          std::memcpy(o + (24 * h + 16 + j) * 64 + 4 * r, blk + 128 + 32 * h + 4 * j, 4);
        }
      for (int w = 0; w < 5; ++w) std::memcpy(o + panel::kQ6kHeader + 64 * w + 4 * r, blk + kHdr[w], 4);
    }
  }
}

// Q8_0 / Q4_0: groups of 8 blocks of vectors and their 16 f16 scales (panel_layout.h).
void repack_legacy_panel(const MatView& src, int64_t P, uint8_t* dst) {
  const DType t = src.dtype;
  const int64_t nb = src.cols / 32;
  const size_t vb = panel_vec_bytes(t), bb = block_bytes(t);
  const uint32_t flip = t == DType::Q8_0 ? 0x80808080u : 0u;  // Q8_0: int8 -> u8 + 128
  for (int r = 0; r < 16; ++r) {
    const uint8_t* row = src.row(std::min<int64_t>(P * 16 + r, src.rows - 1));
    for (int64_t b = 0; b < nb; ++b) {
      const uint8_t* blk = row + size_t(b) * bb;  // f16 d, then the quants
      uint8_t* v = dst + panel::vec_offset(vb, b) + 4 * r;
      for (size_t j = 0; j < vb / 64; ++j) {
        uint32_t w;
        std::memcpy(&w, blk + 2 + 4 * j, 4);
        w ^= flip;
        std::memcpy(v + 64 * j, &w, 4);
      }
      std::memcpy(dst + panel::scale_offset(vb, nb, b) + 2 * r, blk, 2);
    }
  }
}

// The types with a panel layout, and the block of weights each repacks.
int64_t panel_block_elems(DType t) {
  switch (t) {
    case DType::Q8_0: case DType::Q4_0: return 32;
    case DType::Q4_K: case DType::Q5_K: case DType::Q6_K: return 256;
    default: return 0;
  }
}
}  // namespace

bool can_repack(DType t) {
  static const bool enabled = [] {
    const char* e = std::getenv("MOESERVE_REPACK");
    return !(e && std::string(e) == "0");
  }();
  // The AVX2 and AVX-512 kernels read every repackable type in this layout.
  return enabled && panel_block_elems(t) > 0 && cpu::kernels().panels;
}

size_t repacked_bytes(DType t, int64_t rows, int64_t cols) {
  const size_t panels = size_t((rows + 15) / 16);
  if (t == DType::Q4_K) return panels * size_t(cols / 256) * panel::kQ4kBlock;
  if (t == DType::Q5_K) return panels * size_t(cols / 256) * panel::kQ5kBlock;
  if (t == DType::Q6_K) return panels * size_t(cols / 256) * panel::kQ6kBlock;
  return panels * size_t(cols / 32) * (panel_vec_bytes(t) + 32);
}

MatView repack_panels(const MatView& src, uint8_t* dst, ThreadPool& pool) {
  const DType t = src.dtype;
  const int64_t elems = panel_block_elems(t);
  if (elems == 0 || src.panel16 || src.cols % elems != 0)
    throw Error(ErrorKind::Internal, std::string("repack_panels: cannot repack a ") + dtype_name(t) + " matrix");
  void (*panel)(const MatView&, int64_t, uint8_t*) = t == DType::Q4_K   ? repack_k45_panel<false>
                                                     : t == DType::Q5_K ? repack_k45_panel<true>
                                                     : t == DType::Q6_K ? repack_q6k_panel
                                                                        : repack_legacy_panel;
  const size_t panel_bytes = repacked_bytes(t, 16, src.cols);
  pool.parallel_for((src.rows + 15) / 16, [&](int64_t p0, int64_t p1, int) {
    for (int64_t P = p0; P < p1; ++P) panel(src, P, dst + size_t(P) * panel_bytes);
  });
  MatView m = src;
  m.data = dst;
  m.panel16 = true;
  return m;
}

}  // namespace ms::ops
