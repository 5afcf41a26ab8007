// pack_avx2.h — helpers and loop nest shared by the AVX2 quantized kernels
// (include only from *_avx2.cpp files; everything has internal linkage).
//
// Same scheme as the AVX-512 kernels ("lanes = rows", see pack_avx512.h) with
// panels of 8 rows. Without VNNI the byte products go through VPMADDUBSW
// (u8 x s8 -> saturating s16 pairs) and VPMADDWD; kernels only sum as many
// steps in 16 bits as cannot saturate, so the integers stay exact.
#pragma once
#include <immintrin.h>

#include <array>
#include <cstdint>
#include <cstdlib>
#include <new>
#include <cstring>
#include <utility>

#include "kernels/cpu/cpu_kernels.h"
#include "kernels/cpu/page_prefetch.h"

// The quantized AVX2 files are built twice: plain (namespace avx2) and with
// AVX-VNNI (MS_AVX2_VNNI, namespace avx2vnni; see dot_acc below).
#ifdef MS_AVX2_VNNI
#define MS_AVX2_NS avx2vnni
#else
#define MS_AVX2_NS avx2
#endif

namespace ms::cpu::MS_AVX2_NS {
namespace {

// Integer dot products of u8 weights w and s8 activations x, 4 per 32-bit
// lane. Without VNNI, VPMADDUBSW adds pairs into saturating int16: a partial
// sum (dot_acc) may only take as many steps as cannot saturate before
// dot_i32 widens it with VPMADDWD. With AVX-VNNI, VPDPBUSD adds all 4
// products into int32 at once and dot_i32 is the identity. dot_step adds one
// step straight into an int32 sum. The integers are exact either way.
#ifdef MS_AVX2_VNNI
constexpr bool kVnni = true;
inline __m256i dot_acc(__m256i acc, __m256i w, __m256i x) { return _mm256_dpbusd_avx_epi32(acc, w, x); }
inline __m256i dot_i32(__m256i acc) { return acc; }
inline __m256i dot_step(__m256i acc32, __m256i w, __m256i x) { return _mm256_dpbusd_avx_epi32(acc32, w, x); }
#else
constexpr bool kVnni = false;
inline __m256i dot_acc(__m256i acc, __m256i w, __m256i x) { return _mm256_add_epi16(acc, _mm256_maddubs_epi16(w, x)); }
inline __m256i dot_i32(__m256i acc) { return _mm256_madd_epi16(acc, _mm256_set1_epi16(1)); }
inline __m256i dot_step(__m256i acc32, __m256i w, __m256i x) { return _mm256_add_epi32(acc32, dot_i32(_mm256_maddubs_epi16(w, x))); }
#endif

inline int32_t load_i32(const void* p) {
  int32_t v;
  std::memcpy(&v, p, 4);
  return v;
}

// 8 rows x 32 bytes -> out[j] (j < 8): lane r = bytes 4j..4j+3 of row r.
inline void transpose_8x32(const uint8_t* const* p, __m256i* out) {
  __m256i B[4][2];
  #pragma GCC unroll 16
  for (int g = 0; g < 4; ++g) {
    const __m256i a = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(p[g]));
    const __m256i b = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(p[g + 4]));
    B[g][0] = _mm256_permute2x128_si256(a, b, 0x20);  // lane rr: row g+4rr dwords 0..3
    B[g][1] = _mm256_permute2x128_si256(a, b, 0x31);  // dwords 4..7
  }
  #pragma GCC unroll 16
  for (int h = 0; h < 2; ++h) {
    const __m256i t0 = _mm256_unpacklo_epi32(B[0][h], B[1][h]);
    const __m256i t1 = _mm256_unpackhi_epi32(B[0][h], B[1][h]);
    const __m256i t2 = _mm256_unpacklo_epi32(B[2][h], B[3][h]);
    const __m256i t3 = _mm256_unpackhi_epi32(B[2][h], B[3][h]);
    out[4 * h + 0] = _mm256_unpacklo_epi64(t0, t2);
    out[4 * h + 1] = _mm256_unpackhi_epi64(t0, t2);
    out[4 * h + 2] = _mm256_unpacklo_epi64(t1, t3);
    out[4 * h + 3] = _mm256_unpackhi_epi64(t1, t3);
  }
}

// 8 rows x 16 bytes -> out[j] (j < 4).
inline void transpose_8x16(const uint8_t* const* p, __m256i* out) {
  __m256i B[4];
  #pragma GCC unroll 16
  for (int g = 0; g < 4; ++g)
    B[g] = _mm256_inserti128_si256(_mm256_castsi128_si256(_mm_loadu_si128(reinterpret_cast<const __m128i*>(p[g]))),
                                   _mm_loadu_si128(reinterpret_cast<const __m128i*>(p[g + 4])), 1);
  const __m256i t0 = _mm256_unpacklo_epi32(B[0], B[1]);
  const __m256i t1 = _mm256_unpackhi_epi32(B[0], B[1]);
  const __m256i t2 = _mm256_unpacklo_epi32(B[2], B[3]);
  const __m256i t3 = _mm256_unpackhi_epi32(B[2], B[3]);
  out[0] = _mm256_unpacklo_epi64(t0, t2);
  out[1] = _mm256_unpackhi_epi64(t0, t2);
  out[2] = _mm256_unpacklo_epi64(t1, t3);
  out[3] = _mm256_unpackhi_epi64(t1, t3);
}

