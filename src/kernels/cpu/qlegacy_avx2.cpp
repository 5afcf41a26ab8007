// qlegacy_avx2.cpp — AVX2 matmul for the 32-element block formats with Q8_32
// activations (same packing idea and arithmetic as qlegacy_avx512.cpp).
//
// Packed panel block (8 rows x 32): u8 quant vectors (Q8_0: |w| and w, used
// with VPSIGNB; in the AVX-VNNI build w + 128, with the sums starting at
// -128·Σq as the AVX-512 kernels do), row scales, and row minima for Q4_1/Q5_1.
//
// Q8_0 and Q4_0 matrices in the panel layout (ops::repack_panels, the same
// bytes the AVX-512 kernels read) are used in place: each 64-byte vector of a
// 16-row panel block holds 4 bytes of every row, rows 0-7 in its low 32 bytes
// and rows 8-15 in its high 32, so each half is one 8-row vector here, with no
// transposes or gathers. Small n: fused_rp streams each panel once; large n:
// pack_rp unpacks chunks of each half into the packed format above.
#include <immintrin.h>

#include <cstdint>

#include "core/quant.h"
#include "kernels/cpu/pack_avx2.h"
#include "kernels/cpu/page_prefetch.h"
#include "kernels/panel_layout.h"

namespace ms::cpu::MS_AVX2_NS {
namespace {

// Bits 0..3 of each lane -> 0x10 in bytes 0..3 (the 5th bit of four Q5 quants).
inline __m256i q5_bits(__m256i idx) {
  // bit b of idx -> 0x10 << 8b
  const __m256i one = _mm256_set1_epi32(1);
  __m256i r = _mm256_setzero_si256();
  #pragma GCC unroll 16
  for (int b = 0; b < 4; ++b)
    r = _mm256_or_si256(r, _mm256_slli_epi32(_mm256_and_si256(_mm256_srli_epi32(idx, b), one), 8 * b + 4));
  return r;
}

inline void unpack_nibbles(const PanelRows& pr, size_t qs_off, bool has_qh, size_t qh_off, uint8_t* out) {
  const uint8_t* p[8];
  #pragma GCC unroll 16
  for (int r = 0; r < 8; ++r) p[r] = pr.p[r] + qs_off;
  __m256i t[4];
  transpose_8x16(p, t);
  const __m256i m4 = _mm256_set1_epi8(0x0F);
  __m256i v[8];
  #pragma GCC unroll 16
  for (int j = 0; j < 4; ++j) {
    v[j] = _mm256_and_si256(t[j], m4);
    v[j + 4] = _mm256_and_si256(_mm256_srli_epi16(t[j], 4), m4);
  }
  if (has_qh) {
    const __m256i qh = gather_u32(pr, qh_off);
    #pragma GCC unroll 16
    for (int j = 0; j < 8; ++j) v[j] = _mm256_or_si256(v[j], q5_bits(_mm256_srli_epi32(qh, 4 * j)));
  }
  #pragma GCC unroll 16
  for (int j = 0; j < 8; ++j) _mm256_store_si256(reinterpret_cast<__m256i*>(out + 32 * j), v[j]);
}

template <DType T>
struct Legacy {
  static constexpr int64_t kElems = 32;
  static constexpr bool kQ8 = T == DType::Q8_0;
  static constexpr bool kMin = T == DType::Q4_1 || T == DType::Q5_1;
  // Q8_0 without VNNI multiplies |w| by the activations with w's signs
  // (w + 128 would saturate VPMADDUBSW); with VPDPBUSD it takes w + 128.
  static constexpr bool kSign = kQ8 && !kVnni;
  static constexpr int kOffset = T == DType::Q4_0 ? 8 : T == DType::Q5_0 ? 16 : kQ8 && kVnni ? 128 : 0;
  // Steps per partial sum (dot_acc): as many as cannot saturate 16 bits
  // without VNNI, all 8 with it.
  static constexpr int kSteps16 = kVnni ? 8 : kQ8 ? 1 : (T == DType::Q4_0 || T == DType::Q4_1) ? 8 : 4;
  static constexpr size_t kQBytes = kQ8 ? 512 : 256;
  static constexpr size_t kPanelBytes = kQBytes + 32 + (kMin ? 32 : 0);
  static constexpr int kMaxC = 4;
  static constexpr int64_t kChunkSmall = 16, kChunkLarge = 64;
  static constexpr size_t kBlockBytes = T == DType::Q8_0   ? sizeof(BlockQ8_0)
                                        : T == DType::Q4_0 ? sizeof(BlockQ4_0)
                                        : T == DType::Q4_1 ? sizeof(BlockQ4_1)
                                        : T == DType::Q5_0 ? sizeof(BlockQ5_0)
                                                           : sizeof(BlockQ5_1);

