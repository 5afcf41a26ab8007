// fgemm_avx512.cpp — AVX-512 matmul for float weights (F32, F16, BF16).
//
// Weights are widened exactly to f32 on the fly (BF16: shift, F16: VCVTPH2PS)
// and multiplied with the f32 activations with FMAs in f32 — no rounding of
// activations to 16 bits — so results match the f32 reference to float
// rounding. Register tile: 4 weight rows x 4 activation rows, 16 columns per
// step, the 16 horizontal sums at the end in one transposing tree; activation
// rows are processed in blocks of 48 so the block stays in L2 while the weight
// rows stream. With 8 or more activation rows, 16-bit weight rows are widened
// once into an f32 buffer that every tile of the block reads. Short 16-bit
// rows (K a multiple of 16, up to 256: a small model's lm_head) at many
// activation rows take the vocabulary-lanes form below instead, which also
// gives matmul_f_argmax, the greedy argmax without the outputs.
#include <immintrin.h>

#include <algorithm>
#include <cstdint>
#include <vector>

#include "core/aligned.h"
#include "kernels/cpu/cpu_kernels.h"
#include "kernels/cpu/transpose16_avx512.h"

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

// Short 16-bit rows whose length is a multiple of 16 (K <= kVocabLanesMaxK)
// times many activation rows: the lanes hold 16 weight rows (an lm_head's
// vocabulary entries) instead of 16 columns, so the 16 partial sums of the
// reference order (lane l: the terms k = l mod 16) are 16 registers rather than
// 16 lanes, and the reduction tree is 15 vertical adds per 16 outputs instead
// of the 4x4 tile's transposing shuffles (which share the FMA ports and cap it
// at ~74% of the FMA peak; this form: ~89% at K = 128). The same products,
// summed in the same order, so the same bits.
//
// A panel of kVlPanel weight rows is widened and transposed once into
// wt[k][j] (k-major, kVlPanel floats per k; 24 KB at K = 128, in L1), and each
// group of up to 4 activation rows runs one tile over it: for each lane class
// l, acc[i][b] (row i, vocabulary block b of 16) += x[i][k] * wt[k][16b..+16]
// for k = l, l + 16, ... — one weight load per 4 FMAs, one broadcast per 3 —
// then the class's sums go to a 16-deep stack in L1 and the tree reads them.
// The tile hands each row's 16 results to an epilogue: stored (Y rows are
// prefetched for writing two tiles ahead: 200 rows of a 32000-entry lm_head
// are 25 MB of stores, which otherwise stall on their cache misses), or folded
// into a running greedy argmax so that no logits are written at all.
constexpr int64_t kVocabLanesMaxK = 256;
constexpr int kVlBlocks = 3;  // vocabulary blocks of 16 per tile
constexpr int64_t kVlPanel = 16 * kVlBlocks;
constexpr int64_t kVlAhead = 8;  // rows of Y prefetched ahead

bool vocab_lanes_fit(const WeightsRef& W) {
  return W.dtype != DType::F32 && W.cols % 16 == 0 && W.cols <= kVocabLanesMaxK;
}

// wt[k * kVlPanel + j] = W[r + j][k] for j < count, 0 for count <= j < kVlPanel.
template <DType T>
void widen_transpose(const WeightsRef& W, int64_t r, int64_t count, float* wt) {
  for (int64_t j0 = 0; j0 < kVlPanel; j0 += 16) {
    const uint8_t* rows = W.data + size_t(r + j0) * W.row_stride;
    const int64_t valid = std::clamp<int64_t>(count - j0, 0, 16);
    for (int64_t k0 = 0; k0 < W.cols; k0 += 16) {
      __m512 v[16];
      if (valid == 16) {
        #pragma GCC unroll 16
        for (int i = 0; i < 16; ++i) v[i] = load_w_full<T>(rows + size_t(i) * W.row_stride, k0);
      } else {
        #pragma GCC unroll 16
        for (int i = 0; i < 16; ++i)
          v[i] = i < valid ? load_w_full<T>(rows + size_t(i) * W.row_stride, k0) : _mm512_setzero_ps();
      }
      transpose16(v);
      #pragma GCC unroll 16
      for (int i = 0; i < 16; ++i) _mm512_store_ps(wt + (k0 + i) * kVlPanel + j0, v[i]);
    }
  }
}

