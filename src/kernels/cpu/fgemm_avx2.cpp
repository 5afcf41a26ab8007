// fgemm_avx2.cpp — AVX2/FMA matmul for float weights (F32, F16, BF16): weights
// widened exactly to f32, f32 FMAs (see fgemm_avx512.cpp).
//
// Bit-identical to the AVX-512 kernel: each dot product is 16 partial sums
// (lane l: the terms k ≡ l mod 16, in order, a short tail as zeros) reduced
// by the tree of _mm512_reduce_add_ps (l + (l+8), then 4, 2, 1 apart). Here
// a 16-lane sum is two 8-lane accumulators, "lo" (l < 8) and "hi"
// (sum16_avx2.h). Register tile: 2 weight rows x 3 activation rows.
#include <immintrin.h>

#include <cstdint>

#include "kernels/cpu/cpu_kernels.h"
#include "kernels/cpu/sum16_avx2.h"

namespace ms::cpu::avx2 {
namespace {

template <DType T>
inline __m256 load_w(const uint8_t* row, int64_t k) {
  if constexpr (T == DType::F32) {
    return _mm256_loadu_ps(reinterpret_cast<const float*>(row) + k);
  } else if constexpr (T == DType::F16) {
    return _mm256_cvtph_ps(_mm_loadu_si128(reinterpret_cast<const __m128i*>(reinterpret_cast<const uint16_t*>(row) + k)));
  } else {
    const __m128i h = _mm_loadu_si128(reinterpret_cast<const __m128i*>(reinterpret_cast<const uint16_t*>(row) + k));
    return _mm256_castsi256_ps(_mm256_slli_epi32(_mm256_cvtepu16_epi32(h), 16));
  }
}

inline float widen_one(DType t, const uint8_t* row, int64_t k) {
  if (t == DType::F32) return reinterpret_cast<const float*>(row)[k];
  const uint16_t h = reinterpret_cast<const uint16_t*>(row)[k];
  if (t == DType::F16) return _cvtsh_ss(h);
  const uint32_t u = uint32_t(h) << 16;
  float f;
  __builtin_memcpy(&f, &u, 4);
  return f;
}

// For h = 0, 1 (lo, hi): acc[h][i][c] += row wr[i]'s columns k+8h .. k+8h+7
// (widened) * xk[c][8h .. 8h+7], lane by lane.
template <DType T, int RT, int CT>
inline void step16(const uint8_t* const* wr, int64_t k, const float* const* xk, __m256 (&acc)[2][RT][CT]) {
  #pragma GCC unroll 2
  for (int h = 0; h < 2; ++h) {
    __m256 w[RT];
    #pragma GCC unroll 16
    for (int i = 0; i < RT; ++i) w[i] = load_w<T>(wr[i], k + 8 * h);
    #pragma GCC unroll 16
    for (int c = 0; c < CT; ++c) {
      const __m256 x = _mm256_loadu_ps(xk[c] + 8 * h);
      #pragma GCC unroll 16
      for (int i = 0; i < RT; ++i) acc[h][i][c] = _mm256_fmadd_ps(w[i], x, acc[h][i][c]);
    }
  }
}

template <DType T, int RT, int CT>
void tile(const WeightsRef& W, int64_t r, const float* X, int64_t ldx, float* Y, int64_t ldy) {
  const int64_t K = W.cols;
  const uint8_t* wr[RT];
  #pragma GCC unroll 16
  for (int i = 0; i < RT; ++i) wr[i] = W.data + size_t(r + i) * W.row_stride;
  __m256 acc[2][RT][CT];
  #pragma GCC unroll 2
  for (int h = 0; h < 2; ++h)
    #pragma GCC unroll 16
    for (int i = 0; i < RT; ++i)
      #pragma GCC unroll 16
      for (int c = 0; c < CT; ++c) acc[h][i][c] = _mm256_setzero_ps();
  int64_t k = 0;
  const float* xk[CT];
  for (; k + 16 <= K; k += 16) {
    #pragma GCC unroll 16
    for (int c = 0; c < CT; ++c) xk[c] = X + c * ldx + k;
    step16<T, RT, CT>(wr, k, xk, acc);
  }
  if (k < K) {
    // The tail as one more step over zero-padded copies (0 * 0 adds nothing).
    alignas(32) float wt[RT][16] = {}, xt[CT][16] = {};
    const uint8_t* wp[RT];
    for (int i = 0; i < RT; ++i) {
      for (int64_t kk = k; kk < K; ++kk) wt[i][kk - k] = widen_one(T, wr[i], kk);
      wp[i] = reinterpret_cast<const uint8_t*>(wt[i]);
    }
    for (int c = 0; c < CT; ++c) {
      for (int64_t kk = k; kk < K; ++kk) xt[c][kk - k] = X[c * ldx + kk];
      xk[c] = xt[c];
    }
    step16<DType::F32, RT, CT>(wp, 0, xk, acc);
  }
  #pragma GCC unroll 16
  for (int i = 0; i < RT; ++i)
    #pragma GCC unroll 16
    for (int c = 0; c < CT; ++c) Y[c * ldy + r + i] = hsum16(acc[0][i][c], acc[1][i][c]);
}

template <DType T, int RT>
void row_tile(const WeightsRef& W, int64_t r, const float* X, int64_t ldx, int64_t n, float* Y, int64_t ldy) {
  int64_t c = 0;
  for (; c + 3 <= n; c += 3) tile<T, RT, 3>(W, r, X + c * ldx, ldx, Y + c * ldy, ldy);
  switch (n - c) {
    case 2: tile<T, RT, 2>(W, r, X + c * ldx, ldx, Y + c * ldy, ldy); break;
    case 1: tile<T, RT, 1>(W, r, X + c * ldx, ldx, Y + c * ldy, ldy); break;
    default: break;
  }
}

template <DType T>
void matmul_typed(const WeightsRef& W, const float* X, int64_t ldx, int64_t n, int64_t r0, int64_t r1, float* Y,
                  int64_t ldy) {
  constexpr int64_t kColBlock = 48;
  for (int64_t c0 = 0; c0 < n; c0 += kColBlock) {
    const int64_t nc = n - c0 < kColBlock ? n - c0 : kColBlock;
    int64_t r = r0;
    for (; r + 2 <= r1; r += 2) row_tile<T, 2>(W, r, X + c0 * ldx, ldx, nc, Y + c0 * ldy, ldy);
    for (; r < r1; ++r) row_tile<T, 1>(W, r, X + c0 * ldx, ldx, nc, Y + c0 * ldy, ldy);
  }
}

}  // namespace

void matmul_f(const WeightsRef& W, const float* X, int64_t ldx, int64_t n, int64_t r0, int64_t r1, float* Y,
              int64_t ldy) {
  switch (W.dtype) {
    case DType::F32: return matmul_typed<DType::F32>(W, X, ldx, n, r0, r1, Y, ldy);
    case DType::F16: return matmul_typed<DType::F16>(W, X, ldx, n, r0, r1, Y, ldy);
    case DType::BF16: return matmul_typed<DType::BF16>(W, X, ldx, n, r0, r1, Y, ldy);
    default: return;
  }
}

}  // namespace ms::cpu::avx2
