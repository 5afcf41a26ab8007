// qkquant_avx512.cpp — AVX-512 VNNI matmul for the K formats (Q4_K, Q5_K,
// Q6_K) with Q8_256 activations.
//
// Packed panel super-block (16 rows x 256 weights):
//   Q4_K/Q5_K: u8 quants [8 sub-blocks][8 steps][64 B], sub-block scales as
//     int32 [8][16], mins duplicated into both int16 halves [8][16], d, dmin.
//   Q6_K: u8 quants (0..63) [8 groups of 32][8 steps][64 B], scales int32
//     [16][16], scale pairs as int16 [8][16] (for the -32 offset), d.
// Integer part per lane: Σ_j sc_j·(VPDPBUSD over the sub-block); the mins
// (Q4_K/Q5_K) and the -32 offset (Q6_K) come from the activation 16-sums with
// VPDPWSSD. Float part: the ref's two fmas per super-block.
#include <immintrin.h>

#include <cstdint>

#include "core/quant.h"
#include "kernels/cpu/cpu_kernels.h"
#include "kernels/cpu/pack_avx512.h"
#include "kernels/cpu/qdriver_avx512.h"
#include "kernels/panel_layout.h"

namespace ms::cpu::avx512 {
namespace {

inline __m512i sel_bits(__m512i v, __m512i hbytes, int bit) {
  const __mmask64 k = _mm512_test_epi8_mask(hbytes, _mm512_set1_epi8(char(1 << bit)));
  return _mm512_mask_add_epi8(v, k, v, _mm512_set1_epi8(16));
}

// Sum over u < 8 of VPDPWSSD(pairs[u], the int16 pair bs[2u], bs[2u+1]): the
// activation 16-sums of a super-block times per-row int16 pairs (the K
// formats' mins, Q6_K's scales for its -32 offset).
__attribute__((always_inline)) inline __m512i bsum_dot(const __m512i* pairs, const int16_t* bs) {
  __m512i r = _mm512_setzero_si512();
#pragma GCC unroll 8
  for (int u = 0; u < 8; ++u) r = _mm512_dpwssd_epi32(r, pairs[u], _mm512_set1_epi32(load_i32(bs + 2 * u)));
  return r;
}

// isum + sc * (sum over s < S of VPDPBUSD(w[s], the 4 activation bytes at
// aq + 4s)): one sub-block of one token, its integer sum times its scale.
template <int S>
__attribute__((always_inline)) inline __m512i add_scaled_dot(__m512i isum, const __m512i* w, const int8_t* aq,
                                                            __m512i sc) {
  __m512i P = _mm512_setzero_si512();
#pragma GCC unroll 8
  for (int s = 0; s < S; ++s) P = dpbusd_bcast(P, w[s], aq + 4 * s);
  return _mm512_add_epi32(isum, _mm512_mullo_epi32(P, sc));
}

// The panel layout of a K format (ops::repack_panels): panels of 16 rows,
// [super-blocks][Fmt::kRpBlock bytes], each the format's transposes followed
// by its header words at Fmt::kRpHeader. Fmt::rp_get(blk) returns what
// superblock() / store_packed() take to read the quants of block blk;
// Fmt::superblock_rp<C>(A, b, blk, acc) adds super-block b of C activation
// rows to acc (C x 16 floats).
template <class Fmt, int C>
void kpanel_fused(const WeightsRef& W, const ActsRef& A, int64_t r0, int64_t r1, float* Y, int64_t ldy) {
  const int64_t nb = W.cols / 256;
  const size_t panel_bytes = size_t(nb) * Fmt::kRpBlock;
  constexpr size_t kAheadRp = 2 * Fmt::kRpBlock;  // prefetch distance
  // The chunk's first lines, which no earlier block prefetched.
  for (size_t o = 0; o < kAheadRp; o += 64) prefetch_t0(W.data + size_t(r0 / 16) * panel_bytes + o);
  for (int64_t g = r0; g < r1; g += 16) {
    const int rows = int(r1 - g < 16 ? r1 - g : 16);
    const __mmask16 mask = rows >= 16 ? __mmask16(0xFFFF) : __mmask16((1u << rows) - 1);
    const uint8_t* pan = W.data + size_t(g / 16) * panel_bytes;
    // The accumulators stay in memory (L1): a super-block touches each twice.
    alignas(64) float acc[C * 16];
    for (int c = 0; c < C; ++c) _mm512_store_ps(acc + 16 * c, _mm512_setzero_ps());
    for (int64_t b = 0; b < nb; ++b) {
      const uint8_t* blk = pan + size_t(b) * Fmt::kRpBlock;
      // Each line once, two super-blocks ahead (into the next panel, which
      // follows this one, near its end).
      for (size_t o = 0; o < Fmt::kRpBlock; o += 64) prefetch_t0(blk + kAheadRp + o);
      Fmt::template superblock_rp<C>(A, b, blk, acc);
    }
    for (int c = 0; c < C; ++c) _mm512_mask_storeu_ps(Y + c * ldy + g, mask, _mm512_load_ps(acc + 16 * c));
  }
}

template <class Fmt>
void kpanel_pack(const WeightsRef& W, int64_t g, int RP, int64_t kb0, int64_t kb1, uint8_t* out) {
  const int64_t nb = W.cols / 256;
  const size_t panel_bytes = size_t(nb) * Fmt::kRpBlock;
  for (int p = 0; p < RP; ++p) {
    const uint8_t* pan = W.data + size_t(g / 16 + p) * panel_bytes;
    for (int64_t b = kb0; b < kb1; ++b) {
      const uint8_t* blk = pan + size_t(b) * Fmt::kRpBlock;
      Fmt::store_packed(out + ((b - kb0) * RP + p) * Fmt::kPanelBytes,
                        reinterpret_cast<const int32_t*>(blk + Fmt::kRpHeader), Fmt::rp_get(blk));
    }
  }
}

// What qmatmul_panels needs of a K format Fmt (derived from KPanel<Fmt>):
// fused_rp<C> and pack_rp over its panel layout.
template <class Fmt>
struct KPanel {
  static constexpr bool kDirectRp = false;  // chunks are unpacked (pack_rp) before the micro-kernel
  template <int C>
  static void fused_rp(const WeightsRef& W, const ActsRef& A, int64_t r0, int64_t r1, float* Y, int64_t ldy) {
    kpanel_fused<Fmt, C>(W, A, r0, r1, Y, ldy);
  }
  static void pack_rp(const WeightsRef& W, int64_t g, int RP, int64_t kb0, int64_t kb1, uint8_t* out) {
    kpanel_pack<Fmt>(W, g, RP, kb0, kb1, out);
  }
};

// Q4_K and Q5_K share everything but the 5th bit.
template <bool kFive>
struct K45 : KPanel<K45<kFive>> {
  static constexpr int64_t kElems = 256;
  static constexpr size_t kPanelBytes = 4096 + 512 + 512 + 64 + 64;
  static constexpr int kMaxC = 4, kFusedMaxC = 8, kFusedRpMaxC = 16;
  static constexpr int64_t kChunkSmall = 2, kChunkLarge = 4, kMaxChunk = 16, kFusedChunk = 4;
  static constexpr size_t kAhead = 640;
  static constexpr size_t kBlockBytes = kFive ? sizeof(BlockQ5_K) : sizeof(BlockQ4_K);
  static constexpr size_t kQs = kFive ? 48 : 16;
  static constexpr size_t kOffs[4] = {0, 4, 8, 12};  // header words: d|dmin, scales[0..12)