// R activation rows x B vocabulary blocks; out(i, b, sums) takes the results.
template <int R, int B, class Out>
void vl_tile(const float* wt, int64_t K, const float* X, int64_t ldx, Out& out) {
  alignas(64) float part[16][R][B][16];
  for (int l = 0; l < 16; ++l) {
    __m512 acc[R][B];
    #pragma GCC unroll 16
    for (int i = 0; i < R; ++i)
      #pragma GCC unroll 16
      for (int b = 0; b < B; ++b) acc[i][b] = _mm512_setzero_ps();
    for (int64_t k = l; k < K; k += 16) {
      __m512 w[B];
      #pragma GCC unroll 16
      for (int b = 0; b < B; ++b) w[b] = _mm512_load_ps(wt + k * kVlPanel + 16 * b);
      #pragma GCC unroll 16
      for (int i = 0; i < R; ++i) {
        const __m512 x = _mm512_set1_ps(X[i * ldx + k]);
        #pragma GCC unroll 16
        for (int b = 0; b < B; ++b) acc[i][b] = _mm512_fmadd_ps(x, w[b], acc[i][b]);
      }
    }
    #pragma GCC unroll 16
    for (int i = 0; i < R; ++i)
      #pragma GCC unroll 16
      for (int b = 0; b < B; ++b) _mm512_store_ps(part[l][i][b], acc[i][b]);
  }
  // The tree of lanes16.h: l + (l+8), then 4, 2 and 1 apart.
  #pragma GCC unroll 16
  for (int i = 0; i < R; ++i)
    #pragma GCC unroll 16
    for (int b = 0; b < B; ++b) {
      __m512 t[8];
      #pragma GCC unroll 8
      for (int m = 0; m < 8; ++m) t[m] = _mm512_add_ps(_mm512_load_ps(part[m][i][b]), _mm512_load_ps(part[m + 8][i][b]));
      #pragma GCC unroll 4
      for (int m = 0; m < 4; ++m) t[m] = _mm512_add_ps(t[m], t[m + 4]);
      out(i, b, _mm512_add_ps(_mm512_add_ps(t[0], t[2]), _mm512_add_ps(t[1], t[3])));
    }
}

// Rows [c, c + R) of the output, the panel starting at vocabulary entry v0
// with `last` lanes valid in its last block.
struct VlStore {
  float* Y;
  int64_t ldy, c, v0;
  int blocks;
  __mmask16 last;
  void operator()(int i, int b, __m512 s) const {
    float* y = Y + (c + i) * ldy + v0 + 16 * b;
    if (b + 1 < blocks) _mm512_storeu_ps(y, s);
    else _mm512_mask_storeu_ps(y, last, s);
  }
  void ahead(int64_t rows, int64_t n) const {
    for (int64_t i = c + kVlAhead; i < std::min(n, c + kVlAhead + rows); ++i)
      for (int b = 0; b < blocks; ++b) _mm_prefetch(reinterpret_cast<const char*>(Y + i * ldy + v0 + 16 * b), _MM_HINT_ET0);
  }
};

// Per activation row, per lane: the largest value seen (by >, so NaN never
// and an equal later value never) and its vocabulary index — each lane sees
// its indices in increasing order, so that is the first index of the lane's
// maximum, as core/argmax.h's greedy_argmax takes the first.
struct alignas(64) LaneBest {
  __m512 v;
  __m512i idx;
};

struct VlArgmax {
  LaneBest* best;
  int64_t c, v0;
  int blocks;
  __mmask16 last;
  void operator()(int i, int b, __m512 s) const {
    LaneBest& lb = best[c + i];
    const __mmask16 valid = b + 1 < blocks ? __mmask16(0xFFFF) : last;
    const __mmask16 gt = _mm512_mask_cmp_ps_mask(valid, s, lb.v, _CMP_GT_OQ);
    const __m512i idx = _mm512_add_epi32(_mm512_set1_epi32(int32_t(v0 + 16 * b)),
                                         _mm512_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15));
    lb.v = _mm512_mask_mov_ps(lb.v, gt, s);
    lb.idx = _mm512_mask_mov_epi32(lb.idx, gt, idx);
  }
  void ahead(int64_t, int64_t) const {}
};

template <int B, class Out>
void vl_rows(const float* wt, int64_t K, const float* X, int64_t ldx, int64_t n, Out out) {
  for (; out.c + 4 <= n; out.c += 4) {
    out.ahead(4, n);
    vl_tile<4, B>(wt, K, X + out.c * ldx, ldx, out);
  }
  const float* Xc = X + out.c * ldx;
  switch (n - out.c) {
    case 3: vl_tile<3, B>(wt, K, Xc, ldx, out); break;
    case 2: vl_tile<2, B>(wt, K, Xc, ldx, out); break;
    case 1: vl_tile<1, B>(wt, K, Xc, ldx, out); break;
    default: break;
  }
}