  static void pack(const WeightsRef& W, const PanelRows& pr, int64_t kb0, int64_t kb1, uint8_t* out) {
    const int64_t nbk = W.cols / 32;
    const int64_t pf1 = kb1 + (kb1 - kb0) < nbk ? kb1 + (kb1 - kb0) : nbk;
    prefetch_rows(pr, size_t(kb1) * kBlockBytes, size_t(pf1) * kBlockBytes);
    for (int64_t b = kb0; b < kb1; ++b) {
      const size_t bo = size_t(b) * kBlockBytes;
      uint8_t* o = out + (b - kb0) * kPanelBytes;
      if constexpr (kQ8) {
        const uint8_t* q[8];
        #pragma GCC unroll 16
        for (int r = 0; r < 8; ++r) q[r] = pr.p[r] + bo + 2;
        __m256i v[8];
        transpose_8x32(q, v);
        #pragma GCC unroll 16
        for (int j = 0; j < 8; ++j) {
          if constexpr (kSign) {
            _mm256_store_si256(reinterpret_cast<__m256i*>(o + 32 * j), _mm256_abs_epi8(v[j]));
            _mm256_store_si256(reinterpret_cast<__m256i*>(o + 256 + 32 * j), v[j]);
          } else {
            _mm256_store_si256(reinterpret_cast<__m256i*>(o + 32 * j), _mm256_xor_si256(v[j], _mm256_set1_epi8(char(0x80))));
          }
        }
      } else if constexpr (T == DType::Q4_0) {
        unpack_nibbles(pr, bo + 2, false, 0, o);
      } else if constexpr (T == DType::Q4_1) {
        unpack_nibbles(pr, bo + 4, false, 0, o);
      } else if constexpr (T == DType::Q5_0) {
        unpack_nibbles(pr, bo + 6, true, bo + 2, o);
      } else {
        unpack_nibbles(pr, bo + 8, true, bo + 4, o);
      }
      _mm256_store_ps(reinterpret_cast<float*>(o + kQBytes), gather_f16(pr, bo));
      if constexpr (kMin) _mm256_store_ps(reinterpret_cast<float*>(o + kQBytes + 32), gather_f16(pr, bo + 2));
    }
  }

  template <int C>
  static void kernel(const TileArgs& t) {
    __m256 acc[C];
    load_acc<C>(t, acc);
    for (int64_t b = 0; b < t.nb; ++b) {
      const uint8_t* blk = t.pk + b * kPanelBytes;
      __m256i ai[C];
      #pragma GCC unroll 16
      for (int c = 0; c < C; ++c)
        ai[c] = kOffset ? _mm256_set1_epi32(-kOffset * t.as[c * t.a_blk_stride + b]) : _mm256_setzero_si256();
      #pragma GCC unroll 16
      for (int s0 = 0; s0 < 8; s0 += kSteps16) {
        __m256i s16[C];
        #pragma GCC unroll 16
        for (int c = 0; c < C; ++c) s16[c] = _mm256_setzero_si256();
        #pragma GCC unroll 16
        for (int s = s0; s < s0 + kSteps16; ++s) {
          const __m256i w = _mm256_load_si256(reinterpret_cast<const __m256i*>(blk + 32 * s));
          __m256i ws;
          if constexpr (kSign) ws = _mm256_load_si256(reinterpret_cast<const __m256i*>(blk + 256 + 32 * s));
          #pragma GCC unroll 16
          for (int c = 0; c < C; ++c) {
            __m256i x = _mm256_set1_epi32(load_i32(t.aq + c * t.aq_stride + 32 * b + 4 * s));
            if constexpr (kSign) x = _mm256_sign_epi8(x, ws);
            s16[c] = dot_acc(s16[c], w, x);
          }
        }
        #pragma GCC unroll 16
        for (int c = 0; c < C; ++c) ai[c] = _mm256_add_epi32(ai[c], dot_i32(s16[c]));
      }
      const __m256 dw = _mm256_load_ps(reinterpret_cast<const float*>(blk + kQBytes));
      #pragma GCC unroll 16
      for (int c = 0; c < C; ++c) {
        const __m256 da = _mm256_set1_ps(t.ad[c * t.a_blk_stride + b]);
        acc[c] = _mm256_fmadd_ps(_mm256_cvtepi32_ps(ai[c]), _mm256_mul_ps(dw, da), acc[c]);
      }
      if constexpr (kMin) {
        const __m256 mv = _mm256_load_ps(reinterpret_cast<const float*>(blk + kQBytes + 32));
        #pragma GCC unroll 16
        for (int c = 0; c < C; ++c) {
          const float s = t.ad[c * t.a_blk_stride + b] * float(t.as[c * t.a_blk_stride + b]);
          acc[c] = _mm256_fmadd_ps(mv, _mm256_set1_ps(s), acc[c]);
        }
      }
    }
    store_acc<C>(t, acc);
  }