  // Sub-block scales (int32), mins duplicated in both int16 halves, d and dmin
  // of a panel super-block, from its header words h[0..3] (one vector each).
  __attribute__((always_inline)) static inline void scales(const int32_t* h, __m512i* sc, __m512i* m2, __m512& d,
                                                           __m512& dmin) {
    const __m512i h0 = _mm512_load_si512(h), s0 = _mm512_load_si512(h + 16), s1 = _mm512_load_si512(h + 32),
                  s2 = _mm512_load_si512(h + 48);
    const __m512i m63 = _mm512_set1_epi32(63), m15 = _mm512_set1_epi32(15), m3 = _mm512_set1_epi32(3);
#pragma GCC unroll 8
    for (int j = 0; j < 8; ++j) {
      __m512i mn;
      if (j < 4) {
        sc[j] = _mm512_and_si512(_mm512_srli_epi32(s0, 8 * j), m63);
        mn = _mm512_and_si512(_mm512_srli_epi32(s1, 8 * j), m63);
      } else {
        const int jj = 8 * (j - 4);
        sc[j] = _mm512_or_si512(_mm512_and_si512(_mm512_srli_epi32(s2, jj), m15),
                                _mm512_slli_epi32(_mm512_and_si512(_mm512_srli_epi32(s0, jj + 6), m3), 4));
        mn = _mm512_or_si512(_mm512_and_si512(_mm512_srli_epi32(s2, jj + 4), m15),
                             _mm512_slli_epi32(_mm512_and_si512(_mm512_srli_epi32(s1, jj + 6), m3), 4));
      }
      m2[j] = _mm512_or_si512(mn, _mm512_slli_epi32(mn, 16));
    }
    d = f16lo(h0);
    dmin = f16hi(h0);
  }

  // High bits (Q5_K): th[j] lane r = qh bytes 4j..4j+3 of row r.
  __attribute__((always_inline)) static inline void high_bits(const PanelRows& pr, size_t bo, __m512i* th) {
    if constexpr (kFive) {
      const uint8_t* q[16];
#pragma GCC unroll 16
      for (int r = 0; r < 16; ++r) q[r] = pr.p[r] + bo + 16;
      transpose_16x32(q, th);
    }
  }

  // Quants of sub-blocks 2c (lo) and 2c+1 (hi) of a panel super-block.
  __attribute__((always_inline)) static inline void quants(const PanelRows& pr, size_t bo, int c, const __m512i* th,
                                                           __m512i* lo, __m512i* hi) {
    const uint8_t* q[16];
#pragma GCC unroll 16
    for (int r = 0; r < 16; ++r) q[r] = pr.p[r] + bo + kQs + 32 * c;
    __m512i t[8];
    transpose_16x32(q, t);
    const __m512i m4 = _mm512_set1_epi8(0x0F);
#pragma GCC unroll 8
    for (int j = 0; j < 8; ++j) {
      lo[j] = _mm512_and_si512(t[j], m4);
      hi[j] = _mm512_and_si512(_mm512_srli_epi16(t[j], 4), m4);
      if constexpr (kFive) {
        lo[j] = sel_bits(lo[j], th[j], 2 * c);
        hi[j] = sel_bits(hi[j], th[j], 2 * c + 1);
      }
    }
  }

