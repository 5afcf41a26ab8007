// qkquant_avx2.cpp — AVX2 matmul for Q4_K, Q5_K, Q6_K with Q8_256 activations
// (same packed layouts as qkquant_avx512.cpp with 8-row panels; VPMADDUBSW
// sums at most as many steps in 16 bits as cannot saturate). Matrices in
// the panel layout are used in place (fused_rp / pack_rp, each 64-byte vector
// of the layout read as two 8-row halves), as qlegacy_avx2.cpp does for Q8_0
// and Q4_0.
#include <immintrin.h>

#include <cstdint>

#include "core/quant.h"
#include "kernels/cpu/pack_avx2.h"
#include "kernels/panel_layout.h"

namespace ms::cpu::MS_AVX2_NS {
namespace {

// Moves bit `bit` of every byte of h to bit 4 (0x10) and ors it into v.
inline __m256i or_bit4(__m256i v, __m256i h, int bit) {
  const __m256i m10 = _mm256_set1_epi8(0x10);
  const __m256i s = bit <= 4 ? _mm256_slli_epi16(h, 4 - bit) : _mm256_srli_epi16(h, bit - 4);
  return _mm256_or_si256(v, _mm256_and_si256(s, m10));
}

template <int S, int C>
inline void dot_steps(const uint8_t* wq, int nsteps, const int8_t* aq, int64_t aq_stride, __m256i (&P)[C]) {
  #pragma GCC unroll 16
  for (int c = 0; c < C; ++c) P[c] = _mm256_setzero_si256();
  #pragma GCC unroll 16
  for (int s0 = 0; s0 < nsteps; s0 += S) {
    __m256i s16[C];
    #pragma GCC unroll 16
    for (int c = 0; c < C; ++c) s16[c] = _mm256_setzero_si256();
    #pragma GCC unroll 16
    for (int s = s0; s < s0 + S; ++s) {
      const __m256i w = _mm256_load_si256(reinterpret_cast<const __m256i*>(wq + 32 * s));
      #pragma GCC unroll 16
      for (int c = 0; c < C; ++c) {
        s16[c] = dot_acc(s16[c], w, _mm256_set1_epi32(load_i32(aq + c * aq_stride + 4 * s)));
      }
    }
    #pragma GCC unroll 16
    for (int c = 0; c < C; ++c) P[c] = _mm256_add_epi32(P[c], dot_i32(s16[c]));
  }
}

// Sum over u < 8 of VPMADDWD(pairs[u], the int16 pair bs[2u], bs[2u+1]):
// the activation 16-sums of a super-block times per-row int16 pairs (the K
// formats' mins, Q6_K's scales for its -32 offset); pairs: 8 x 32 bytes.
inline __m256i bsum_dot(const uint8_t* pairs, const int16_t* bs) {
  __m256i r = _mm256_setzero_si256();
  #pragma GCC unroll 8
  for (int u = 0; u < 8; ++u)
    r = _mm256_add_epi32(r, _mm256_madd_epi16(_mm256_load_si256(reinterpret_cast<const __m256i*>(pairs + 32 * u)),
                                              _mm256_set1_epi32(load_i32(bs + 2 * u))));
  return r;
}

// The panel layout of a K format (ops::repack_panels), for Fmt (derived from
// KPanel<Fmt>). Small n, fused_rp: one pass over each panel; per super-block and
// half h of the rows (8h..8h+7), Fmt::scales_rp decodes the header into a
// small buffer laid out as the scales part of pack()'s format (from
// Fmt::kQuantBytes on) and Fmt::rp_group<C0, CC> adds tokens C0..C0+CC-1, at
// most 4 at a time, to acc[h].
template <class Fmt>
struct KPanel {
  template <int C>
  static void fused_rp(const WeightsRef& W, const ActsRef& A, int64_t r0, int64_t r1, float* Y, int64_t ldy) {
    const int64_t nb = W.cols / 256;
    const size_t panel_bytes = size_t(nb) * Fmt::kRpBlock;
    constexpr size_t kAheadRp = 2 * Fmt::kRpBlock;  // prefetch distance, as the AVX-512 kernels
    for (size_t o = 0; o < kAheadRp; o += 64) prefetch_t0(W.data + size_t(r0 / 16) * panel_bytes + o);
    alignas(32) uint8_t hdr[2][Fmt::kPanelBytes - Fmt::kQuantBytes];  // per half: the decoded header
    for (int64_t g = r0; g < r1; g += 16) {
      const uint8_t* pan = W.data + size_t(g / 16) * panel_bytes;
      alignas(32) float acc[2][C][8] = {};
      for (int64_t b = 0; b < nb; ++b) {
        const uint8_t* blk = pan + size_t(b) * Fmt::kRpBlock;
        for (size_t o = 0; o < Fmt::kRpBlock; o += 64) prefetch_t0(blk + kAheadRp + o);
#pragma GCC unroll 2
        for (int h = 0; h < 2; ++h) {
          Fmt::scales_rp(blk, h, hdr[h]);
          groups<C>(A, b, blk, h, hdr[h], acc[h], std::make_integer_sequence<int, (C + 3) / 4>{});
        }
      }
      __m256 a[2][C];
#pragma GCC unroll 16
      for (int c = 0; c < C; ++c) a[0][c] = _mm256_load_ps(acc[0][c]), a[1][c] = _mm256_load_ps(acc[1][c]);
      store_panel<C>(Y + g, ldy, int(r1 - g < 16 ? r1 - g : 16), a);
    }
  }

