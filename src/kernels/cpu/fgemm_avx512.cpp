// fgemm_avx512.cpp — AVX-512 matmul for float weights (F32, F16, BF16).
//
// Weights are widened exactly to f32 on the fly (BF16: shift, F16: VCVTPH2PS)
// and multiplied with the f32 activations with FMAs in f32 — no rounding of
// activations to 16 bits — so results match the f32 reference to float
// rounding. Register tile: 4 weight rows x 4 activation rows, 16 columns per
// step, the 16 horizontal sums at the end in one transposing tree; activation
// rows are processed in blocks of 48 so the block stays in L2 while the weight
// rows stream. With 8 or more activation rows, 16-bit weight rows are widened
// once into an f32 buffer that every tile of the block reads.
#include <immintrin.h>

#include <algorithm>
#include <cstdint>
#include <vector>

#include "core/aligned.h"
#include "kernels/cpu/cpu_kernels.h"

namespace ms::cpu::avx512 {
namespace {

template <DType T>
inline __m512 load_w(const uint8_t* row, int64_t k, __mmask16 m) {
  if constexpr (T == DType::F32) {
    return _mm512_maskz_loadu_ps(m, reinterpret_cast<const float*>(row) + k);
  } else if constexpr (T == DType::F16) {
    return _mm512_cvtph_ps(_mm256_maskz_loadu_epi16(m, reinterpret_cast<const uint16_t*>(row) + k));
  } else {
    const __m256i h = _mm256_maskz_loadu_epi16(m, reinterpret_cast<const uint16_t*>(row) + k);
    return _mm512_castsi512_ps(_mm512_slli_epi32(_mm512_cvtepu16_epi32(h), 16));
  }
}

template <DType T>
inline __m512 load_w_full(const uint8_t* row, int64_t k) {
  if constexpr (T == DType::F32) {
    return _mm512_loadu_ps(reinterpret_cast<const float*>(row) + k);
  } else if constexpr (T == DType::F16) {
    return _mm512_cvtph_ps(_mm256_loadu_si256(reinterpret_cast<const __m256i*>(reinterpret_cast<const uint16_t*>(row) + k)));
  } else {
    const __m256i h = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(reinterpret_cast<const uint16_t*>(row) + k));
    return _mm512_castsi512_ps(_mm512_slli_epi32(_mm512_cvtepu16_epi32(h), 16));
  }
}

template <DType T, int RT, int CT>
void tile(const WeightsRef& W, int64_t r, const float* X, int64_t ldx, float* Y, int64_t ldy) {
  const int64_t K = W.cols;
  const uint8_t* wr[RT];
  #pragma GCC unroll 16
  for (int i = 0; i < RT; ++i) wr[i] = W.data + size_t(r + i) * W.row_stride;
  __m512 acc[RT][CT];
  #pragma GCC unroll 16
  for (int i = 0; i < RT; ++i)
    #pragma GCC unroll 16
    for (int c = 0; c < CT; ++c) acc[i][c] = _mm512_setzero_ps();
  int64_t k = 0;
  for (; k + 16 <= K; k += 16) {
    __m512 w[RT];
    #pragma GCC unroll 16
    for (int i = 0; i < RT; ++i) w[i] = load_w_full<T>(wr[i], k);
    #pragma GCC unroll 16
    for (int c = 0; c < CT; ++c) {
      const __m512 x = _mm512_loadu_ps(X + c * ldx + k);
      #pragma GCC unroll 16
      for (int i = 0; i < RT; ++i) acc[i][c] = _mm512_fmadd_ps(w[i], x, acc[i][c]);
    }
  }
  if (k < K) {
    const __mmask16 m = __mmask16((1u << (K - k)) - 1);
    __m512 w[RT];
    #pragma GCC unroll 16
    for (int i = 0; i < RT; ++i) w[i] = load_w<T>(wr[i], k, m);
    #pragma GCC unroll 16
    for (int c = 0; c < CT; ++c) {
      const __m512 x = _mm512_maskz_loadu_ps(m, X + c * ldx + k);
      #pragma GCC unroll 16
      for (int i = 0; i < RT; ++i) acc[i][c] = _mm512_fmadd_ps(w[i], x, acc[i][c]);
    }
  }
  if constexpr (RT == 4 && CT == 4) {
    // The 16 sums at once: lane 4c+i of `s` is acc[i][c] reduced by the same
    // tree as _mm512_reduce_add_ps (l+8, then 4, 2, 1 apart; lanes16.h), in
    // 45 shuffles and adds instead of 16 separate reductions.
    __m512 u[8], w[4];
    #pragma GCC unroll 8
    for (int p = 0; p < 8; ++p) {  // l + (l+8): [v(2p) 8 | v(2p+1) 8]
      const __m512 a = acc[(2 * p) / 4][(2 * p) % 4], b = acc[(2 * p + 1) / 4][(2 * p + 1) % 4];
      u[p] = _mm512_add_ps(_mm512_shuffle_f32x4(a, b, 0x44), _mm512_shuffle_f32x4(a, b, 0xEE));
    }
    #pragma GCC unroll 4
    for (int p = 0; p < 4; ++p)  // l + (l+4): [v(4p) 4 | v(4p+1) 4 | v(4p+2) 4 | v(4p+3) 4]
      w[p] = _mm512_add_ps(_mm512_shuffle_f32x4(u[2 * p], u[2 * p + 1], 0x88),
                           _mm512_shuffle_f32x4(u[2 * p], u[2 * p + 1], 0xDD));
    // l + (l+2) within each 128-bit lane, then l + (l+1).
    const __m512 t0 = _mm512_add_ps(_mm512_shuffle_ps(w[0], w[1], 0x44), _mm512_shuffle_ps(w[0], w[1], 0xEE));
    const __m512 t1 = _mm512_add_ps(_mm512_shuffle_ps(w[2], w[3], 0x44), _mm512_shuffle_ps(w[2], w[3], 0xEE));
    const __m512 s = _mm512_add_ps(_mm512_shuffle_ps(t0, t1, 0x88), _mm512_shuffle_ps(t0, t1, 0xDD));
    _mm_storeu_ps(Y + r, _mm512_castps512_ps128(s));
    _mm_storeu_ps(Y + ldy + r, _mm512_extractf32x4_ps(s, 1));
    _mm_storeu_ps(Y + 2 * ldy + r, _mm512_extractf32x4_ps(s, 2));
    _mm_storeu_ps(Y + 3 * ldy + r, _mm512_extractf32x4_ps(s, 3));
  } else {
    #pragma GCC unroll 16
    for (int i = 0; i < RT; ++i)
      #pragma GCC unroll 16
      for (int c = 0; c < CT; ++c) Y[c * ldy + r + i] = _mm512_reduce_add_ps(acc[i][c]);
  }
}

template <DType T, int RT>
void row_tile(const WeightsRef& W, int64_t r, const float* X, int64_t ldx, int64_t n, float* Y, int64_t ldy) {
  int64_t c = 0;
  for (; c + 4 <= n; c += 4) tile<T, RT, 4>(W, r, X + c * ldx, ldx, Y + c * ldy, ldy);
  switch (n - c) {
    case 3: tile<T, RT, 3>(W, r, X + c * ldx, ldx, Y + c * ldy, ldy); break;
    case 2: tile<T, RT, 2>(W, r, X + c * ldx, ldx, Y + c * ldy, ldy); break;
    case 1: tile<T, RT, 1>(W, r, X + c * ldx, ldx, Y + c * ldy, ldy); break;
    default: break;
  }
}

// Widens weight rows [r, r + count) exactly to f32 into `out` (count x K).
template <DType T>
void widen_rows(const WeightsRef& W, int64_t r, int64_t count, float* out) {
  for (int64_t i = 0; i < count; ++i, out += W.cols) {
    const uint8_t* row = W.data + size_t(r + i) * W.row_stride;
    int64_t k = 0;
    for (; k + 16 <= W.cols; k += 16) _mm512_storeu_ps(out + k, load_w_full<T>(row, k));
    if (k < W.cols) {
      const __mmask16 m = __mmask16((1u << (W.cols - k)) - 1);
      _mm512_mask_storeu_ps(out + k, m, load_w<T>(row, k, m));
    }
  }
}

// Short 16-bit rows (K <= kPanelMaxK) times many activation rows (an lm_head
// over a decode batch): a panel of up to kPanelBytes of weight rows is widened
// once, and each block of activation rows (kBlockBytes) is taken through the
// panel's 4-row tiles while both stay in L1. The activations come from L2 once
// per panel rather than once per 4 weight rows: measured on the bundled
// model's lm_head (32000 x 128) at 200 rows, the plain loop ran at 42% of the
// FMA peak against 54% at 64 rows, whose activations fit L1 (bench_kernels
// LmHead/*). Per output, the same tile, so the same bits.
constexpr int64_t kPanelMaxK = 512;
constexpr int64_t kPanelBytes = 16 << 10;
constexpr int64_t kBlockBytes = 24 << 10;

template <DType T>
void matmul_panels(const WeightsRef& W, const float* X, int64_t ldx, int64_t n, int64_t r0, int64_t r1, float* Y,
                   int64_t ldy) {
  const int64_t K = W.cols;
  const int64_t P = std::max<int64_t>(4, kPanelBytes / (K * int64_t(sizeof(float))) / 4 * 4);
  const int64_t B = std::max<int64_t>(4, kBlockBytes / (K * int64_t(sizeof(float))));
  thread_local AlignedBuffer<float> wide;  // 64-byte aligned: no load splits a cache line
  if (wide.size() < size_t(P * K)) wide.resize(size_t(P * K));
  int64_t r = r0;
  while (r + 4 <= r1) {
    const int64_t rows = std::min(P, (r1 - r) / 4 * 4);
    widen_rows<T>(W, r, rows, wide.data());
    for (int64_t c0 = 0; c0 < n; c0 += B) {
      const int64_t nc = std::min(B, n - c0);
      for (int64_t g = 0; g < rows; g += 4) {
        const WeightsRef Wf{DType::F32, 4, K, reinterpret_cast<const uint8_t*>(wide.data() + g * K),
                            size_t(K) * sizeof(float)};
        row_tile<DType::F32, 4>(Wf, 0, X + c0 * ldx, ldx, nc, Y + c0 * ldy + r + g, ldy);
      }
    }
    r += rows;
  }
  for (; r < r1; ++r) row_tile<T, 1>(W, r, X, ldx, n, Y, ldy);
}

template <DType T>
void matmul_typed(const WeightsRef& W, const float* X, int64_t ldx, int64_t n, int64_t r0, int64_t r1, float* Y,
                  int64_t ldy) {
  if constexpr (T != DType::F32) {
    if (n >= 8 && W.cols <= kPanelMaxK) return matmul_panels<T>(W, X, ldx, n, r0, r1, Y, ldy);
  }
  // 16-bit weights with many activation rows: the 4 weight rows are widened
  // to f32 once per block (exact) and every tile of the block reads those,
  // instead of widening them again for each 4 activation rows. When all the
  // activations fit in L2 they are one block, so each row is widened once.
  const bool widen_once = T != DType::F32 && n >= 8;
  const int64_t kColBlock = widen_once && n * W.cols * int64_t(sizeof(float)) <= (512 << 10) ? n : 48;
  thread_local AlignedBuffer<float> wide;
  if (widen_once && wide.size() < size_t(4 * W.cols)) wide.resize(size_t(4 * W.cols));
  const WeightsRef Wf{DType::F32, 4, W.cols, reinterpret_cast<const uint8_t*>(wide.data()), size_t(W.cols) * sizeof(float)};
  for (int64_t c0 = 0; c0 < n; c0 += kColBlock) {
    const int64_t nc = n - c0 < kColBlock ? n - c0 : kColBlock;
    const float* Xb = X + c0 * ldx;
    float* Yb = Y + c0 * ldy;
    int64_t r = r0;
    for (; r + 4 <= r1; r += 4) {
      if (widen_once) {
        for (int i = 0; i < 4; ++i) {
          const uint8_t* row = W.data + size_t(r + i) * W.row_stride;
          float* out = wide.data() + i * W.cols;
          int64_t k = 0;
          for (; k + 16 <= W.cols; k += 16) _mm512_storeu_ps(out + k, load_w_full<T>(row, k));
          if (k < W.cols) {
            const __mmask16 m = __mmask16((1u << (W.cols - k)) - 1);
            _mm512_mask_storeu_ps(out + k, m, load_w<T>(row, k, m));
          }
        }
        row_tile<DType::F32, 4>(Wf, 0, Xb, ldx, nc, Yb + r, ldy);
      } else {
        row_tile<T, 4>(W, r, Xb, ldx, nc, Yb, ldy);
      }
    }
    for (; r < r1; ++r) row_tile<T, 1>(W, r, Xb, ldx, nc, Yb, ldy);
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

}  // namespace ms::cpu::avx512