  // One super-block in the micro-kernels' packed format, from its header
  // words h and get(c, lo, hi), which gives the quants of sub-blocks 2c, 2c+1.
  template <class Get>
  __attribute__((always_inline)) static inline void store_packed(uint8_t* o, const int32_t* h, Get get) {
#pragma GCC unroll 4
    for (int c = 0; c < 4; ++c) {
      __m512i lo[8], hi[8];
      get(c, lo, hi);
#pragma GCC unroll 8
      for (int j = 0; j < 8; ++j) {
        _mm512_store_si512(o + (16 * c + j) * 64, lo[j]);
        _mm512_store_si512(o + (16 * c + 8 + j) * 64, hi[j]);
      }
    }
    __m512i sc[8], m2[8];
    __m512 d, dmin;
    scales(h, sc, m2, d, dmin);
#pragma GCC unroll 8
    for (int j = 0; j < 8; ++j) {
      _mm512_store_si512(o + 4096 + 64 * j, sc[j]);
      _mm512_store_si512(o + 4608 + 64 * j, m2[j]);
    }
    _mm512_store_ps(o + 5120, d);
    _mm512_store_ps(o + 5184, dmin);
  }

  // Super-block b of C activation rows into acc: Σ_j sc_j·(VPDPBUSD over
  // sub-block j) in integers, the mins from the 16-sums, then the ref's two
  // fmas. get(c, lo, hi) gives the quants of sub-blocks 2c and 2c+1.
  template <int C, class Get>
  __attribute__((always_inline)) static inline void superblock(const ActsRef& A, int64_t b, const int32_t* h, Get get,
                                                              __m512* acc) {
    __m512i sc[8], m2[8];
    __m512 d, dmin;
    scales(h, sc, m2, d, dmin);
    __m512i isum[C];
#pragma GCC unroll 8
    for (int c = 0; c < C; ++c) isum[c] = _mm512_setzero_si512();
#pragma GCC unroll 4
    for (int cc = 0; cc < 4; ++cc) {
      __m512i q[2][8];
      get(cc, q[0], q[1]);
#pragma GCC unroll 2
      for (int hh = 0; hh < 2; ++hh) {
        const int j = 2 * cc + hh;
#pragma GCC unroll 8
        for (int c = 0; c < C; ++c) {
          isum[c] = add_scaled_dot<8>(isum[c], q[hh], A.qs + c * A.qs_stride + 256 * b + 32 * j, sc[j]);
        }
      }
    }
#pragma GCC unroll 8
    for (int c = 0; c < C; ++c) {
      const __m512i msum = bsum_dot(m2, A.bsum + c * (A.cols / 16) + 16 * b);
      const __m512 da = _mm512_set1_ps(A.d[c * A.nblk + b]);
      acc[c] = _mm512_fmadd_ps(_mm512_cvtepi32_ps(isum[c]), _mm512_mul_ps(d, da), acc[c]);
      acc[c] = _mm512_fnmadd_ps(_mm512_cvtepi32_ps(msum), _mm512_mul_ps(dmin, da), acc[c]);
    }
  }

  static void pack(const WeightsRef& W, const PanelRows* panels, const PanelRows* next, int RP, int64_t kb0,
                   int64_t kb1, uint8_t* out) {
    const size_t rbytes = size_t(W.cols / 256) * kBlockBytes;
    alignas(64) int32_t hdr[kMaxChunk * 4 * 16];
    for (int p = 0; p < RP; ++p) {
      const PanelRows& pr = panels[p];
      collect_u32<4>(pr, kOffs, kBlockBytes, kb0, kb1 - kb0, hdr);
      for (int64_t b = kb0; b < kb1; ++b) {
        const size_t bo = size_t(b) * kBlockBytes;
        uint8_t* o = out + ((b - kb0) * RP + p) * kPanelBytes;
        prefetch_ahead(pr, next ? &next[p] : nullptr, bo + kAhead, kBlockBytes, rbytes);
        __m512i th[8];
        high_bits(pr, bo, th);
        store_packed(o, hdr + (b - kb0) * 64, [&](int c, __m512i* lo, __m512i* hi) { quants(pr, bo, c, th, lo, hi); });
      }
    }
  }

  // Small n: unpack each panel super-block in registers and use it at once.
  template <int C>
  static void fused(const WeightsRef& W, const ActsRef& A, int64_t r0, int64_t r1, float* Y, int64_t ldy) {
    const int64_t nb = W.cols / 256;
    const size_t rbytes = size_t(nb) * kBlockBytes;
    alignas(64) int32_t hdr[kFusedChunk * 4 * 16];
    for (int64_t g = r0; g < r1; g += 16) {
      const int rows = int(r1 - g < 16 ? r1 - g : 16);
      const __mmask16 mask = rows >= 16 ? __mmask16(0xFFFF) : __mmask16((1u << rows) - 1);
      PanelRows pr, next;
      pr.init(W.data + size_t(g) * W.row_stride, W.row_stride, rows);
      const int nrows = int(r1 - (g + 16) < 16 ? r1 - (g + 16) : 16);
      if (nrows > 0) next.init(W.data + size_t(g + 16) * W.row_stride, W.row_stride, nrows);
      __m512 acc[C];
#pragma GCC unroll 8
      for (int c = 0; c < C; ++c) acc[c] = _mm512_setzero_ps();
      for (int64_t kb0 = 0; kb0 < nb; kb0 += kFusedChunk) {
        const int64_t kb1 = kb0 + kFusedChunk < nb ? kb0 + kFusedChunk : nb;
        collect_u32<4>(pr, kOffs, kBlockBytes, kb0, kb1 - kb0, hdr);
        for (int64_t b = kb0; b < kb1; ++b) {
          const size_t bo = size_t(b) * kBlockBytes;
          prefetch_ahead(pr, nrows > 0 ? &next : nullptr, bo + kAhead, kBlockBytes, rbytes);
          __m512i th[8];
          high_bits(pr, bo, th);
          superblock<C>(A, b, hdr + (b - kb0) * 64,
                        [&](int cc, __m512i* lo, __m512i* hi) { quants(pr, bo, cc, th, lo, hi); }, acc);
        }
      }
#pragma GCC unroll 8
      for (int c = 0; c < C; ++c) _mm512_mask_storeu_ps(Y + c * ldy + g, mask, acc[c]);
    }
  }