  // ---- The panel layout (Q8_0 and Q4_0 only) ----
  static constexpr size_t kRpVec = kQ8 ? panel::kQ8_0Vec : panel::kQ4_0Vec, kRpBlock = kRpVec + 32;
  // Up to 16 tokens, in groups of at most 4 per block (a group's integer
  // sums and one step's weights fit the 16 registers); from memory with
  // 2 threads this ran 1.1-1.7x faster than the packed path at 5-16 tokens.
  static constexpr int kFusedRpMaxC = 16;
  // Prefetch distances in the panel stream: each line 4 KiB ahead into L1,
  // and each 4 KiB page touched 32 KiB ahead (the hardware prefetchers stop
  // at page boundaries), as the AVX-512 panel kernels do.
  static constexpr size_t kRpAhead = 4096, kRpPage = 32768;

  // Half h (rows 8h..8h+7) of the 8 weight vectors of one panel block, as
  // pack() stores them: u8 quants (Q8_0 with VNNI: the panel's w + 128), and
  // for Q8_0 without VNNI |w| in v and w in ws.
  __attribute__((always_inline)) static inline void half_rp(const uint8_t* vec, int h, __m256i* v, __m256i* ws) {
    if constexpr (kQ8 && !kSign) {
#pragma GCC unroll 8
      for (int j = 0; j < 8; ++j) v[j] = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(vec + 64 * j + 32 * h));
    } else if constexpr (kQ8) {
      const __m256i x80 = _mm256_set1_epi8(char(0x80));
#pragma GCC unroll 8
      for (int j = 0; j < 8; ++j) {
        ws[j] = _mm256_xor_si256(_mm256_loadu_si256(reinterpret_cast<const __m256i*>(vec + 64 * j + 32 * h)), x80);
        v[j] = _mm256_abs_epi8(ws[j]);
      }
    } else {
      const __m256i m4 = _mm256_set1_epi8(0x0F);
#pragma GCC unroll 4
      for (int j = 0; j < 4; ++j) {
        const __m256i q = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(vec + 64 * j + 32 * h));
        v[j] = _mm256_and_si256(q, m4);
        v[j + 4] = _mm256_and_si256(_mm256_srli_epi16(q, 4), m4);
      }
    }
  }
  static inline __m256 half_scales(const uint8_t* scl, int h) {
    return _mm256_cvtph_ps(_mm_loadu_si128(reinterpret_cast<const __m128i*>(scl + 16 * h)));
  }

  // Small n: one sequential pass over each panel; per block, both halves
  // with the arithmetic of kernel().
  template <int C>
  static void fused_rp(const WeightsRef& W, const ActsRef& A, int64_t r0, int64_t r1, float* Y, int64_t ldy) {
    const int64_t nb = W.cols / 32;
    const size_t panel_bytes = size_t(nb) * kRpBlock;
    const uint8_t* first = W.data + size_t(r0 / 16) * panel_bytes;
    for (size_t o = 0; o < kRpAhead; o += 64) prefetch_t0(first + o);
    for (int64_t g = r0; g < r1; g += 16) {
      const uint8_t* pan = W.data + size_t(g / 16) * panel_bytes;
      __m256 acc[2][C];
#pragma GCC unroll 16
      for (int c = 0; c < C; ++c) acc[0][c] = acc[1][c] = _mm256_setzero_ps();
      for (int64_t g0 = 0; g0 < nb; g0 += panel::kGroup) {
        const int64_t n = nb - g0 < panel::kGroup ? nb - g0 : panel::kGroup;
        const uint8_t* gv = pan + size_t(g0) * kRpBlock;  // the group's vectors, then its scales
        const uint8_t* gs = gv + size_t(n) * kRpVec;
        for (int64_t j = 0; j < n; ++j) {
          const int64_t b = g0 + j;
          prefetch_lines<false>(pan + size_t(b) * kRpBlock + kRpAhead, kRpBlock);
          prefetch_page_ahead(pan + size_t(b) * kRpBlock + kRpPage, kRpBlock);
          rp_groups<C>(gv + size_t(j) * kRpVec, gs + 32 * j, A, b, acc, std::make_integer_sequence<int, (C + 3) / 4>{});
        }
      }
      store_panel<C>(Y + g, ldy, int(r1 - g < 16 ? r1 - g : 16), acc);
    }
  }

