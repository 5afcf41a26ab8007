// argmax_bf16_avx512.cpp — the greedy argmax of an lm_head with bf16 weights
// in two passes, for CPUs whose VDPBF16PS does more products a cycle than
// their FMAs (AMD Zen 4: one 512-bit VDPBF16PS, 32 products, a cycle against
// one 512-bit FMA of 16). The token is argmax_f32_pass's, bit for bit; only
// the work differs.
//
// Pass 1 scores every vocabulary entry v of the range against each activation
// row x rounded to bf16 (x̂): VDPBF16PS over pairs of columns in the
// vocabulary-lanes layout (a panel of 48 weight rows transposed to [K/2][48]
// pairs of bf16, one 32-bit lane per entry; tiles of 4 rows x 3 blocks of 16
// entries). A row keeps the entries that score within 2E of its best score so
// far (E bounds |score - logit|, below), up to kCap of them.
// Pass 2 computes the kept entries' logits in the order of every float path
// (ref::dot16: lane l the terms k = l mod 16, then the tree) and takes the
// greedy argmax among them. The f32 pass's token v* is always kept: for every
// u, score(v*) >= logit(v*) - E >= logit(u) - E >= score(u) - 2E, so v* is
// within 2E of the best score at every point of the scan; so is every entry
// tied with it, which keeps the first index.
//
// E, for a row x over the range's entries (Cauchy-Schwarz, W* the largest
// ||w_v||2 of the range, u = 2^-24, g(m) = m*u / (1 - m*u)):
//   the rounding of x                                W* * ||x - x̂||2
//   pass 1's sums (<= 2 roundings a pair, K in all,
//   each taken as 2u, whatever the rounding mode)    g(2K + 4) * W* * ||x̂||2
//   the f32 order (K/16 fmas a lane, then 4 adds)    g(K/16 + 5) * W* * ||x||2
//   denormals read or flushed as 0 (DAZ, FTZ), and
//   the f32 order's gradual underflow                2^-126 * (K * max|x̂| + 3K)
// with x̂'s own denormals made 0 first, and 2^-10 of the whole added for the
// arithmetic of the bound itself. A row with a non-finite value, or one whose
// W* * ||x|| nears the float range, a range with a non-finite weight, and a
// row that keeps more than kCap entries (many near-ties) take the f32 pass.
#include <immintrin.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cmath>
#include <cstdlib>
#include <cstring>
#include <vector>

#include "core/aligned.h"
#include "core/cpu_features.h"
#include "kernels/cpu/cpu_kernels.h"
#include "kernels/cpu/transpose16_avx512.h"
#include "kernels/ref/lanes16.h"
#include "kernels/ref/ref.h"