  // Large n: super-blocks [kb0, kb1) of rows 8h.. of the panel at pan, in
  // pack()'s format (Fmt::quants_rp, then the decoded header); the same
  // blocks of the next chunk are fetched meanwhile.
  static void pack_rp(const uint8_t* pan, int h, int64_t nb, int64_t kb0, int64_t kb1, uint8_t* out) {
    for (int64_t b = kb0; b < kb1; ++b) {
      const uint8_t* blk = pan + size_t(b) * Fmt::kRpBlock;
      uint8_t* o = out + (b - kb0) * Fmt::kPanelBytes;
      Fmt::quants_rp(blk, h, o);
      Fmt::scales_rp(blk, h, o + Fmt::kQuantBytes);
      if (h == 0) prefetch_next_chunk(pan, Fmt::kRpBlock, nb, b, kb0, kb1);
    }
  }

  template <int C, int... G>
  __attribute__((always_inline)) static inline void groups(const ActsRef& A, int64_t b, const uint8_t* blk, int h,
                                                           const uint8_t* o, float (*acc)[8],
                                                           std::integer_sequence<int, G...>) {
    (Fmt::template rp_group<4 * G, (C - 4 * G < 4 ? C - 4 * G : 4)>(A, b, blk, h, o, acc), ...);
  }
};

template <bool kFive>
struct K45 : KPanel<K45<kFive>> {
  static constexpr int64_t kElems = 256;
  // Packed: the quants, then the decoded header at kQuantBytes: sub-block
  // scales (int32) at kSc, mins duplicated in both int16 halves at kM2, d
  // and dmin (floats) at kD, kDmin.
  static constexpr size_t kQuantBytes = 2048, kSc = 0, kM2 = 256, kD = 512, kDmin = 544;
  static constexpr size_t kPanelBytes = kQuantBytes + kDmin + 32;
  static constexpr int kMaxC = 4;
  static constexpr int64_t kChunkSmall = 2, kChunkLarge = 8;
  static constexpr size_t kBlockBytes = kFive ? sizeof(BlockQ5_K) : sizeof(BlockQ4_K);
  static constexpr size_t kQs = kFive ? 48 : 16;