  // Panel layout (ops::repack_panels): per 16-row panel and super-block, the
  // quants as quants() transposes them ([4][8] vectors, low and high nibbles
  // still packed), Q5_K's high bits as high_bits() transposes them ([8]
  // vectors at kRpQh), then the header words as collect_u32 gathers them.
  // One sequential stream; the arithmetic of fused() / pack().
  static constexpr size_t kRpQh = panel::kKQh, kRpBlock = kFive ? panel::kQ5kBlock : panel::kQ4kBlock,
                          kRpHeader = kRpBlock - 256;

  // Step j of sub-block 2c + h (h = 0: low nibbles, 1: high) as u8 quants.
  __attribute__((always_inline)) static inline __m512i quant_rp(const uint8_t* blk, int c, int h, int j) {
    const __m512i t = _mm512_load_si512(blk + (8 * c + j) * 64);
    const __m512i q = _mm512_and_si512(h ? _mm512_srli_epi16(t, 4) : t, _mm512_set1_epi8(0x0F));
    if constexpr (kFive) return sel_bits(q, _mm512_load_si512(blk + kRpQh + 64 * j), 2 * c + h);
    return q;
  }

  __attribute__((always_inline)) static inline void quants_rp(const uint8_t* blk, int c, __m512i* lo, __m512i* hi) {
#pragma GCC unroll 8
    for (int j = 0; j < 8; ++j) {
      lo[j] = quant_rp(blk, c, 0, j);
      hi[j] = quant_rp(blk, c, 1, j);
    }
  }

  // Tokens C0..C0+G-1 of panel super-block blk (b-th of its row), the
  // arithmetic of superblock(). Only one sub-block's weights, the group's
  // integer sums and its chains are live (8 + 2G vectors); the scales are
  // decoded once per super-block into sc/m2 (memory operands here).
  template <int C0, int G>
  __attribute__((always_inline)) static inline void rp_group(const ActsRef& A, int64_t b, const uint8_t* blk,
                                                             const __m512i* sc, const __m512i* m2, __m512 d,
                                                             __m512 dmin, float* acc) {
    __m512i isum[G];
#pragma GCC unroll 16
    for (int c = 0; c < G; ++c) isum[c] = _mm512_setzero_si512();
    // A real loop over the sub-block pairs: with it fully unrolled as well,
    // GCC stopped unrolling the token loops at 16 tokens and kept the integer
    // sums in memory.
#pragma GCC unroll 1
    for (int cc = 0; cc < 4; ++cc)
#pragma GCC unroll 2
    for (int hh = 0; hh < 2; ++hh) {
      const int j = 2 * cc + hh;
      __m512i w[8];
#pragma GCC unroll 8
      for (int s = 0; s < 8; ++s) w[s] = quant_rp(blk, cc, hh, s);
#pragma GCC unroll 16
      for (int c = 0; c < G; ++c) {
        isum[c] = add_scaled_dot<8>(isum[c], w, A.qs + (C0 + c) * A.qs_stride + 256 * b + 32 * j, sc[j]);
      }
    }
#pragma GCC unroll 16
    for (int c = 0; c < G; ++c) {
      const __m512i msum = bsum_dot(m2, A.bsum + (C0 + c) * (A.cols / 16) + 16 * b);
      const __m512 da = _mm512_set1_ps(A.d[(C0 + c) * A.nblk + b]);
      float* ac = acc + 16 * (C0 + c);
      __m512 a = _mm512_fmadd_ps(_mm512_cvtepi32_ps(isum[c]), _mm512_mul_ps(d, da), _mm512_load_ps(ac));
      _mm512_store_ps(ac, _mm512_fnmadd_ps(_mm512_cvtepi32_ps(msum), _mm512_mul_ps(dmin, da), a));
    }
  }

  // Super-block b of C activation rows from the panel layout: tokens in
  // groups of at most 8, each a pass over the super-block's 2 KiB of quants
  // (from L1 after the first). Against superblock() with the quants of
  // rp_get, which holds every scale and both nibbles of a sub-block pair in
  // registers and spills: 14336x4096 from memory, alternating call by call,
  // 1.1-1.2x faster at 2-8 tokens, equal at 1; and at 9-16 tokens (which
  // went through the packed path) 1.6-2.0x.
  template <int C>
  __attribute__((always_inline)) static inline void superblock_rp(const ActsRef& A, int64_t b, const uint8_t* blk,
                                                                 float* acc) {
    alignas(64) __m512i sc[8], m2[8];
    __m512 d, dmin;
    scales(reinterpret_cast<const int32_t*>(blk + kRpHeader), sc, m2, d, dmin);
    constexpr int G0 = token_group0(C);
    rp_group<0, G0>(A, b, blk, sc, m2, d, dmin, acc);
    if constexpr (C > G0) rp_group<G0, C - G0>(A, b, blk, sc, m2, d, dmin, acc);
  }

  static auto rp_get(const uint8_t* blk) {
    return [blk](int c, __m512i* lo, __m512i* hi) { quants_rp(blk, c, lo, hi); };
  }

