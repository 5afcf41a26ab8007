// pack_avx512.h — helpers shared by the AVX-512 quantized kernels (include only
// from *_avx512.cpp files; everything here has internal linkage).
//
// The quantized kernels keep one output row per vector lane ("lanes = rows"):
// a weight panel of 16 rows is transposed so that vector j holds bytes
// 4j..4j+3 of every row, and VPDPBUSD multiplies it with 4 activation bytes
// broadcast to all lanes. Each lane then accumulates its own row exactly as the
// scalar reference does, block by block (so results are bit-identical to ref
// and do not depend on batch size, tiling or threads).
//
// Two ways to run a format (see qdriver_avx512.h): "fused" for small n, where
// each panel block is unpacked in registers and used at once, so the weight
// stream from DRAM overlaps the arithmetic; "packed" for large n, where a
// chunk of a panel is unpacked once into a per-thread buffer and reused by
// every tile of activation rows.
//
// Memory: the 16 rows of a panel are read in lockstep; software prefetches a
// fixed distance ahead (continuing into the next panel) keep that at close to
// the sequential read rate. Block headers (scales) are gathered with scalar
// loads, which beat VPGATHERDD on the AMD cores this was tuned on.
#pragma once
#include <immintrin.h>

#include <cstdint>
#include <cstring>

#include "kernels/cpu/page_prefetch.h"