struct PanelRows {
  const uint8_t* p[8];
  __m256i offs;
  void init(const uint8_t* first, size_t stride, int valid) {
    alignas(32) int32_t o[8];
    #pragma GCC unroll 16
    for (int r = 0; r < 8; ++r) {
      const int rr = r < valid ? r : valid - 1;
      p[r] = first + size_t(rr) * stride;
      o[r] = int32_t(size_t(rr) * stride);
    }
    offs = _mm256_load_si256(reinterpret_cast<const __m256i*>(o));
  }
};

inline __m256i gather_u32(const PanelRows& pr, size_t off) {
  return _mm256_i32gather_epi32(reinterpret_cast<const int*>(pr.p[0] + off), pr.offs, 1);
}
inline __m256 u16lo_to_f32(__m256i v) {  // low 16 bits of each lane as f16
  const __m256i lo = _mm256_and_si256(v, _mm256_set1_epi32(0xFFFF));
  return _mm256_cvtph_ps(_mm_packus_epi32(_mm256_castsi256_si128(lo), _mm256_extracti128_si256(lo, 1)));
}
inline __m256 gather_f16(const PanelRows& pr, size_t off) { return u16lo_to_f32(gather_u32(pr, off)); }

inline void prefetch_rows(const PanelRows& pr, size_t from, size_t to) {
  #pragma GCC unroll 16
  for (int r = 0; r < 8; ++r)
    for (size_t o = from; o < to; o += 64) _mm_prefetch(reinterpret_cast<const char*>(pr.p[r] + o), _MM_HINT_T0);
}

struct TileArgs {
  const uint8_t* pk;
  int64_t nb;
  const int8_t* aq;
  int64_t aq_stride;
  const float* ad;
  const int32_t* as;
  const int16_t* ab;
  int64_t a_blk_stride, ab_stride;
  float* Y;
  int64_t ldy;
  int valid;   // valid rows of the panel (1..8)
  bool first;
};

template <int C>
inline void load_acc(const TileArgs& t, __m256 (&acc)[C]) {
  #pragma GCC unroll 16
  for (int c = 0; c < C; ++c) {
    if (t.first) {
      acc[c] = _mm256_setzero_ps();
    } else if (t.valid == 8) {
      acc[c] = _mm256_loadu_ps(t.Y + c * t.ldy);
    } else {
      alignas(32) float tmp[8] = {};
      for (int r = 0; r < t.valid; ++r) tmp[r] = t.Y[c * t.ldy + r];
      acc[c] = _mm256_load_ps(tmp);
    }
  }
}
template <int C>
inline void store_acc(const TileArgs& t, __m256 (&acc)[C]) {
  #pragma GCC unroll 16
  for (int c = 0; c < C; ++c) {
    if (t.valid == 8) {
      _mm256_storeu_ps(t.Y + c * t.ldy, acc[c]);
    } else {
      alignas(32) float tmp[8];
      _mm256_store_ps(tmp, acc[c]);
      for (int r = 0; r < t.valid; ++r) t.Y[c * t.ldy + r] = tmp[r];
    }
  }
}

template <class Fmt, int C>
void run_tile(const TileArgs& t) {
  Fmt::template kernel<C>(t);
}

// One group of `rows` (<= 8) output rows at Yg: for each chunk of kc blocks,
// pack(kb0, kb1, buf) writes the chunk in Fmt's packed format, then the
// micro-kernel runs over tiles of up to kMaxC activation rows.
template <class Fmt, class Pack>
void run_group(const ActsRef& A, int64_t nb, int64_t kc, int rows, float* Yg, int64_t ldy, uint8_t* buf,
               const Pack& pack) {
  const int64_t n = A.n;
  const int64_t ablk = Fmt::kElems / (A.format == kActQ8_32 ? 32 : 256);
  using Fn = void (*)(const TileArgs&);
  static constexpr Fn table[4] = {run_tile<Fmt, 1>, run_tile<Fmt, 2>, run_tile<Fmt, 3>, run_tile<Fmt, 4>};
  constexpr int CM = Fmt::kMaxC;
  TileArgs t{};
  t.aq_stride = A.qs_stride;
  t.a_blk_stride = A.nblk;
  t.ab_stride = A.cols / 16;
  t.ldy = ldy;
  t.valid = rows;
  for (int64_t kb0 = 0; kb0 < nb; kb0 += kc) {
    const int64_t kb1 = kb0 + kc < nb ? kb0 + kc : nb;
    pack(kb0, kb1, buf);
    t.pk = buf;
    t.nb = kb1 - kb0;
    t.first = kb0 == 0;
    for (int64_t c0 = 0; c0 < n; c0 += CM) {
      const int cc = int(n - c0 < CM ? n - c0 : CM);
      TileArgs u = t;
      u.aq = A.qs + c0 * A.qs_stride + kb0 * Fmt::kElems;
      u.ad = A.d + c0 * A.nblk + kb0 * ablk;
      u.as = A.format == kActQ8_32 ? A.sum + c0 * A.nblk + kb0 * ablk : nullptr;
      u.ab = A.format == kActQ8_256 ? A.bsum + c0 * (A.cols / 16) + kb0 * (Fmt::kElems / 16) : nullptr;
      u.Y = Yg + c0 * ldy;
      table[cc - 1](u);
    }
  }
}