namespace ms::cpu::avx512 {
namespace {

constexpr int64_t kPanel = 48;  // vocabulary entries a panel: 3 blocks of 16
constexpr int kCap = 64;        // entries a row keeps

std::atomic<uint64_t> g_rows{0}, g_recomputed{0}, g_f32_rows{0};

// The largest float not above t.
float floor_f(double t) {
  float f = float(t);
  if (double(f) > t) f = std::nextafter(f, -INFINITY);
  return f;
}

// x to bf16 (core/dtype.h: nearest even), a denormal result as +-0, as VDPBF16PS reads it.
uint16_t to_bf16_daz(float x) {
  const uint16_t h = f32_to_bf16(x);
  return (h & 0x7F80u) == 0 ? uint16_t(h & 0x8000u) : h;
}

struct RowState {
  double e2;    // 2E
  float best;   // the best score so far
  float th;     // floor(best - 2E): scores below it are dropped
  int kept;
  bool f32;     // this row takes the f32 pass
  float score[kCap];
  int32_t idx[kCap];
  void reset() { e2 = 0, best = -INFINITY, th = -INFINITY, kept = 0, f32 = false; }
};

void keep(RowState& s, float v, int32_t i) {
  if (!(v >= s.th)) return;
  if (v > s.best) {
    s.best = v;
    s.th = floor_f(double(v) - s.e2);
  }
  if (s.kept == kCap) {  // drop what the raised threshold excludes
    int m = 0;
    for (int j = 0; j < s.kept; ++j)
      if (s.score[j] >= s.th) s.score[m] = s.score[j], s.idx[m] = s.idx[j], ++m;
    s.kept = m;
    if (m == kCap) {
      s.f32 = true;
      s.th = INFINITY;  // (no more hits)
      return;
    }
  }
  s.score[s.kept] = v;
  s.idx[s.kept] = i;
  ++s.kept;
}

__attribute__((noinline)) void keep_lanes(RowState& s, __m512 v, __mmask16 hit, int32_t first) {
  alignas(64) float f[16];
  _mm512_store_ps(f, v);
  for (unsigned m = hit; m && !s.f32; m &= m - 1) {
    const int l = __builtin_ctz(m);
    keep(s, f[l], first + l);
  }
}

// wp[p * kPanel + j] = the pair (W[r + j][2p], W[r + j][2p + 1]) as one 32-bit
// lane (the first in the low half, as VDPBF16PS pairs them); 0 for j >= count.
void transpose_pairs(const WeightsRef& W, int64_t r, int64_t count, int64_t P, uint32_t* wp) {
  for (int64_t j0 = 0; j0 < kPanel; j0 += 16) {
    const int64_t valid = std::clamp<int64_t>(count - j0, 0, 16);
    for (int64_t p0 = 0; p0 < P; p0 += 16) {
      const __mmask16 m = P - p0 >= 16 ? __mmask16(0xFFFF) : __mmask16((1u << (P - p0)) - 1);
      __m512 v[16];
      #pragma GCC unroll 16
      for (int i = 0; i < 16; ++i)
        v[i] = i < valid ? _mm512_castsi512_ps(_mm512_maskz_loadu_epi32(
                               m, W.data + size_t(r + j0 + i) * W.row_stride + size_t(p0) * 4))
                         : _mm512_setzero_ps();
      transpose16(v);
      for (int64_t i = 0; i < 16 && p0 + i < P; ++i) _mm512_store_ps(reinterpret_cast<float*>(wp + (p0 + i) * kPanel + j0), v[i]);
    }
  }
}

// R rows x B blocks of scores, then each (row, block) against its row's threshold.
template <int R, int B>
void score_tile(const uint32_t* wp, int64_t P, const uint32_t* xp, RowState* st, int32_t v0, __mmask16 last) {
  __m512 acc[R][B];
  #pragma GCC unroll 16
  for (int i = 0; i < R; ++i)
    #pragma GCC unroll 16
    for (int b = 0; b < B; ++b) acc[i][b] = _mm512_setzero_ps();
  for (int64_t p = 0; p < P; ++p) {
    __m512i w[B];
    #pragma GCC unroll 16
    for (int b = 0; b < B; ++b) w[b] = _mm512_load_si512(wp + p * kPanel + 16 * b);
    #pragma GCC unroll 16
    for (int i = 0; i < R; ++i) {
      const __m512i x = _mm512_set1_epi32(int32_t(xp[i * P + p]));
      #pragma GCC unroll 16
      for (int b = 0; b < B; ++b) acc[i][b] = _mm512_dpbf16_ps(acc[i][b], (__m512bh)x, (__m512bh)w[b]);
    }
  }
  #pragma GCC unroll 16
  for (int i = 0; i < R; ++i)
    #pragma GCC unroll 16
    for (int b = 0; b < B; ++b) {
      const __mmask16 valid = b + 1 < B ? __mmask16(0xFFFF) : last;
      const __mmask16 hit = _mm512_mask_cmp_ps_mask(valid, acc[i][b], _mm512_set1_ps(st[i].th), _CMP_GE_OQ);
      if (hit) keep_lanes(st[i], acc[i][b], hit, v0 + 16 * b);
    }
}

template <int B>
void score_rows(const uint32_t* wp, int64_t P, const uint32_t* xp, int64_t n, RowState* st, int32_t v0, __mmask16 last) {
  int64_t c = 0;
  for (; c + 4 <= n; c += 4) score_tile<4, B>(wp, P, xp + c * P, st + c, v0, last);
  switch (n - c) {
    case 3: score_tile<3, B>(wp, P, xp + c * P, st + c, v0, last); break;
    case 2: score_tile<2, B>(wp, P, xp + c * P, st + c, v0, last); break;
    case 1: score_tile<1, B>(wp, P, xp + c * P, st + c, v0, last); break;
    default: break;
  }
}

// The largest ||w_v||2 over rows [r0, r1), rounded up; +inf for a non-finite weight.
double largest_row_norm(const WeightsRef& W, int64_t r0, int64_t r1) {
  float most = 0;
  for (int64_t r = r0; r < r1; ++r) {
    const uint16_t* row = reinterpret_cast<const uint16_t*>(W.data + size_t(r) * W.row_stride);
    __m512 acc = _mm512_setzero_ps();
    for (int64_t k = 0; k < W.cols; k += 16) {
      const __m256i h = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(row + k));
      const __m512 w = _mm512_castsi512_ps(_mm512_slli_epi32(_mm512_cvtepu16_epi32(h), 16));
      acc = _mm512_fmadd_ps(w, w, acc);
    }
    const float ss = _mm512_reduce_add_ps(acc);
    if (!(ss <= 3.0e38f)) return INFINITY;  // (NaN, inf, or near the float range)
    most = std::max(most, ss);
  }
  // The float sum of K squares is within g(K + 4) of the exact one.
  return std::sqrt(double(most) * (1.0 + double(W.cols + 8) * 0x1p-24));
}

double rounding_gamma(int64_t m) { return double(m) * 0x1p-24 / (1.0 - double(m) * 0x1p-24); }

// Row x to its bf16 pairs xp[P], its state and bound; false: the f32 pass.
bool prepare_row(const float* x, int64_t K, double wstar, uint32_t* xp, RowState& s) {
  double nx = 0, nxh = 0, ndx = 0, amax = 0;
  for (int64_t k = 0; k < K; k += 2) {
    const uint16_t lo = to_bf16_daz(x[k]), hi = to_bf16_daz(x[k + 1]);
    xp[k / 2] = uint32_t(lo) | (uint32_t(hi) << 16);
    for (int h = 0; h < 2; ++h) {
      const double a = x[k + h], b = bf16_to_f32(h ? hi : lo);
      nx += a * a, nxh += b * b, ndx += (a - b) * (a - b), amax = std::max(amax, std::fabs(b));
    }
  }
  nx = std::sqrt(nx), nxh = std::sqrt(nxh), ndx = std::sqrt(ndx);
  if (!(nx * wstar < 1e30) || !(nxh * wstar < 1e30)) return false;  // (also NaN, inf)
  double e = wstar * ndx + rounding_gamma(2 * K + 4) * wstar * nxh + rounding_gamma(K / 16 + 5) * wstar * nx +
             0x1p-126 * (double(K) * amax + 3.0 * double(K));
  e *= 1.0 + 0x1p-10;
  s.e2 = 2 * e;
  return true;
}

// The f32 pass for the rows that need it, gathered; merged into theirs.
void f32_rows(const WeightsRef& W, const float* X, int64_t ldx, const std::vector<int64_t>& rows, int64_t r0, int64_t r1,
              float* best_v, int32_t* best_i) {
  if (rows.empty()) return;
  const int64_t K = W.cols, m = int64_t(rows.size());
  std::vector<float> x(rows.size() * size_t(K)), bv(rows.size());
  std::vector<int32_t> bi(rows.size());
  for (int64_t j = 0; j < m; ++j) {
    std::memcpy(x.data() + j * K, X + rows[size_t(j)] * ldx, size_t(K) * sizeof(float));
    bv[size_t(j)] = best_v[rows[size_t(j)]], bi[size_t(j)] = best_i[rows[size_t(j)]];
  }
  argmax_f32_pass(W, x.data(), K, m, r0, r1, bv.data(), bi.data());
  for (int64_t j = 0; j < m; ++j) best_v[rows[size_t(j)]] = bv[size_t(j)], best_i[rows[size_t(j)]] = bi[size_t(j)];
  g_f32_rows.fetch_add(uint64_t(m), std::memory_order_relaxed);
}

// Instruction rates for the choice: 12 independent chains of one
// instruction (zmm13 x zmm12 into zmm0..11) in registers, `n` times.
#define MS_CHAINS12(INSN)                                                                                       \
  asm volatile(                                                                                                 \
      "vpbroadcastd %k1, %%zmm12\n\tvmovaps %%zmm12, %%zmm13\n\tvpxord %%zmm0, %%zmm0, %%zmm0\n\t"            \
      "vmovaps %%zmm0, %%zmm1\n\tvmovaps %%zmm0, %%zmm2\n\tvmovaps %%zmm0, %%zmm3\n\tvmovaps %%zmm0, %%zmm4\n\t" \
      "vmovaps %%zmm0, %%zmm5\n\tvmovaps %%zmm0, %%zmm6\n\tvmovaps %%zmm0, %%zmm7\n\tvmovaps %%zmm0, %%zmm8\n\t" \
      "vmovaps %%zmm0, %%zmm9\n\tvmovaps %%zmm0, %%zmm10\n\tvmovaps %%zmm0, %%zmm11\n\t"                      \
      "1:\n\t" INSN " %%zmm13, %%zmm12, %%zmm0\n\t" INSN " %%zmm13, %%zmm12, %%zmm1\n\t"                    \
      INSN " %%zmm13, %%zmm12, %%zmm2\n\t" INSN " %%zmm13, %%zmm12, %%zmm3\n\t"                               \
      INSN " %%zmm13, %%zmm12, %%zmm4\n\t" INSN " %%zmm13, %%zmm12, %%zmm5\n\t"                               \
      INSN " %%zmm13, %%zmm12, %%zmm6\n\t" INSN " %%zmm13, %%zmm12, %%zmm7\n\t"                               \
      INSN " %%zmm13, %%zmm12, %%zmm8\n\t" INSN " %%zmm13, %%zmm12, %%zmm9\n\t"                               \
      INSN " %%zmm13, %%zmm12, %%zmm10\n\t" INSN " %%zmm13, %%zmm12, %%zmm11\n\t"                             \
      "dec %0\n\tjnz 1b\n\tvzeroupper\n\t"                                                                      \
      : "+r"(n)                                                                                                 \
      : "r"(0x3C003C00)                                                                                         \
      : "xmm0", "xmm1", "xmm2", "xmm3", "xmm4", "xmm5", "xmm6", "xmm7", "xmm8", "xmm9", "xmm10", "xmm11",       \
        "xmm12", "xmm13", "cc")

// Products a second of one core: VDPBF16PS (32 an instruction) or VFMADD231PS (16).
double products_per_s(bool dp) {
  int64_t n = 20000;
  const auto t0 = std::chrono::steady_clock::now();
  if (dp)
    MS_CHAINS12("vdpbf16ps");
  else
    MS_CHAINS12("vfmadd231ps");
  const double s = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  return 20000.0 * 12 * (dp ? 32 : 16) / std::max(s, 1e-9);
}
#undef MS_CHAINS12

ArgmaxPass chosen() {
  if (!cpu_features().avx512bf16) return ArgmaxPass::F32;
  if (const char* e = std::getenv("MOESERVE_ARGMAX")) {
    if (std::strcmp(e, "f32") == 0) return ArgmaxPass::F32;
    if (std::strcmp(e, "bf16") == 0) return ArgmaxPass::Bf16Candidates;
  }
  double dp = 0, fma = 0;
  for (int i = 0; i < 5; ++i) dp = std::max(dp, products_per_s(true)), fma = std::max(fma, products_per_s(false));
  return dp >= 1.5 * fma ? ArgmaxPass::Bf16Candidates : ArgmaxPass::F32;
}

std::atomic<int> g_forced{-1};

}  // namespace