  template <int RP, int C>
  static void kernel(const TileArgs& t) {
    __m512 acc[RP][C];
    load_acc<RP, C>(t, acc);
    for (int64_t b = 0; b < t.nb; ++b) {
      if (t.spf) t.spf->one();
      const uint8_t* blk = t.pk + b * RP * kPanelBytes;
      const int8_t* aq = t.aq + 256 * b;
      __m512i isum[RP][C];
      #pragma GCC unroll 16
      for (int p = 0; p < RP; ++p)
        #pragma GCC unroll 16
        for (int c = 0; c < C; ++c) isum[p][c] = _mm512_setzero_si512();
      #pragma GCC unroll 16
      for (int j = 0; j < 8; ++j) {
        __m512i P[RP][C];
        #pragma GCC unroll 16
        for (int p = 0; p < RP; ++p)
          #pragma GCC unroll 16
          for (int c = 0; c < C; ++c) P[p][c] = _mm512_setzero_si512();
        #pragma GCC unroll 16
        for (int s = 0; s < 8; ++s) {
          __m512i w[RP];
          #pragma GCC unroll 16
          for (int p = 0; p < RP; ++p) w[p] = _mm512_load_si512(blk + p * kPanelBytes + (8 * j + s) * 64);
          #pragma GCC unroll 16
          for (int c = 0; c < C; ++c) {
            const __m512i x = _mm512_set1_epi32(load_i32(aq + c * t.aq_stride + 32 * j + 4 * s));
            #pragma GCC unroll 16
            for (int p = 0; p < RP; ++p) P[p][c] = _mm512_dpbusd_epi32(P[p][c], w[p], x);
          }
        }
        #pragma GCC unroll 16
        for (int p = 0; p < RP; ++p) {
          const __m512i sc = _mm512_load_si512(blk + p * kPanelBytes + 4096 + 64 * j);
          #pragma GCC unroll 16
          for (int c = 0; c < C; ++c) isum[p][c] = _mm512_add_epi32(isum[p][c], _mm512_mullo_epi32(P[p][c], sc));
        }
      }
      #pragma GCC unroll 16
      for (int p = 0; p < RP; ++p) {
        const uint8_t* pb = blk + p * kPanelBytes;
        const __m512 dv = _mm512_load_ps(reinterpret_cast<const float*>(pb + 5120));
        const __m512 dmv = _mm512_load_ps(reinterpret_cast<const float*>(pb + 5184));
        #pragma GCC unroll 16
        for (int c = 0; c < C; ++c) {
          const int16_t* bs = t.ab + c * t.ab_stride + 16 * b;
          __m512i msum = _mm512_setzero_si512();
          #pragma GCC unroll 16
          for (int j = 0; j < 8; ++j)
            msum = _mm512_dpwssd_epi32(msum, _mm512_load_si512(pb + 4608 + 64 * j), _mm512_set1_epi32(load_i32(bs + 2 * j)));
          const __m512 da = _mm512_set1_ps(t.ad[c * t.a_blk_stride + b]);
          acc[p][c] = _mm512_fmadd_ps(_mm512_cvtepi32_ps(isum[p][c]), _mm512_mul_ps(dv, da), acc[p][c]);
          acc[p][c] = _mm512_fnmadd_ps(_mm512_cvtepi32_ps(msum), _mm512_mul_ps(dmv, da), acc[p][c]);
        }
      }
    }
    store_acc<RP, C>(t, acc);
  }
};

struct Q6K : KPanel<Q6K> {
  static constexpr int64_t kElems = 256;
  static constexpr size_t kPanelBytes = 4096 + 1024 + 512 + 64;
  // From panels the fused path pays up to 16 tokens (superblock_rp; Q6_K
  // streaming 14336x4096 at 8 tokens: 36 GB/s, at 16: 17, against 15 and 11
  // through the packed path); from rows its transposes keep it to 4.
  static constexpr int kMaxC = 4, kFusedMaxC = 4, kFusedRpMaxC = 16;
  static constexpr int64_t kChunkSmall = 2, kChunkLarge = 4, kMaxChunk = 16, kFusedChunk = 4;
  static constexpr size_t kAhead = 640;
  static constexpr size_t kBlockBytes = sizeof(BlockQ6_K);
  static constexpr size_t kOffs[5] = {192, 196, 200, 204, 206};  // scales[16]; d = high half of the last

  // Scales (int32 per 16-sub-block), scale pairs as int16 (for the -32 offset
  // term with the activation 16-sums) and d of a panel super-block.
  __attribute__((always_inline)) static inline void scales(const int32_t* h, __m512i* sc, __m512i* sc2, __m512& d) {
#pragma GCC unroll 4
    for (int g = 0; g < 4; ++g) {
      const __m512i s = _mm512_load_si512(h + 16 * g);
#pragma GCC unroll 4
      for (int u = 0; u < 4; ++u) sc[4 * g + u] = _mm512_srai_epi32(_mm512_slli_epi32(s, 24 - 8 * u), 24);
    }
    const __m512i lo16 = _mm512_set1_epi32(0xFFFF);
#pragma GCC unroll 8
    for (int u = 0; u < 8; ++u)
      sc2[u] = _mm512_or_si512(_mm512_and_si512(sc[2 * u], lo16), _mm512_slli_epi32(sc[2 * u + 1], 16));
    d = f16hi(_mm512_load_si512(h + 64));
  }

  // Transposed ql (two 32-byte halves) and qh bytes of half h (128 values).
  __attribute__((always_inline)) static inline void half(const PanelRows& pr, size_t bo, int h, __m512i* tl0,
                                                         __m512i* tl1, __m512i* th) {
    const uint8_t* q[16];
#pragma GCC unroll 16
    for (int r = 0; r < 16; ++r) q[r] = pr.p[r] + bo + 64 * h;
    transpose_16x32(q, tl0);
#pragma GCC unroll 16
    for (int r = 0; r < 16; ++r) q[r] = pr.p[r] + bo + 64 * h + 32;
    transpose_16x32(q, tl1);
#pragma GCC unroll 16
    for (int r = 0; r < 16; ++r) q[r] = pr.p[r] + bo + 128 + 32 * h;
    transpose_16x32(q, th);
  }