  // Panel block b for all C tokens, group after group of 4.
  template <int C, int... G>
  __attribute__((always_inline)) static inline void rp_groups(const uint8_t* vec, const uint8_t* scl, const ActsRef& A,
                                                              int64_t b, __m256 (*acc)[C], std::integer_sequence<int, G...>) {
    (rp_block<C, 4 * G, (C - 4 * G < 4 ? C - 4 * G : 4)>(vec, scl, A, b, acc), ...);
  }

  // Panel block b for tokens C0..C0+CC-1, both halves at once (each
  // activation broadcast feeds both): the integers as in kernel() (Q4_0: all
  // 8 steps in one partial sum, which cannot saturate 16 bits: 8 x 2 x 15 x
  // 127 < 2^15), then the ref's fma per block. acc[h][c].
  template <int C, int C0, int CC>
  __attribute__((always_inline)) static inline void rp_block(const uint8_t* vec, const uint8_t* scl, const ActsRef& A,
                                                             int64_t b, __m256 (*acc)[C]) {
    __m256i ai[2][CC];
    if constexpr (kQ8 && !kSign) {  // VPDPBUSD on the panel's w + 128, from -128·Σq
#pragma GCC unroll 16
      for (int c = 0; c < CC; ++c) ai[0][c] = ai[1][c] = _mm256_set1_epi32(-kOffset * A.sum[(C0 + c) * A.nblk + b]);
#pragma GCC unroll 8
      for (int s = 0; s < 8; ++s) {
        __m256i w[2];
#pragma GCC unroll 2
        for (int h = 0; h < 2; ++h) w[h] = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(vec + 64 * s + 32 * h));
#pragma GCC unroll 16
        for (int c = 0; c < CC; ++c) {
          const __m256i x = _mm256_set1_epi32(load_i32(A.qs + (C0 + c) * A.qs_stride + 32 * b + 4 * s));
#pragma GCC unroll 2
          for (int h = 0; h < 2; ++h) ai[h][c] = dot_step(ai[h][c], w[h], x);
        }
      }
    } else if constexpr (kQ8) {
      const __m256i x80 = _mm256_set1_epi8(char(0x80));
#pragma GCC unroll 16
      for (int c = 0; c < CC; ++c) ai[0][c] = ai[1][c] = _mm256_setzero_si256();
#pragma GCC unroll 8
      for (int s = 0; s < 8; ++s) {
        __m256i w[2], aw[2];
#pragma GCC unroll 2
        for (int h = 0; h < 2; ++h) {
          w[h] = _mm256_xor_si256(_mm256_loadu_si256(reinterpret_cast<const __m256i*>(vec + 64 * s + 32 * h)), x80);
          aw[h] = _mm256_abs_epi8(w[h]);
        }
#pragma GCC unroll 16
        for (int c = 0; c < CC; ++c) {
          const __m256i x = _mm256_set1_epi32(load_i32(A.qs + (C0 + c) * A.qs_stride + 32 * b + 4 * s));
#pragma GCC unroll 2
          for (int h = 0; h < 2; ++h)
            ai[h][c] = dot_step(ai[h][c], aw[h], _mm256_sign_epi8(x, w[h]));
        }
      }
    } else {
      const __m256i m4 = _mm256_set1_epi8(0x0F);
      __m256i s16[2][CC];
#pragma GCC unroll 16
      for (int c = 0; c < CC; ++c) s16[0][c] = s16[1][c] = _mm256_setzero_si256();
#pragma GCC unroll 4
      for (int j = 0; j < 4; ++j) {  // vector j: elements 4j.. (low nibbles) and 16+4j.. (high)
        __m256i lo[2], hi[2];
#pragma GCC unroll 2
        for (int h = 0; h < 2; ++h) {
          const __m256i q = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(vec + 64 * j + 32 * h));
          lo[h] = _mm256_and_si256(q, m4);
          hi[h] = _mm256_and_si256(_mm256_srli_epi16(q, 4), m4);
        }
#pragma GCC unroll 16
        for (int c = 0; c < CC; ++c) {
          const int8_t* a = A.qs + (C0 + c) * A.qs_stride + 32 * b + 4 * j;
          const __m256i xl = _mm256_set1_epi32(load_i32(a)), xh = _mm256_set1_epi32(load_i32(a + 16));
#pragma GCC unroll 2
          for (int h = 0; h < 2; ++h)
            s16[h][c] = dot_acc(dot_acc(s16[h][c], lo[h], xl), hi[h], xh);
        }
      }
#pragma GCC unroll 16
      for (int c = 0; c < CC; ++c) {
        const __m256i start = _mm256_set1_epi32(-kOffset * A.sum[(C0 + c) * A.nblk + b]);
#pragma GCC unroll 2
        for (int h = 0; h < 2; ++h) ai[h][c] = _mm256_add_epi32(start, dot_i32(s16[h][c]));
      }
    }