// Loop nest: groups of 8 rows, chunks of K blocks packed once, tiles of C columns.
template <class Fmt>
void qmatmul(const WeightsRef& W, const ActsRef& A, int64_t r0, int64_t r1, float* Y, int64_t ldy) {
  const int64_t nb = W.cols / Fmt::kElems;
  const int64_t kc = A.n <= Fmt::kMaxC ? Fmt::kChunkSmall : Fmt::kChunkLarge;
  uint8_t* buf = pack_buffer(size_t(kc) * Fmt::kPanelBytes);
  for (int64_t g = r0; g < r1; g += 8) {
    const int rows = int(r1 - g < 8 ? r1 - g : 8);
    PanelRows pr;
    pr.init(W.data + size_t(g) * W.row_stride, W.row_stride, rows);
    run_group<Fmt>(A, nb, kc, rows, Y + g, ldy, buf,
                   [&](int64_t kb0, int64_t kb1, uint8_t* out) { Fmt::pack(W, pr, kb0, kb1, out); });
  }
}

// The results of one 16-row panel, acc[h][c] = rows 8h..8h+7 of token c:
// its first `rows` rows to Y[c * ldy + ...].
template <int C>
inline void store_panel(float* Y, int64_t ldy, int rows, __m256 (*acc)[C]) {
  for (int h = 0; h < 2 && rows > 8 * h; ++h) {
    TileArgs t{};
    t.Y = Y + 8 * h;
    t.ldy = ldy;
    t.valid = rows - 8 * h < 8 ? rows - 8 * h : 8;
    store_acc<C>(t, acc[h]);
  }
}

// Fetches (into L2) panel block b + (kb1 - kb0), the same block of the next
// chunk, while block b of chunk [kb0, kb1) is unpacked.
inline void prefetch_next_chunk(const uint8_t* pan, size_t block_bytes, int64_t nb, int64_t b, int64_t kb0, int64_t kb1) {
  const int64_t nx = b + (kb1 - kb0);
  if (nx < nb)
    for (size_t l = 0; l < block_bytes; l += 64) prefetch_t1(pan + size_t(nx) * block_bytes + l);
}

// A matrix in the panel layout (ops::repack_panels; rows r0..r1, r0 a
// multiple of 16). Fmt provides kRpBlock (bytes per panel and block),
// fused_rp<C> for n <= kFusedRpMaxC, and pack_rp(panel, h, nb, kb0, kb1, out),
// which writes blocks [kb0, kb1) of rows 8h..8h+7 of a panel in pack()'s
// format for the micro-kernels (each 64-byte vector of the layout holds 16
// rows: rows 0-7 in its low half, 8-15 in its high half).
using FusedFn = void (*)(const WeightsRef&, const ActsRef&, int64_t, int64_t, float*, int64_t);
template <class Fmt, int... I>
constexpr std::array<FusedFn, sizeof...(I)> fused_rp_table(std::integer_sequence<int, I...>) {
  return {Fmt::template fused_rp<I + 1>...};
}

template <class Fmt>
void qmatmul_panels(const WeightsRef& W, const ActsRef& A, int64_t r0, int64_t r1, float* Y, int64_t ldy) {
  static constexpr auto fused = fused_rp_table<Fmt>(std::make_integer_sequence<int, Fmt::kFusedRpMaxC>{});
  if (A.n >= 1 && A.n <= Fmt::kFusedRpMaxC) return fused[A.n - 1](W, A, r0, r1, Y, ldy);
  const int64_t nb = W.cols / Fmt::kElems, kc = Fmt::kChunkLarge;
  uint8_t* buf = pack_buffer(size_t(kc) * Fmt::kPanelBytes);
  for (int64_t g = r0; g < r1; g += 16) {
    const uint8_t* pan = W.data + size_t(g / 16) * size_t(nb) * Fmt::kRpBlock;
    for (int h = 0; h < 2 && g + 8 * h < r1; ++h) {
      const int rows = int(r1 - (g + 8 * h) < 8 ? r1 - (g + 8 * h) : 8);
      run_group<Fmt>(A, nb, kc, rows, Y + g + 8 * h, ldy, buf,
                     [&](int64_t kb0, int64_t kb1, uint8_t* out) { Fmt::pack_rp(pan, h, nb, kb0, kb1, out); });
    }
  }
}

}  // namespace
}  // namespace ms::cpu::MS_AVX2_NS