  static void pack(const WeightsRef& W, const PanelRows& pr, int64_t kb0, int64_t kb1, uint8_t* out) {
    const int64_t nbk = W.cols / 256;
    const int64_t pf1 = kb1 + (kb1 - kb0) < nbk ? kb1 + (kb1 - kb0) : nbk;
    prefetch_rows(pr, size_t(kb1) * kBlockBytes, size_t(pf1) * kBlockBytes);
    const __m256i m4 = _mm256_set1_epi8(0x0F);
    for (int64_t b = kb0; b < kb1; ++b) {
      const size_t bo = size_t(b) * kBlockBytes;
      uint8_t* o = out + (b - kb0) * kPanelBytes;
      const uint8_t* q[8];
      __m256i th[8];
      if constexpr (kFive) {
        #pragma GCC unroll 16
        for (int r = 0; r < 8; ++r) q[r] = pr.p[r] + bo + 16;
        transpose_8x32(q, th);
      }
      #pragma GCC unroll 16
      for (int c = 0; c < 4; ++c) {
        #pragma GCC unroll 16
        for (int r = 0; r < 8; ++r) q[r] = pr.p[r] + bo + kQs + 32 * c;
        __m256i t[8];
        transpose_8x32(q, t);
        #pragma GCC unroll 16
        for (int j = 0; j < 8; ++j) {
          __m256i lo = _mm256_and_si256(t[j], m4);
          __m256i hi = _mm256_and_si256(_mm256_srli_epi16(t[j], 4), m4);
          if constexpr (kFive) {
            lo = or_bit4(lo, th[j], 2 * c);
            hi = or_bit4(hi, th[j], 2 * c + 1);
          }
          _mm256_store_si256(reinterpret_cast<__m256i*>(o + (16 * c + j) * 32), lo);
          _mm256_store_si256(reinterpret_cast<__m256i*>(o + (16 * c + 8 + j) * 32), hi);
        }
      }
      store_scales(o + kQuantBytes, gather_u32(pr, bo), gather_u32(pr, bo + 4), gather_u32(pr, bo + 8), gather_u32(pr, bo + 12));
    }
  }

  // The 8 rows' header words (h0 = d | dmin << 16, s0..s2 = the 12 scale
  // bytes), decoded to o as pack() stores them at kQuantBytes.
  static void store_scales(uint8_t* o, __m256i h0, __m256i s0, __m256i s1, __m256i s2) {
    const __m256i m63 = _mm256_set1_epi32(63), m15 = _mm256_set1_epi32(15), m3 = _mm256_set1_epi32(3);
    #pragma GCC unroll 16
    for (int j = 0; j < 8; ++j) {
      __m256i sc, mn;
      if (j < 4) {
        sc = _mm256_and_si256(_mm256_srli_epi32(s0, 8 * j), m63);
        mn = _mm256_and_si256(_mm256_srli_epi32(s1, 8 * j), m63);
      } else {
        const int jj = 8 * (j - 4);
        sc = _mm256_or_si256(_mm256_and_si256(_mm256_srli_epi32(s2, jj), m15),
                             _mm256_slli_epi32(_mm256_and_si256(_mm256_srli_epi32(s0, jj + 6), m3), 4));
        mn = _mm256_or_si256(_mm256_and_si256(_mm256_srli_epi32(s2, jj + 4), m15),
                             _mm256_slli_epi32(_mm256_and_si256(_mm256_srli_epi32(s1, jj + 6), m3), 4));
      }
      _mm256_store_si256(reinterpret_cast<__m256i*>(o + kSc + 32 * j), sc);
      _mm256_store_si256(reinterpret_cast<__m256i*>(o + kM2 + 32 * j), _mm256_or_si256(mn, _mm256_slli_epi32(mn, 16)));
    }
    _mm256_store_ps(reinterpret_cast<float*>(o + kD), u16lo_to_f32(h0));
    _mm256_store_ps(reinterpret_cast<float*>(o + kDmin), u16lo_to_f32(_mm256_srli_epi32(h0, 16)));
  }

  // ---- The panel layout (ops::repack_panels) ----
  // Per 16-row panel and super-block: the quants as [4 pairs c][8 steps j]
  // 64-byte vectors (lane r = quant bytes 32c+4j.. of row r: sub-block 2c in
  // the low nibbles, 2c+1 in the high), Q5_K's high bits as [8 j] vectors at
  // kRpQh, then the header words as [4][16 rows] int32 (kernels/panel_layout.h).
  static constexpr size_t kRpQh = panel::kKQh, kRpBlock = kFive ? panel::kQ5kBlock : panel::kQ4kBlock,
                          kRpHeader = kRpBlock - 256;
  // Fused up to 9 tokens: streaming 14336x4096 from memory with 2 threads,
  // 1.15x faster than the packed path at 9 tokens, 1.1-1.2x slower at 12
  // and 16 (each group of 4 unpacks the quants again).
  static constexpr int kFusedRpMaxC = 9;