#pragma GCC unroll 2
    for (int h = 0; h < 2; ++h) {
      const __m256 dw = half_scales(scl, h);
#pragma GCC unroll 16
      for (int c = 0; c < CC; ++c)
        acc[h][C0 + c] = _mm256_fmadd_ps(_mm256_cvtepi32_ps(ai[h][c]),
                                         _mm256_mul_ps(dw, _mm256_set1_ps(A.d[(C0 + c) * A.nblk + b])), acc[h][C0 + c]);
    }
  }

  // Large n: blocks [kb0, kb1) of half h of the panel at pan, in pack()'s
  // format; the same blocks of the next chunk are fetched meanwhile.
  static void pack_rp(const uint8_t* pan, int h, int64_t nb, int64_t kb0, int64_t kb1, uint8_t* out) {
    for (int64_t b = kb0; b < kb1; ++b) {
      uint8_t* o = out + (b - kb0) * kPanelBytes;
      __m256i v[8], ws[8];
      half_rp(pan + panel::vec_offset(kRpVec, b), h, v, ws);
#pragma GCC unroll 8
      for (int j = 0; j < 8; ++j) {
        _mm256_store_si256(reinterpret_cast<__m256i*>(o + 32 * j), v[j]);
        if constexpr (kSign) _mm256_store_si256(reinterpret_cast<__m256i*>(o + 256 + 32 * j), ws[j]);
      }
      _mm256_store_ps(reinterpret_cast<float*>(o + kQBytes), half_scales(pan + panel::scale_offset(kRpVec, nb, b), h));
      if (h == 0) prefetch_next_chunk(pan, kRpBlock, nb, b, kb0, kb1);
    }
  }
};

}  // namespace

void qmatmul_legacy(const WeightsRef& W, const ActsRef& A, int64_t r0, int64_t r1, float* Y, int64_t ldy) {
  if (W.panel16) {
    if (W.dtype == DType::Q8_0) return qmatmul_panels<Legacy<DType::Q8_0>>(W, A, r0, r1, Y, ldy);
    if (W.dtype == DType::Q4_0) return qmatmul_panels<Legacy<DType::Q4_0>>(W, A, r0, r1, Y, ldy);
    return;
  }
  switch (W.dtype) {
    case DType::Q8_0: return qmatmul<Legacy<DType::Q8_0>>(W, A, r0, r1, Y, ldy);
    case DType::Q4_0: return qmatmul<Legacy<DType::Q4_0>>(W, A, r0, r1, Y, ldy);
    case DType::Q4_1: return qmatmul<Legacy<DType::Q4_1>>(W, A, r0, r1, Y, ldy);
    case DType::Q5_0: return qmatmul<Legacy<DType::Q5_0>>(W, A, r0, r1, Y, ldy);
    case DType::Q5_1: return qmatmul<Legacy<DType::Q5_1>>(W, A, r0, r1, Y, ldy);
    default: return;
  }
}

#ifdef MS_AVX2_VNNI
void qmatmul_kquant(const WeightsRef& W, const ActsRef& A, int64_t r0, int64_t r1, float* Y, int64_t ldy);

// Entry point of the AVX-VNNI build (acts_avx2.cpp's matmul_q for the plain one).
void matmul_q(const WeightsRef& W, const ActsRef& A, int64_t r0, int64_t r1, float* Y, int64_t ldy) {
  if (A.format == kActQ8_32)
    qmatmul_legacy(W, A, r0, r1, Y, ldy);
  else
    qmatmul_kquant(W, A, r0, r1, Y, ldy);
}
#endif

}  // namespace ms::cpu::MS_AVX2_NS