ArgmaxPass argmax_pass() {
  const int f = g_forced.load(std::memory_order_relaxed);
  if (f >= 0) return ArgmaxPass(f);
  static const ArgmaxPass p = chosen();
  return p;
}

void set_argmax_pass(ArgmaxPass p) {
  if (p == ArgmaxPass::Bf16Candidates && !cpu_features().avx512bf16) p = ArgmaxPass::F32;
  g_forced.store(int(p), std::memory_order_relaxed);
}

Bf16ArgmaxStats bf16_argmax_stats() {
  return {g_rows.load(std::memory_order_relaxed), g_recomputed.load(std::memory_order_relaxed),
          g_f32_rows.load(std::memory_order_relaxed)};
}

void argmax_bf16_pass(const WeightsRef& W, const float* X, int64_t ldx, int64_t n, int64_t r0, int64_t r1,
                      float* best_v, int32_t* best_i) {
  const int64_t K = W.cols, P = K / 2;
  const double wstar = largest_row_norm(W, r0, r1);
  if (!(wstar < 1e30)) {
    g_f32_rows.fetch_add(uint64_t(n), std::memory_order_relaxed);
    return argmax_f32_pass(W, X, ldx, n, r0, r1, best_v, best_i);
  }
  thread_local AlignedBuffer<uint32_t> xp, wp;
  thread_local std::vector<RowState> st;
  if (xp.size() < size_t(n * P)) xp.resize(size_t(n * P));
  if (wp.size() < size_t(kPanel * P)) wp.resize(size_t(kPanel * P));
  if (st.size() < size_t(n)) st.resize(size_t(n));
  for (int64_t i = 0; i < n; ++i) st[size_t(i)].reset();
  std::vector<int64_t> f32;
  for (int64_t i = 0; i < n; ++i)
    if (!prepare_row(X + i * ldx, K, wstar, xp.data() + i * P, st[size_t(i)])) {
      st[size_t(i)].f32 = true;
      st[size_t(i)].th = INFINITY;
    }
  for (int64_t r = r0; r < r1; r += kPanel) {
    const int64_t count = std::min(kPanel, r1 - r);
    transpose_pairs(W, r, count, P, wp.data());
    const int blocks = int((count + 15) / 16);
    const __mmask16 last = count % 16 ? __mmask16((1u << (count % 16)) - 1) : __mmask16(0xFFFF);
    switch (blocks) {
      case 3: score_rows<3>(wp.data(), P, xp.data(), n, st.data(), int32_t(r), last); break;
      case 2: score_rows<2>(wp.data(), P, xp.data(), n, st.data(), int32_t(r), last); break;
      default: score_rows<1>(wp.data(), P, xp.data(), n, st.data(), int32_t(r), last); break;
    }
  }
  // Pass 2: the kept entries within 2E of the row's best score, in f32.
  thread_local std::vector<float> w;
  w.resize(size_t(K));
  uint64_t recomputed = 0;
  for (int64_t i = 0; i < n; ++i) {
    const RowState& s = st[size_t(i)];
    if (s.f32) {
      f32.push_back(i);
      continue;
    }
    float bv = -INFINITY;
    int32_t bi = 0;
    for (int j = 0; j < s.kept; ++j) {
      if (!(s.score[j] >= s.th)) continue;
      ref::float_row_to_f32(DType::BF16, W.data + size_t(s.idx[j]) * W.row_stride, w.data(), K);
      const float v = ref::dot16(X + i * ldx, w.data(), K);
      ++recomputed;
      if (argmax_beats(v, s.idx[j], bv, bi)) bv = v, bi = s.idx[j];
    }
    if (bv > -INFINITY && argmax_beats(bv, bi, best_v[i], best_i[i])) best_v[i] = bv, best_i[i] = bi;
  }
  g_rows.fetch_add(uint64_t(n), std::memory_order_relaxed);
  g_recomputed.fetch_add(recomputed, std::memory_order_relaxed);
  f32_rows(W, X, ldx, f32, r0, r1, best_v, best_i);
}

}  // namespace ms::cpu::avx512