  // Step j of sub-block 2c+hh, rows 8h..8h+7, as u8 quants.
  __attribute__((always_inline)) static inline __m256i quant_rp(const uint8_t* blk, int h, int c, int hh, int j) {
    const __m256i t = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(blk + (8 * c + j) * 64 + 32 * h));
    const __m256i q = _mm256_and_si256(hh ? _mm256_srli_epi16(t, 4) : t, _mm256_set1_epi8(0x0F));
    if constexpr (kFive)
      return or_bit4(q, _mm256_loadu_si256(reinterpret_cast<const __m256i*>(blk + kRpQh + 64 * j + 32 * h)), 2 * c + hh);
    return q;
  }

  // Rows 8h..8h+7 of a panel super-block's header, decoded to o (store_scales).
  static void scales_rp(const uint8_t* blk, int h, uint8_t* o) {
    const int32_t* w = reinterpret_cast<const int32_t*>(blk + kRpHeader) + 8 * h;
    auto word = [&](int i) { return _mm256_loadu_si256(reinterpret_cast<const __m256i*>(w + 16 * i)); };
    store_scales(o, word(0), word(1), word(2), word(3));
  }

  // Tokens C0..C0+CC-1 of rows 8h.. of a panel super-block, kernel()'s
  // arithmetic, with its header decoded at o (store_scales).
  template <int C0, int CC>
  __attribute__((always_inline)) static inline void rp_group(const ActsRef& A, int64_t b, const uint8_t* blk, int h,
                                                             const uint8_t* o, float (*acc)[8]) {
    constexpr int S = kFive ? 4 : 8;  // steps per partial sum (as kernel(): no 16-bit saturation)
    __m256i isum[CC];
#pragma GCC unroll 16
    for (int c = 0; c < CC; ++c) isum[c] = _mm256_setzero_si256();
#pragma GCC unroll 1
    for (int cp = 0; cp < 4; ++cp)
#pragma GCC unroll 2
      for (int hh = 0; hh < 2; ++hh) {
        const int j = 2 * cp + hh;
        const __m256i sc = _mm256_load_si256(reinterpret_cast<const __m256i*>(o + kSc + 32 * j));
        // P = Σ over the sub-block; sc·P summed in parts of S steps (exact in int32).
#pragma GCC unroll 2
        for (int s0 = 0; s0 < 8; s0 += S) {
          __m256i s16[CC];
#pragma GCC unroll 16
          for (int c = 0; c < CC; ++c) s16[c] = _mm256_setzero_si256();
#pragma GCC unroll 8
          for (int s = s0; s < s0 + S; ++s) {
            const __m256i w = quant_rp(blk, h, cp, hh, s);
#pragma GCC unroll 16
            for (int c = 0; c < CC; ++c) {
              const __m256i x = _mm256_set1_epi32(load_i32(A.qs + (C0 + c) * A.qs_stride + 256 * b + 32 * j + 4 * s));
              s16[c] = dot_acc(s16[c], w, x);
            }
          }
#pragma GCC unroll 16
          for (int c = 0; c < CC; ++c) isum[c] = _mm256_add_epi32(isum[c], _mm256_mullo_epi32(dot_i32(s16[c]), sc));
        }
      }
    const __m256 dv = _mm256_load_ps(reinterpret_cast<const float*>(o + kD));
    const __m256 dmv = _mm256_load_ps(reinterpret_cast<const float*>(o + kDmin));
#pragma GCC unroll 16
    for (int c = 0; c < CC; ++c) {
      const __m256i msum = bsum_dot(o + kM2, A.bsum + (C0 + c) * (A.cols / 16) + 16 * b);
      const __m256 da = _mm256_set1_ps(A.d[(C0 + c) * A.nblk + b]);
      __m256 a = _mm256_fmadd_ps(_mm256_cvtepi32_ps(isum[c]), _mm256_mul_ps(dv, da), _mm256_load_ps(acc[C0 + c]));
      _mm256_store_ps(acc[C0 + c], _mm256_fnmadd_ps(_mm256_cvtepi32_ps(msum), _mm256_mul_ps(dmv, da), a));
    }
  }