  // Step j of group k (values 32k..32k+31 of the half) as u8 0..63.
  __attribute__((always_inline)) static inline __m512i value(const __m512i* tl0, const __m512i* tl1,
                                                            const __m512i* th, int k, int j) {
    const __m512i* src = (k & 1) ? tl1 : tl0;
    const __m512i lo = (k >> 1) ? _mm512_srli_epi16(src[j], 4) : src[j];
    const __m512i hb = k < 3 ? _mm512_slli_epi16(th[j], 4 - 2 * k) : _mm512_srli_epi16(th[j], 2);
    return _mm512_or_si512(_mm512_and_si512(lo, _mm512_set1_epi8(0x0F)), _mm512_and_si512(hb, _mm512_set1_epi8(0x30)));
  }

  // One super-block in the micro-kernels' packed format, from its header
  // words h and get(half, tl0, tl1, th), which gives half()'s transposes.
  template <class Get>
  __attribute__((always_inline)) static inline void store_packed(uint8_t* o, const int32_t* hw, Get get) {
#pragma GCC unroll 2
    for (int h = 0; h < 2; ++h) {
      __m512i tl0[8], tl1[8], th[8];
      get(h, tl0, tl1, th);
#pragma GCC unroll 4
      for (int k = 0; k < 4; ++k)
#pragma GCC unroll 8
        for (int j = 0; j < 8; ++j) _mm512_store_si512(o + ((4 * h + k) * 8 + j) * 64, value(tl0, tl1, th, k, j));
    }
    __m512i sc[16], sc2[8];
    __m512 d;
    scales(hw, sc, sc2, d);
#pragma GCC unroll 16
    for (int s = 0; s < 16; ++s) _mm512_store_si512(o + 4096 + 64 * s, sc[s]);
#pragma GCC unroll 8
    for (int u = 0; u < 8; ++u) _mm512_store_si512(o + 5120 + 64 * u, sc2[u]);
    _mm512_store_ps(o + 5632, d);
  }

  // Super-block b of C activation rows into acc: Σ sc·(VPDPBUSD over each
  // 16-value sub-block) in integers, minus 32·Σ sc·(activation 16-sums), then
  // the ref's fma. get(half, tl0, tl1, th) gives half()'s transposes.
  template <int C, class Get>
  __attribute__((always_inline)) static inline void superblock(const ActsRef& A, int64_t b, const int32_t* hw, Get get,
                                                              __m512* acc) {
    __m512i sc[16], sc2[8];
    __m512 d;
    scales(hw, sc, sc2, d);
    __m512i isum[C];
#pragma GCC unroll 4
    for (int c = 0; c < C; ++c) isum[c] = _mm512_setzero_si512();
#pragma GCC unroll 2
    for (int h = 0; h < 2; ++h) {
      __m512i tl0[8], tl1[8], th[8];
      get(h, tl0, tl1, th);
#pragma GCC unroll 4
      for (int k = 0; k < 4; ++k) {
        __m512i v[8];
#pragma GCC unroll 8
        for (int j = 0; j < 8; ++j) v[j] = value(tl0, tl1, th, k, j);
#pragma GCC unroll 2
        for (int u = 0; u < 2; ++u) {  // two sub-blocks of 16 per group
          const int s16 = 8 * h + 2 * k + u;
#pragma GCC unroll 4
          for (int c = 0; c < C; ++c) {
            isum[c] = add_scaled_dot<4>(isum[c], v + 4 * u, A.qs + c * A.qs_stride + 256 * b + 16 * s16, sc[s16]);
          }
        }
      }
    }
#pragma GCC unroll 4
    for (int c = 0; c < C; ++c) {
      const __m512i corr = bsum_dot(sc2, A.bsum + c * (A.cols / 16) + 16 * b);
      const __m512i is = _mm512_sub_epi32(isum[c], _mm512_slli_epi32(corr, 5));
      acc[c] = _mm512_fmadd_ps(_mm512_cvtepi32_ps(is), _mm512_mul_ps(d, _mm512_set1_ps(A.d[c * A.nblk + b])), acc[c]);
    }
  }

  // Panel layout (ops::repack_panels): per 16-row panel and super-block,
  // half()'s transposes for both halves ([2][tl0, tl1, th][8] vectors), then
  // the 5 header words as collect_u32 gathers them ([5][16] int32).
  static constexpr size_t kRpBlock = panel::kQ6kBlock, kRpHeader = panel::kQ6kHeader;

  __attribute__((always_inline)) static inline void half_rp(const uint8_t* blk, int h, __m512i* tl0, __m512i* tl1,
                                                            __m512i* th) {
#pragma GCC unroll 8
    for (int j = 0; j < 8; ++j) {
      tl0[j] = _mm512_load_si512(blk + (24 * h + j) * 64);
      tl1[j] = _mm512_load_si512(blk + (24 * h + 8 + j) * 64);
      th[j] = _mm512_load_si512(blk + (24 * h + 16 + j) * 64);
    }
  }

