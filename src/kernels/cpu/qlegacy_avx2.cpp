// qlegacy_avx2.cpp — AVX2 matmul for the 32-element block formats with Q8_32
// activations (same packing idea and arithmetic as qlegacy_avx512.cpp).
//
// Packed panel block (8 rows x 32): u8 quant vectors (Q8_0: |w| and w, used
// with VPSIGNB), row scales, and row minima for Q4_1/Q5_1.
#include <immintrin.h>

#include <cstdint>

#include "core/quant.h"
#include "kernels/cpu/pack_avx2.h"

namespace ms::cpu::avx2 {
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
  static constexpr int kOffset = T == DType::Q4_0 ? 8 : T == DType::Q5_0 ? 16 : 0;
  static constexpr int kSteps16 = kQ8 ? 1 : (T == DType::Q4_0 || T == DType::Q4_1) ? 8 : 4;  // steps summed in s16
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
          _mm256_store_si256(reinterpret_cast<__m256i*>(o + 32 * j), _mm256_abs_epi8(v[j]));
          _mm256_store_si256(reinterpret_cast<__m256i*>(o + 256 + 32 * j), v[j]);
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
    const __m256i ones = _mm256_set1_epi16(1);
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
          if constexpr (kQ8) ws = _mm256_load_si256(reinterpret_cast<const __m256i*>(blk + 256 + 32 * s));
          #pragma GCC unroll 16
          for (int c = 0; c < C; ++c) {
            __m256i x = _mm256_set1_epi32(load_i32(t.aq + c * t.aq_stride + 32 * b + 4 * s));
            if constexpr (kQ8) x = _mm256_sign_epi8(x, ws);
            const __m256i pr = _mm256_maddubs_epi16(w, x);
            s16[c] = _mm256_add_epi16(s16[c], pr);
          }
        }
        #pragma GCC unroll 16
        for (int c = 0; c < C; ++c) ai[c] = _mm256_add_epi32(ai[c], _mm256_madd_epi16(s16[c], ones));
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
};

}  // namespace

void qmatmul_legacy(const WeightsRef& W, const ActsRef& A, int64_t r0, int64_t r1, float* Y, int64_t ldy) {
  switch (W.dtype) {
    case DType::Q8_0: return qmatmul<Legacy<DType::Q8_0>>(W, A, r0, r1, Y, ldy);
    case DType::Q4_0: return qmatmul<Legacy<DType::Q4_0>>(W, A, r0, r1, Y, ldy);
    case DType::Q4_1: return qmatmul<Legacy<DType::Q4_1>>(W, A, r0, r1, Y, ldy);
    case DType::Q5_0: return qmatmul<Legacy<DType::Q5_0>>(W, A, r0, r1, Y, ldy);
    case DType::Q5_1: return qmatmul<Legacy<DType::Q5_1>>(W, A, r0, r1, Y, ldy);
    default: return;
  }
}

}  // namespace ms::cpu::avx2