  // Rows 8h.. of a panel super-block's quants, as pack() stores them at o.
  static void quants_rp(const uint8_t* blk, int h, uint8_t* o) {
#pragma GCC unroll 1
    for (int c = 0; c < 4; ++c)
#pragma GCC unroll 8
      for (int j = 0; j < 8; ++j) {
        _mm256_store_si256(reinterpret_cast<__m256i*>(o + (16 * c + j) * 32), quant_rp(blk, h, c, 0, j));
        _mm256_store_si256(reinterpret_cast<__m256i*>(o + (16 * c + 8 + j) * 32), quant_rp(blk, h, c, 1, j));
      }
  }

  template <int C>
  static void kernel(const TileArgs& t) {
    constexpr int S = kFive ? 4 : 8;
    __m256 acc[C];
    load_acc<C>(t, acc);
    for (int64_t b = 0; b < t.nb; ++b) {
      const uint8_t* blk = t.pk + b * kPanelBytes;
      __m256i isum[C];
      #pragma GCC unroll 16
      for (int c = 0; c < C; ++c) isum[c] = _mm256_setzero_si256();
      #pragma GCC unroll 16
      for (int j = 0; j < 8; ++j) {
        __m256i P[C];
        dot_steps<S, C>(blk + 256 * j, 8, t.aq + 256 * b + 32 * j, t.aq_stride, P);
        const __m256i sc = _mm256_load_si256(reinterpret_cast<const __m256i*>(blk + kQuantBytes + kSc + 32 * j));
        #pragma GCC unroll 16
        for (int c = 0; c < C; ++c) isum[c] = _mm256_add_epi32(isum[c], _mm256_mullo_epi32(P[c], sc));
      }
      const __m256 dv = _mm256_load_ps(reinterpret_cast<const float*>(blk + kQuantBytes + kD));
      const __m256 dmv = _mm256_load_ps(reinterpret_cast<const float*>(blk + kQuantBytes + kDmin));
      #pragma GCC unroll 16
      for (int c = 0; c < C; ++c) {
        const __m256i msum = bsum_dot(blk + kQuantBytes + kM2, t.ab + c * t.ab_stride + 16 * b);
        const __m256 da = _mm256_set1_ps(t.ad[c * t.a_blk_stride + b]);
        acc[c] = _mm256_fmadd_ps(_mm256_cvtepi32_ps(isum[c]), _mm256_mul_ps(dv, da), acc[c]);
        acc[c] = _mm256_fnmadd_ps(_mm256_cvtepi32_ps(msum), _mm256_mul_ps(dmv, da), acc[c]);
      }
    }
    store_acc<C>(t, acc);
  }
};

struct Q6K : KPanel<Q6K> {
  static constexpr int64_t kElems = 256;
  // Packed: the quants, then the decoded header at kQuantBytes: scales
  // (int32) at kSc, scale pairs (int16) at kPairs, d (floats) at kD.
  static constexpr size_t kQuantBytes = 2048, kSc = 0, kPairs = 512, kD = 768;
  static constexpr size_t kPanelBytes = kQuantBytes + kD + 32;
  static constexpr int kMaxC = 4;
  static constexpr int64_t kChunkSmall = 2, kChunkLarge = 8;
  static constexpr size_t kBlockBytes = sizeof(BlockQ6_K);