  static auto rp_get(const uint8_t* blk) {
    return [blk](int h, __m512i* tl0, __m512i* tl1, __m512i* th) { half_rp(blk, h, tl0, tl1, th); };
  }
  // Tokens C0..C0+G-1 of panel super-block blk, the arithmetic of
  // superblock(): one group of 32 values (8 vectors) live at a time, the
  // scales decoded once per super-block into sc/sc2 (memory operands here).
  static constexpr int kRpGroupFromC = 6;
  template <int C0, int G>
  __attribute__((always_inline)) static inline void rp_group(const ActsRef& A, int64_t b, const uint8_t* blk,
                                                             const __m512i* sc, const __m512i* sc2, __m512 d,
                                                             float* acc) {
    __m512i isum[G];
#pragma GCC unroll 16
    for (int c = 0; c < G; ++c) isum[c] = _mm512_setzero_si512();
    // A real loop over the 8 groups of 32 values (h, k), as in K45::rp_group.
#pragma GCC unroll 1
    for (int hk = 0; hk < 8; ++hk) {
      const int h = hk / 4, k = hk % 4;
      const uint8_t* ql = blk + (24 * h + 8 * (k & 1)) * 64;
      const uint8_t* qh = blk + (24 * h + 16) * 64;
      const __m512i m4 = _mm512_set1_epi8(0x0F), m30 = _mm512_set1_epi8(0x30);
      __m512i v[8];
#pragma GCC unroll 8
      for (int j = 0; j < 8; ++j) {
        const __m512i lq = _mm512_load_si512(ql + 64 * j), hq = _mm512_load_si512(qh + 64 * j);
        const __m512i lo = (k >> 1) ? _mm512_srli_epi16(lq, 4) : lq;
        // (qh >> 2k) << 4 keeps bits 2k, 2k+1 of each byte in bits 4, 5.
        const __m512i hb = _mm512_slli_epi16(_mm512_srlv_epi16(hq, _mm512_set1_epi16(short(2 * k))), 4);
        v[j] = _mm512_or_si512(_mm512_and_si512(lo, m4), _mm512_and_si512(hb, m30));
      }
#pragma GCC unroll 2
      for (int u = 0; u < 2; ++u) {
        const int s16 = 8 * h + 2 * k + u;
#pragma GCC unroll 16
        for (int c = 0; c < G; ++c) {
          isum[c] = add_scaled_dot<4>(isum[c], v + 4 * u, A.qs + (C0 + c) * A.qs_stride + 256 * b + 16 * s16, sc[s16]);
        }
      }
    }
#pragma GCC unroll 16
    for (int c = 0; c < G; ++c) {
      const __m512i corr = bsum_dot(sc2, A.bsum + (C0 + c) * (A.cols / 16) + 16 * b);
      const __m512i is = _mm512_sub_epi32(isum[c], _mm512_slli_epi32(corr, 5));
      float* ac = acc + 16 * (C0 + c);
      _mm512_store_ps(ac, _mm512_fmadd_ps(_mm512_cvtepi32_ps(is), _mm512_mul_ps(d, _mm512_set1_ps(A.d[(C0 + c) * A.nblk + b])),
                                          _mm512_load_ps(ac)));
    }
  }

  // Super-block b of C activation rows from the panel layout. Up to 5
  // tokens, superblock() with every weight vector in registers; from 6, in
  // groups of at most 8 tokens (a pass over the super-block each, from L1
  // after the first), which reads 14336x4096 from memory 1.3-1.6x faster at
  // 6-16 tokens and was 5-12% slower at 1-5 (alternating call by call).
  template <int C>
  __attribute__((always_inline)) static inline void superblock_rp(const ActsRef& A, int64_t b, const uint8_t* blk,
                                                                 float* acc) {
    if constexpr (C < kRpGroupFromC) {
      __m512 a[C];
#pragma GCC unroll 8
      for (int c = 0; c < C; ++c) a[c] = _mm512_load_ps(acc + 16 * c);
      superblock<C>(A, b, reinterpret_cast<const int32_t*>(blk + kRpHeader), rp_get(blk), a);
#pragma GCC unroll 8
      for (int c = 0; c < C; ++c) _mm512_store_ps(acc + 16 * c, a[c]);
      return;
    }
    alignas(64) __m512i sc[16], sc2[8];
    __m512 d;
    scales(reinterpret_cast<const int32_t*>(blk + kRpHeader), sc, sc2, d);
    constexpr int G0 = token_group0(C);
    rp_group<0, G0>(A, b, blk, sc, sc2, d, acc);
    if constexpr (C > G0) rp_group<G0, C - G0>(A, b, blk, sc, sc2, d, acc);
  }

  static void pack(const WeightsRef& W, const PanelRows* panels, const PanelRows* next, int RP, int64_t kb0,
                   int64_t kb1, uint8_t* out) {
    const size_t rbytes = size_t(W.cols / 256) * kBlockBytes;
    alignas(64) int32_t hdr[kMaxChunk * 5 * 16];
    for (int p = 0; p < RP; ++p) {
      const PanelRows& pr = panels[p];
      collect_u32<5>(pr, kOffs, kBlockBytes, kb0, kb1 - kb0, hdr);
      for (int64_t b = kb0; b < kb1; ++b) {
        const size_t bo = size_t(b) * kBlockBytes;
        uint8_t* o = out + ((b - kb0) * RP + p) * kPanelBytes;
        prefetch_ahead(pr, next ? &next[p] : nullptr, bo + kAhead, kBlockBytes, rbytes);
        store_packed(o, hdr + (b - kb0) * 80,
                     [&](int h, __m512i* tl0, __m512i* tl1, __m512i* th) { half(pr, bo, h, tl0, tl1, th); });
      }
    }
  }