namespace ms::cpu::avx512 {
namespace {

inline int32_t load_i32(const void* p) {
  int32_t v;
  std::memcpy(&v, p, 4);
  return v;
}

// acc += VPDPBUSD(w, 4 activation bytes at p broadcast to all lanes), with the
// broadcast embedded in the instruction ({1to16}); GCC 12 otherwise emits a
// separate VPBROADCASTD, which competes with the transposes for shuffle ports.
inline __m512i dpbusd_bcast(__m512i acc, __m512i w, const int8_t* p) {
  asm("vpdpbusd %2%{1to16%}, %1, %0" : "+v"(acc) : "v"(w), "m"(*reinterpret_cast<const int32_t*>(p)));
  return acc;
}

// The panel kernels' fused paths take C tokens in at most two groups of at
// most 8 (so that a group's integer sums and one block's weights fit in
// registers): the first group's size.
constexpr int token_group0(int C) { return C <= 8 ? C : (C + 1) / 2; }

// 16 rows x 32 bytes -> out[j] (j < 8): lane r = bytes 4j..4j+3 of row r.
// p[r] points at row r's 32 bytes.
inline void transpose_16x32(const uint8_t* const* p, __m512i* out) {
  __m512i B[4][2];
  #pragma GCC unroll 16
  for (int g = 0; g < 4; ++g) {
    const __m512i a0 = _mm512_inserti64x4(
        _mm512_castsi256_si512(_mm256_loadu_si256(reinterpret_cast<const __m256i*>(p[g]))),
        _mm256_loadu_si256(reinterpret_cast<const __m256i*>(p[g + 4])), 1);
    const __m512i a1 = _mm512_inserti64x4(
        _mm512_castsi256_si512(_mm256_loadu_si256(reinterpret_cast<const __m256i*>(p[g + 8]))),
        _mm256_loadu_si256(reinterpret_cast<const __m256i*>(p[g + 12])), 1);
    // 128-bit lane rr of B[g][h] = dwords 4h..4h+3 of row g + 4 rr.
    B[g][0] = _mm512_shuffle_i64x2(a0, a1, 0x88);
    B[g][1] = _mm512_shuffle_i64x2(a0, a1, 0xDD);
  }
  #pragma GCC unroll 16
  for (int h = 0; h < 2; ++h) {
    const __m512i t0 = _mm512_unpacklo_epi32(B[0][h], B[1][h]);
    const __m512i t1 = _mm512_unpackhi_epi32(B[0][h], B[1][h]);
    const __m512i t2 = _mm512_unpacklo_epi32(B[2][h], B[3][h]);
    const __m512i t3 = _mm512_unpackhi_epi32(B[2][h], B[3][h]);
    // lane 4 rr + g = row g + 4 rr: natural row order.
    out[4 * h + 0] = _mm512_unpacklo_epi64(t0, t2);
    out[4 * h + 1] = _mm512_unpackhi_epi64(t0, t2);
    out[4 * h + 2] = _mm512_unpacklo_epi64(t1, t3);
    out[4 * h + 3] = _mm512_unpackhi_epi64(t1, t3);
  }
}

// 16 rows x 16 bytes -> out[j] (j < 4): lane r = bytes 4j..4j+3 of row r.
inline void transpose_16x16(const uint8_t* const* p, __m512i* out) {
  __m512i B[4];
  #pragma GCC unroll 16
  for (int g = 0; g < 4; ++g) {
    const __m256i lo = _mm256_inserti128_si256(
        _mm256_castsi128_si256(_mm_loadu_si128(reinterpret_cast<const __m128i*>(p[g]))),
        _mm_loadu_si128(reinterpret_cast<const __m128i*>(p[g + 4])), 1);
    const __m256i hi = _mm256_inserti128_si256(
        _mm256_castsi128_si256(_mm_loadu_si128(reinterpret_cast<const __m128i*>(p[g + 8]))),
        _mm_loadu_si128(reinterpret_cast<const __m128i*>(p[g + 12])), 1);
    B[g] = _mm512_inserti64x4(_mm512_castsi256_si512(lo), hi, 1);
  }
  const __m512i t0 = _mm512_unpacklo_epi32(B[0], B[1]);
  const __m512i t1 = _mm512_unpackhi_epi32(B[0], B[1]);
  const __m512i t2 = _mm512_unpacklo_epi32(B[2], B[3]);
  const __m512i t3 = _mm512_unpackhi_epi32(B[2], B[3]);
  out[0] = _mm512_unpacklo_epi64(t0, t2);
  out[1] = _mm512_unpackhi_epi64(t0, t2);
  out[2] = _mm512_unpacklo_epi64(t1, t3);
  out[3] = _mm512_unpackhi_epi64(t1, t3);
}

// Row pointers of a panel: 16 rows starting at `first`, rows past `valid`
// repeat the last valid row (their results are never stored).
struct PanelRows {
  const uint8_t* p[16];
  __m512i offs;  // byte offset of each row from p[0], for gathers
  void init(const uint8_t* first, size_t stride, int valid) {
    alignas(64) int32_t o[16];
    #pragma GCC unroll 16
    for (int r = 0; r < 16; ++r) {
      const int rr = r < valid ? r : valid - 1;
      p[r] = first + size_t(rr) * stride;
      o[r] = int32_t(size_t(rr) * stride);
    }
    offs = _mm512_load_si512(o);
  }
};

// Block headers (scales, mins, high bits) of a chunk of blocks, collected with
// scalar loads — a 16-lane gather is slower on the AMD cores this targets:
// out[(b*NF + f)*16 + r] = the 32 bits at byte off[f] of block kb0+b of row r.
template <int NF>
inline void collect_u32(const PanelRows& pr, const size_t (&off)[NF], size_t bb, int64_t kb0, int64_t nb,
                        int32_t* out) {
  const size_t base = size_t(kb0) * bb;
  for (int64_t b = 0; b < nb; ++b)
#pragma GCC unroll 2
    for (int f = 0; f < NF; ++f) {
      int32_t* o = out + (b * NF + f) * 16;
      const size_t at = base + size_t(b) * bb + off[f];
#pragma GCC unroll 16
      for (int r = 0; r < 16; ++r) std::memcpy(o + r, pr.p[r] + at, 4);
    }
}
// f16 in the low / high half of each 32-bit lane, as floats.
inline __m512 f16lo(__m512i v) { return _mm512_cvtph_ps(_mm512_cvtepi32_epi16(v)); }
inline __m512 f16hi(__m512i v) { return f16lo(_mm512_srli_epi32(v, 16)); }

// Prefetches (into L2) a byte range of every row of up to two panels, a few
// lines per step(), row after row: used to fetch the next chunk of weights
// while the micro-kernels compute on the current one.
struct ChunkPrefetch {
  const PanelRows* panels = nullptr;
  int np = 0;
  size_t from = 0, lines_per_row = 0, next = 0, total = 0, per_step = 0;
  void start(const PanelRows* p, int npanels, size_t byte_from, size_t byte_to, int64_t steps) {
    panels = p;
    np = npanels;
    from = byte_from & ~size_t(63);
    lines_per_row = byte_to > from ? (byte_to - from + 63) / 64 : 0;
    total = lines_per_row * size_t(16 * np);
    next = 0;
    per_step = steps > 0 ? (total + size_t(steps) - 1) / size_t(steps) : total;
  }
  void step() {
    const size_t end = next + per_step < total ? next + per_step : total;
    for (; next < end; ++next) {
      const size_t row = next / lines_per_row, line = next % lines_per_row;
      prefetch_t1(panels[row / 16].p[row % 16] + from + 64 * line);
    }
  }
};

// Software prefetch for a panel read in lockstep: called once per block with
// the byte offset (in the row) of the block to fetch, `dist` bytes ahead of the
// block being unpacked; offsets past the row continue into the next panel's
// rows, so a panel starts with its data already in flight. Spread out like
// this rather than issued in bursts (a burst stalls on the L1 fill buffers).
inline void prefetch_ahead(const PanelRows& cur, const PanelRows* next, size_t off, size_t bytes, size_t row_bytes) {
  for (size_t o = off; o < off + bytes; o += 64) {
    const PanelRows* pr = &cur;
    size_t a = o;
    if (a >= row_bytes) {
      if (!next) return;
      pr = next;
      a -= row_bytes;
      if (a >= row_bytes) return;
    }
#pragma GCC unroll 16
    for (int r = 0; r < 16; ++r) prefetch_t0(pr->p[r] + a);
  }
}

}  // namespace
}  // namespace ms::cpu::avx512