  static void pack(const WeightsRef& W, const PanelRows& pr, int64_t kb0, int64_t kb1, uint8_t* out) {
    const int64_t nbk = W.cols / 256;
    const int64_t pf1 = kb1 + (kb1 - kb0) < nbk ? kb1 + (kb1 - kb0) : nbk;
    prefetch_rows(pr, size_t(kb1) * kBlockBytes, size_t(pf1) * kBlockBytes);
    const __m256i m0f = _mm256_set1_epi8(0x0F), m30 = _mm256_set1_epi8(0x30);
    for (int64_t b = kb0; b < kb1; ++b) {
      const size_t bo = size_t(b) * kBlockBytes;
      uint8_t* o = out + (b - kb0) * kPanelBytes;
      const uint8_t* q[8];
      #pragma GCC unroll 16
      for (int h = 0; h < 2; ++h) {
        __m256i tl0[8], tl1[8], th[8];
        #pragma GCC unroll 16
        for (int r = 0; r < 8; ++r) q[r] = pr.p[r] + bo + 64 * h;
        transpose_8x32(q, tl0);
        #pragma GCC unroll 16
        for (int r = 0; r < 8; ++r) q[r] = pr.p[r] + bo + 64 * h + 32;
        transpose_8x32(q, tl1);
        #pragma GCC unroll 16
        for (int r = 0; r < 8; ++r) q[r] = pr.p[r] + bo + 128 + 32 * h;
        transpose_8x32(q, th);
        #pragma GCC unroll 16
        for (int k = 0; k < 4; ++k) {
          const __m256i* src = (k & 1) ? tl1 : tl0;
          #pragma GCC unroll 16
          for (int j = 0; j < 8; ++j) {
            const __m256i lo = (k >> 1) ? _mm256_srli_epi16(src[j], 4) : src[j];
            const __m256i hb = k < 3 ? _mm256_slli_epi16(th[j], 4 - 2 * k) : _mm256_srli_epi16(th[j], 2);
            const __m256i v = _mm256_or_si256(_mm256_and_si256(lo, m0f), _mm256_and_si256(hb, m30));
            _mm256_store_si256(reinterpret_cast<__m256i*>(o + ((4 * h + k) * 8 + j) * 32), v);
          }
        }
      }
      const __m256i w[5] = {gather_u32(pr, bo + 192), gather_u32(pr, bo + 196), gather_u32(pr, bo + 200),
                            gather_u32(pr, bo + 204), gather_u32(pr, bo + 206)};
      store_scales(o + kQuantBytes, w);
    }
  }

  // The 8 rows' header words (w[0..3] = the 16 int8 scales, w[4] = bytes
  // 206..209, d in its high half), decoded to o as pack() stores them at
  // kQuantBytes (the scale pairs are for the -32 offset term).
  static void store_scales(uint8_t* o, const __m256i* w) {
    __m256i sc[16];
    #pragma GCC unroll 16
    for (int g = 0; g < 4; ++g)
      #pragma GCC unroll 16
      for (int u = 0; u < 4; ++u) sc[4 * g + u] = _mm256_srai_epi32(_mm256_slli_epi32(w[g], 24 - 8 * u), 24);
    #pragma GCC unroll 16
    for (int s = 0; s < 16; ++s) _mm256_store_si256(reinterpret_cast<__m256i*>(o + kSc + 32 * s), sc[s]);
    const __m256i lo16 = _mm256_set1_epi32(0xFFFF);
    #pragma GCC unroll 16
    for (int u = 0; u < 8; ++u)
      _mm256_store_si256(reinterpret_cast<__m256i*>(o + kPairs + 32 * u),
                         _mm256_or_si256(_mm256_and_si256(sc[2 * u], lo16), _mm256_slli_epi32(sc[2 * u + 1], 16)));
    _mm256_store_ps(reinterpret_cast<float*>(o + kD), u16lo_to_f32(_mm256_srli_epi32(w[4], 16)));
  }