  // Small n: unpack each panel super-block in registers and use it at once.
  template <int C>
  static void fused(const WeightsRef& W, const ActsRef& A, int64_t r0, int64_t r1, float* Y, int64_t ldy) {
    const int64_t nb = W.cols / 256;
    const size_t rbytes = size_t(nb) * kBlockBytes;
    alignas(64) int32_t hdr[kFusedChunk * 5 * 16];
    for (int64_t g = r0; g < r1; g += 16) {
      const int rows = int(r1 - g < 16 ? r1 - g : 16);
      const __mmask16 mask = rows >= 16 ? __mmask16(0xFFFF) : __mmask16((1u << rows) - 1);
      PanelRows pr, next;
      pr.init(W.data + size_t(g) * W.row_stride, W.row_stride, rows);
      const int nrows = int(r1 - (g + 16) < 16 ? r1 - (g + 16) : 16);
      if (nrows > 0) next.init(W.data + size_t(g + 16) * W.row_stride, W.row_stride, nrows);
      __m512 acc[C];
#pragma GCC unroll 4
      for (int c = 0; c < C; ++c) acc[c] = _mm512_setzero_ps();
      for (int64_t kb0 = 0; kb0 < nb; kb0 += kFusedChunk) {
        const int64_t kb1 = kb0 + kFusedChunk < nb ? kb0 + kFusedChunk : nb;
        collect_u32<5>(pr, kOffs, kBlockBytes, kb0, kb1 - kb0, hdr);
        for (int64_t b = kb0; b < kb1; ++b) {
          const size_t bo = size_t(b) * kBlockBytes;
          prefetch_ahead(pr, nrows > 0 ? &next : nullptr, bo + kAhead, kBlockBytes, rbytes);
          superblock<C>(A, b, hdr + (b - kb0) * 80,
                        [&](int h, __m512i* tl0, __m512i* tl1, __m512i* th) { half(pr, bo, h, tl0, tl1, th); }, acc);
        }
      }
#pragma GCC unroll 4
      for (int c = 0; c < C; ++c) _mm512_mask_storeu_ps(Y + c * ldy + g, mask, acc[c]);
    }
  }

  template <int RP, int C>
  static void kernel(const TileArgs& t) {
    __m512 acc[RP][C];
    load_acc<RP, C>(t, acc);
    for (int64_t b = 0; b < t.nb; ++b) {
      if (t.spf) t.spf->one();
      const uint8_t* blk = t.pk + b * RP * kPanelBytes;
      const int8_t* aq = t.aq + 256 * b;
      __m512i isum[RP][C];
      #pragma GCC unroll 16
      for (int p = 0; p < RP; ++p)
        #pragma GCC unroll 16
        for (int c = 0; c < C; ++c) isum[p][c] = _mm512_setzero_si512();
      #pragma GCC unroll 16
      for (int s16 = 0; s16 < 16; ++s16) {
        __m512i P[RP][C];
        #pragma GCC unroll 16
        for (int p = 0; p < RP; ++p)
          #pragma GCC unroll 16
          for (int c = 0; c < C; ++c) P[p][c] = _mm512_setzero_si512();
        #pragma GCC unroll 16
        for (int u = 0; u < 4; ++u) {
          __m512i w[RP];
          #pragma GCC unroll 16
          for (int p = 0; p < RP; ++p) w[p] = _mm512_load_si512(blk + p * kPanelBytes + (4 * s16 + u) * 64);
          #pragma GCC unroll 16
          for (int c = 0; c < C; ++c) {
            const __m512i x = _mm512_set1_epi32(load_i32(aq + c * t.aq_stride + 16 * s16 + 4 * u));
            #pragma GCC unroll 16
            for (int p = 0; p < RP; ++p) P[p][c] = _mm512_dpbusd_epi32(P[p][c], w[p], x);
          }
        }
        #pragma GCC unroll 16
        for (int p = 0; p < RP; ++p) {
          const __m512i sc = _mm512_load_si512(blk + p * kPanelBytes + 4096 + 64 * s16);
          #pragma GCC unroll 16
          for (int c = 0; c < C; ++c) isum[p][c] = _mm512_add_epi32(isum[p][c], _mm512_mullo_epi32(P[p][c], sc));
        }
      }
      #pragma GCC unroll 16
      for (int p = 0; p < RP; ++p) {
        const uint8_t* pb = blk + p * kPanelBytes;
        const __m512 dv = _mm512_load_ps(reinterpret_cast<const float*>(pb + 5632));
        #pragma GCC unroll 16
        for (int c = 0; c < C; ++c) {
          const int16_t* bs = t.ab + c * t.ab_stride + 16 * b;
          __m512i corr = _mm512_setzero_si512();
          #pragma GCC unroll 16
          for (int u = 0; u < 8; ++u)
            corr = _mm512_dpwssd_epi32(corr, _mm512_load_si512(pb + 5120 + 64 * u), _mm512_set1_epi32(load_i32(bs + 2 * u)));
          const __m512i is = _mm512_sub_epi32(isum[p][c], _mm512_slli_epi32(corr, 5));
          const __m512 da = _mm512_set1_ps(t.ad[c * t.a_blk_stride + b]);
          acc[p][c] = _mm512_fmadd_ps(_mm512_cvtepi32_ps(is), _mm512_mul_ps(dv, da), acc[p][c]);
        }
      }
    }
    store_acc<RP, C>(t, acc);
  }
};

}  // namespace

void qmatmul_kquant(const WeightsRef& W, const ActsRef& A, int64_t r0, int64_t r1, float* Y, int64_t ldy) {
  switch (W.dtype) {
    case DType::Q4_K:
      if (W.panel16) return qmatmul_panels<K45<false>>(W, A, r0, r1, Y, ldy);
      return qmatmul_any<K45<false>>(W, A, r0, r1, Y, ldy);
    case DType::Q5_K:
      if (W.panel16) return qmatmul_panels<K45<true>>(W, A, r0, r1, Y, ldy);
      return qmatmul_any<K45<true>>(W, A, r0, r1, Y, ldy);
    case DType::Q6_K:
      if (W.panel16) return qmatmul_panels<Q6K>(W, A, r0, r1, Y, ldy);
      return qmatmul_any<Q6K>(W, A, r0, r1, Y, ldy);
    default: return;
  }
}

}  // namespace ms::cpu::avx512
