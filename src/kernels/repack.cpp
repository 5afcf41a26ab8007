// repack.cpp — the panel layout of Q8_0 / Q4_0 matrices (see ops.h).
#include <algorithm>
#include <cstdlib>
#include <cstring>
#include <string>

#include "core/cpu_features.h"
#include "core/error.h"
#include "core/quant.h"
#include "kernels/ops.h"

namespace ms::ops {

namespace {
// Bytes of one block of vectors (16 rows) in the panel layout.
size_t panel_vec_bytes(DType t) { return t == DType::Q8_0 ? 512 : 256; }
}  // namespace

bool can_repack(DType t) {
  static const bool enabled = [] {
    const char* e = std::getenv("MOESERVE_REPACK");
    return !(e && std::string(e) == "0");
  }();
  return enabled && (t == DType::Q8_0 || t == DType::Q4_0) && std::string(isa_name()) == "avx512";
}

size_t repacked_bytes(DType t, int64_t rows, int64_t cols) {
  const size_t panels = size_t((rows + 15) / 16), nb = size_t(cols / 32);
  return panels * nb * (panel_vec_bytes(t) + 32);
}

MatView repack_panels(const MatView& src, uint8_t* dst, ThreadPool& pool) {
  const DType t = src.dtype;
  if (!(t == DType::Q8_0 || t == DType::Q4_0) || src.panel16 || src.cols % 32 != 0)
    throw Error(ErrorKind::Internal, std::string("repack_panels: cannot repack a ") + dtype_name(t) + " matrix");
  const int64_t nb = src.cols / 32, panels = (src.rows + 15) / 16;
  const size_t vb = panel_vec_bytes(t), bb = block_bytes(t);
  const size_t panel_bytes = size_t(nb) * (vb + 32);
  const uint32_t flip = t == DType::Q8_0 ? 0x80808080u : 0u;  // Q8_0: int8 -> u8 + 128
  pool.parallel_for(panels, [&](int64_t p0, int64_t p1, int) {
    for (int64_t P = p0; P < p1; ++P) {
      uint8_t* vec = dst + size_t(P) * panel_bytes;
      uint8_t* scl = vec + size_t(nb) * vb;
      for (int r = 0; r < 16; ++r) {
        const uint8_t* row = src.row(std::min<int64_t>(P * 16 + r, src.rows - 1));
        for (int64_t b = 0; b < nb; ++b) {
          const uint8_t* blk = row + size_t(b) * bb;  // f16 d, then the quants
          uint8_t* v = vec + size_t(b) * vb + 4 * r;
          for (size_t j = 0; j < vb / 64; ++j) {
            uint32_t w;
            std::memcpy(&w, blk + 2 + 4 * j, 4);
            w ^= flip;
            std::memcpy(v + 64 * j, &w, 4);
          }
          std::memcpy(scl + size_t(b) * 32 + 2 * r, blk, 2);
        }
      }
    }
  });
  MatView m = src;
  m.data = dst;
  m.panel16 = true;
  return m;
}

}  // namespace ms::ops