  // ---- The panel layout (ops::repack_panels) ----
  // Per 16-row panel and super-block, for each half h of the 256 values: the
  // transposes of ql bytes 64h.., 64h+32.. and qh bytes 128+32h.. ([2][3][8]
  // 64-byte vectors, lane r = 4 bytes of row r), then the header words
  // (bytes 192, 196, 200, 204, 206) as [5][16 rows] int32 (panel_layout.h).
  static constexpr size_t kRpBlock = panel::kQ6kBlock, kRpHeader = panel::kQ6kHeader;
  // Fused up to 12 tokens: streaming 14336x4096 from memory with 2 threads,
  // 1.1-1.25x faster than the packed path at 9-12 tokens, 1.1-1.2x slower at 16.
  static constexpr int kFusedRpMaxC = 12;

  // Step j of group k (values 32k.. of half h) as u8 0..63, rows 8R..8R+7:
  // the value pack() stores.
  __attribute__((always_inline)) static inline __m256i quant_rp(const uint8_t* blk, int R, int h, int k, int j) {
    const __m256i lq = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(blk + (24 * h + 8 * (k & 1) + j) * 64 + 32 * R));
    const __m256i hq = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(blk + (24 * h + 16 + j) * 64 + 32 * R));
    const __m256i lo = (k >> 1) ? _mm256_srli_epi16(lq, 4) : lq;
    const __m256i hb = k < 3 ? _mm256_slli_epi16(hq, 4 - 2 * k) : _mm256_srli_epi16(hq, 2);
    return _mm256_or_si256(_mm256_and_si256(lo, _mm256_set1_epi8(0x0F)), _mm256_and_si256(hb, _mm256_set1_epi8(0x30)));
  }

  static void scales_rp(const uint8_t* blk, int R, uint8_t* o) {
    const int32_t* hw = reinterpret_cast<const int32_t*>(blk + kRpHeader) + 8 * R;
    __m256i w[5];
#pragma GCC unroll 5
    for (int i = 0; i < 5; ++i) w[i] = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(hw + 16 * i));
    store_scales(o, w);
  }

  // Tokens C0..C0+CC-1 of rows 8R.. of a panel super-block, kernel()'s
  // arithmetic, with its header decoded at o (store_scales).
  template <int C0, int CC>
  __attribute__((always_inline)) static inline void rp_group(const ActsRef& A, int64_t b, const uint8_t* blk, int R,
                                                             const uint8_t* o, float (*acc)[8]) {
    __m256i isum[CC];
#pragma GCC unroll 16
    for (int c = 0; c < CC; ++c) isum[c] = _mm256_setzero_si256();
#pragma GCC unroll 1
    for (int hk = 0; hk < 8; ++hk)
#pragma GCC unroll 2
      for (int u = 0; u < 2; ++u) {  // 16-value sub-block s16 = 2 hk + u: steps 4u..4u+3 of group hk
        const int s16 = 2 * hk + u;
        __m256i P[CC];
#pragma GCC unroll 16
        for (int c = 0; c < CC; ++c) P[c] = _mm256_setzero_si256();
#pragma GCC unroll 2
        for (int s0 = 0; s0 < 4; s0 += 2) {  // 2 steps per partial sum (no 16-bit saturation)
          __m256i s16v[CC];
#pragma GCC unroll 16
          for (int c = 0; c < CC; ++c) s16v[c] = _mm256_setzero_si256();
#pragma GCC unroll 2
          for (int s = s0; s < s0 + 2; ++s) {
            const __m256i w = quant_rp(blk, R, hk / 4, hk % 4, 4 * u + s);
#pragma GCC unroll 16
            for (int c = 0; c < CC; ++c) {
              const __m256i x = _mm256_set1_epi32(load_i32(A.qs + (C0 + c) * A.qs_stride + 256 * b + 16 * s16 + 4 * s));
              s16v[c] = dot_acc(s16v[c], w, x);
            }
          }
#pragma GCC unroll 16
          for (int c = 0; c < CC; ++c) P[c] = _mm256_add_epi32(P[c], dot_i32(s16v[c]));
        }
        const __m256i sc = _mm256_load_si256(reinterpret_cast<const __m256i*>(o + kSc + 32 * s16));
#pragma GCC unroll 16
        for (int c = 0; c < CC; ++c) isum[c] = _mm256_add_epi32(isum[c], _mm256_mullo_epi32(P[c], sc));
      }
    const __m256 dv = _mm256_load_ps(reinterpret_cast<const float*>(o + kD));
#pragma GCC unroll 16
    for (int c = 0; c < CC; ++c) {
      const __m256i corr = bsum_dot(o + kPairs, A.bsum + (C0 + c) * (A.cols / 16) + 16 * b);
      const __m256i is = _mm256_sub_epi32(isum[c], _mm256_slli_epi32(corr, 5));
      const __m256 da = _mm256_set1_ps(A.d[(C0 + c) * A.nblk + b]);
      _mm256_store_ps(acc[C0 + c], _mm256_fmadd_ps(_mm256_cvtepi32_ps(is), _mm256_mul_ps(dv, da), _mm256_load_ps(acc[C0 + c])));
    }
  }

  // Rows 8R.. of a panel super-block's quants, as pack() stores them at o.
  static void quants_rp(const uint8_t* blk, int R, uint8_t* o) {
#pragma GCC unroll 1
    for (int hk = 0; hk < 8; ++hk)
#pragma GCC unroll 8
      for (int j = 0; j < 8; ++j)
        _mm256_store_si256(reinterpret_cast<__m256i*>(o + (8 * hk + j) * 32), quant_rp(blk, R, hk / 4, hk % 4, j));
  }

  template <int C>
  static void kernel(const TileArgs& t) {
    __m256 acc[C];
    load_acc<C>(t, acc);
    for (int64_t b = 0; b < t.nb; ++b) {
      const uint8_t* blk = t.pk + b * kPanelBytes;
      __m256i isum[C];
      #pragma GCC unroll 16
      for (int c = 0; c < C; ++c) isum[c] = _mm256_setzero_si256();
      #pragma GCC unroll 16
      for (int s16 = 0; s16 < 16; ++s16) {
        __m256i P[C];
        dot_steps<2, C>(blk + 128 * s16, 4, t.aq + 256 * b + 16 * s16, t.aq_stride, P);
        const __m256i sc = _mm256_load_si256(reinterpret_cast<const __m256i*>(blk + kQuantBytes + kSc + 32 * s16));
        #pragma GCC unroll 16
        for (int c = 0; c < C; ++c) isum[c] = _mm256_add_epi32(isum[c], _mm256_mullo_epi32(P[c], sc));
      }
      const __m256 dv = _mm256_load_ps(reinterpret_cast<const float*>(blk + kQuantBytes + kD));
      #pragma GCC unroll 16
      for (int c = 0; c < C; ++c) {
        const __m256i corr = bsum_dot(blk + kQuantBytes + kPairs, t.ab + c * t.ab_stride + 16 * b);
        const __m256i is = _mm256_sub_epi32(isum[c], _mm256_slli_epi32(corr, 5));
        const __m256 da = _mm256_set1_ps(t.ad[c * t.a_blk_stride + b]);
        acc[c] = _mm256_fmadd_ps(_mm256_cvtepi32_ps(is), _mm256_mul_ps(dv, da), acc[c]);
      }
    }
    store_acc<C>(t, acc);
  }
};

}  // namespace

void qmatmul_kquant(const WeightsRef& W, const ActsRef& A, int64_t r0, int64_t r1, float* Y, int64_t ldy) {
  if (W.panel16) {
    if (W.dtype == DType::Q4_K) return qmatmul_panels<K45<false>>(W, A, r0, r1, Y, ldy);
    if (W.dtype == DType::Q5_K) return qmatmul_panels<K45<true>>(W, A, r0, r1, Y, ldy);
    if (W.dtype == DType::Q6_K) return qmatmul_panels<Q6K>(W, A, r0, r1, Y, ldy);
    return;
  }
  switch (W.dtype) {
    case DType::Q4_K: return qmatmul<K45<false>>(W, A, r0, r1, Y, ldy);
    case DType::Q5_K: return qmatmul<K45<true>>(W, A, r0, r1, Y, ldy);
    case DType::Q6_K: return qmatmul<Q6K>(W, A, r0, r1, Y, ldy);
    default: return;
  }
}

}  // namespace ms::cpu::MS_AVX2_NS