// Runs each panel of rows [r0, r1) over all n activation rows; make(v0,
// blocks, last) gives the panel's epilogue.
template <DType T, class Make>
void vocab_lanes(const WeightsRef& W, const float* X, int64_t ldx, int64_t n, int64_t r0, int64_t r1, Make make) {
  const int64_t K = W.cols;
  thread_local AlignedBuffer<float> wt;
  if (wt.size() < size_t(kVlPanel * K)) wt.resize(size_t(kVlPanel * K));
  for (int64_t r = r0; r < r1; r += kVlPanel) {
    const int64_t count = std::min(kVlPanel, r1 - r);
    widen_transpose<T>(W, r, count, wt.data());
    const int blocks = int((count + 15) / 16);
    const __mmask16 last = count % 16 ? __mmask16((1u << (count % 16)) - 1) : __mmask16(0xFFFF);
    switch (blocks) {
      case 3: vl_rows<3>(wt.data(), K, X, ldx, n, make(r, blocks, last)); break;
      case 2: vl_rows<2>(wt.data(), K, X, ldx, n, make(r, blocks, last)); break;
      default: vl_rows<1>(wt.data(), K, X, ldx, n, make(r, blocks, last)); break;
    }
  }
}

template <DType T>
void matmul_vocab_lanes(const WeightsRef& W, const float* X, int64_t ldx, int64_t n, int64_t r0, int64_t r1, float* Y,
                        int64_t ldy) {
  vocab_lanes<T>(W, X, ldx, n, r0, r1,
                 [&](int64_t v0, int blocks, __mmask16 last) { return VlStore{Y, ldy, 0, v0, blocks, last}; });
}

template <DType T>
void argmax_vocab_lanes(const WeightsRef& W, const float* X, int64_t ldx, int64_t n, int64_t r0, int64_t r1,
                        float* best_v, int32_t* best_i) {
  thread_local AlignedBuffer<LaneBest> best;
  if (best.size() < size_t(n)) best.resize(size_t(n));
  for (int64_t c = 0; c < n; ++c) best[c] = {_mm512_set1_ps(-__builtin_inff()), _mm512_setzero_si512()};
  vocab_lanes<T>(W, X, ldx, n, r0, r1,
                 [&](int64_t v0, int blocks, __mmask16 last) { return VlArgmax{best.data(), 0, v0, blocks, last}; });
  // Each row's lanes to one (value, first index), merged into the caller's.
  for (int64_t c = 0; c < n; ++c) {
    const float m = _mm512_reduce_max_ps(best[c].v);
    if (!(m > -__builtin_inff())) continue;  // nothing above -inf in this range
    const __mmask16 at = _mm512_cmp_ps_mask(best[c].v, _mm512_set1_ps(m), _CMP_EQ_OQ);
    const int32_t i = _mm512_mask_reduce_min_epi32(at, best[c].idx);
    if (argmax_beats(m, i, best_v[c], best_i[c])) {
      best_v[c] = m;
      best_i[c] = i;
    }
  }
}

template <DType T>
void matmul_typed(const WeightsRef& W, const float* X, int64_t ldx, int64_t n, int64_t r0, int64_t r1, float* Y,
                  int64_t ldy) {
  if constexpr (T != DType::F32) {
    // Measured (bf16): from 64 rows on, and for an lm_head's 32000 rows from
    // 32, faster than the panels below; an expert's 256 x 128 at 16-48 rows
    // and the lm_head at 16 are not (the transposed panel serves too few).
    if ((n >= 64 || (n >= 32 && W.rows >= 4096)) && vocab_lanes_fit(W))
      return matmul_vocab_lanes<T>(W, X, ldx, n, r0, r1, Y, ldy);
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

void argmax_f32_pass(const WeightsRef& W, const float* X, int64_t ldx, int64_t n, int64_t r0, int64_t r1,
                     float* best_v, int32_t* best_i) {
  if (W.dtype == DType::BF16) argmax_vocab_lanes<DType::BF16>(W, X, ldx, n, r0, r1, best_v, best_i);
  else argmax_vocab_lanes<DType::F16>(W, X, ldx, n, r0, r1, best_v, best_i);
}

bool matmul_f_argmax(const WeightsRef& W, const float* X, int64_t ldx, int64_t n, int64_t r0, int64_t r1,
                     float* best_v, int32_t* best_i) {
  if (!vocab_lanes_fit(W)) return false;
  if (r0 >= r1) return true;
  if (W.dtype == DType::BF16 && argmax_pass() == ArgmaxPass::Bf16Candidates)
    argmax_bf16_pass(W, X, ldx, n, r0, r1, best_v, best_i);
  else
    argmax_f32_pass(W, X, ldx, n, r0, r1, best_v, best_i);
  return true;
}

}  // namespace ms::cpu::avx512
