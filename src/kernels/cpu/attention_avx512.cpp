// attention_avx512.cpp — paged attention with AVX-512 (F, FMA, F16C).
//
// Design. One call computes one work item (attention_cpu.h): nt consecutive
// query tokens of a task times the `group` query heads that share KV head kvh,
// R = nt*group rows that all read the same keys and values, so each cache row
// is read and widened (VCVTPH2PS for f16) once per item and used by every row.
// Keys are taken in chunks of 16 aligned to the absolute key index (chunk c0
// holds keys c0..c0+15, key j always in lane j % 16):
//  1. Scores. The chunk's 16 key rows are widened into K[16][dp] (dp = head_dim
//     rounded up to 16, zero padded). For each row whose key range [j0, pos]
//     meets the chunk, 16 dot products are accumulated lane-wise over head_dim
//     with FMAs (16 accumulators), reduced by a fixed transpose tree to one
//     vector of 16 sums, scaled; keys outside [j0, pos] get -inf.
//  2. Softmax per row: max; e = exp(s - max) by a polynomial (Cephes expf,
//     ~1 ulp; VSCALEFPS for 2^n); Σe kept per lane over the row's chunks in key
//     order, then one horizontal sum; p = e * (1 / Σe).
//  3. Output. The chunk's value rows are widened into V[16][dp]; each row adds
//     p_j * v_j into O[row][dp] with FMAs, keys in ascending order.
// Determinism: each step for one (token, head) row depends only on its query,
// its key range and the cache — chunk boundaries and lanes are fixed by the
// absolute key index and the reduction trees are fixed — so its output is
// bit-identical whatever other tokens, heads or tasks share its item or the
// call, and whatever the thread split (decode == prefill, batch invariance).
#include <immintrin.h>

#include <cstdint>
#include <cstring>

#include "kernels/cpu/attention_cpu.h"
#include "kernels/cpu/vexp_avx512.h"

namespace ms::cpu::avx512 {
namespace {

constexpr int64_t kW = 16;  // lanes, keys per chunk

int64_t first_key(const AttnItem& a, int64_t pos) {
  const int64_t j0 = a.window > 0 ? pos - a.window + 1 : 0;
  return j0 > 0 ? j0 : 0;
}

__mmask16 tail_mask(int64_t left) { return left >= kW ? __mmask16(0xFFFF) : __mmask16((1u << left) - 1); }

// Lanes i of chunk c0 with j0 <= c0 + i <= pos.
__mmask16 key_mask(int64_t c0, int64_t j0, int64_t pos) {
  const int64_t lo = j0 > c0 ? j0 - c0 : 0;
  const int64_t hi = pos - c0 < kW - 1 ? pos - c0 : kW - 1;
  if (hi < lo) return 0;
  return __mmask16(((2u << hi) - 1) & ~((1u << lo) - 1));
}

// Widens the cache row at element offset off (head_dim values) into dst[dp], zero padded.
// Plain loads where whole: masked loads and stores of memory not yet in cache
// are slow (decode, which streams the cache, measured ~1.6x slower with them).
void widen_row(const AttnItem& a, const void* pool, int64_t off, float* dst, int64_t dp) {
  const int64_t d = a.head_dim;
  int64_t c = 0;
  if (a.f16) {
    const uint16_t* src = static_cast<const uint16_t*>(pool) + off;
    for (; c + kW <= d; c += kW)
      _mm512_store_ps(dst + c, _mm512_cvtph_ps(_mm256_loadu_si256(reinterpret_cast<const __m256i*>(src + c))));
    if (c < dp) _mm512_store_ps(dst + c, _mm512_cvtph_ps(_mm256_maskz_loadu_epi16(tail_mask(d - c), src + c)));
  } else {
    const float* src = static_cast<const float*>(pool) + off;
    for (; c + kW <= d; c += kW) _mm512_store_ps(dst + c, _mm512_loadu_ps(src + c));
    if (c < dp) _mm512_store_ps(dst + c, _mm512_maskz_loadu_ps(tail_mask(d - c), src + c));
  }
}

// Widens cache rows j0..j1 (consecutive keys of KV head a.kvh) into
// dst[(j - j0) * dp]. A block's rows of one head are contiguous
// (attention.h), so the block table is read once per block, not per key.
// (The same walk in the other ISA's file: one shared template calling back
// into widen_row was 10-15% slower here, as the compiler then kept
// widen_row out of line.)
void widen_rows(const AttnItem& a, const void* pool, int64_t j0, int64_t j1, float* dst, int64_t dp) {
  for (int64_t j = j0; j <= j1;) {
    const int64_t left = a.block_size - j % a.block_size, run = j1 + 1 - j < left ? j1 + 1 - j : left;
    const int64_t off = kv_row_offset(a, j);
    for (int64_t i = 0; i < run; ++i) widen_row(a, pool, off + i * a.head_dim, dst + (j - j0 + i) * dp, dp);
    j += run;
  }
}

// a[i] = partial sums (lane l: terms c ≡ l mod 16) of key i; returns the
// vector whose lane i is Σ_l a[i][l]. Every key is summed by the same tree:
// l + (l+8), then + 4 apart, 2 apart, 1 apart.
__m512 reduce16(const __m512* a) {
  __m512 b[8], c[4], d[2];
  for (int i = 0; i < 8; ++i)  // b[i]: key 2i in lanes 0-7, key 2i+1 in lanes 8-15
    b[i] = _mm512_add_ps(_mm512_shuffle_f32x4(a[2 * i], a[2 * i + 1], 0x44),
                         _mm512_shuffle_f32x4(a[2 * i], a[2 * i + 1], 0xEE));
  for (int i = 0; i < 4; ++i)  // c[i]: key 4i+q in 128-bit quarter q
    c[i] = _mm512_add_ps(_mm512_shuffle_f32x4(b[2 * i], b[2 * i + 1], 0x88),
                         _mm512_shuffle_f32x4(b[2 * i], b[2 * i + 1], 0xDD));
  for (int i = 0; i < 2; ++i)  // d[i], quarter q: key 8i+q (2 lanes), key 8i+4+q (2 lanes)
    d[i] = _mm512_add_ps(_mm512_shuffle_ps(c[2 * i], c[2 * i + 1], 0x44), _mm512_shuffle_ps(c[2 * i], c[2 * i + 1], 0xEE));
  // e lane 4q+m = key 4m+q; permute to lane = key.
  const __m512 e = _mm512_add_ps(_mm512_shuffle_ps(d[0], d[1], 0x88), _mm512_shuffle_ps(d[0], d[1], 0xDD));
  return _mm512_permutexvar_ps(_mm512_setr_epi32(0, 4, 8, 12, 1, 5, 9, 13, 2, 6, 10, 14, 3, 7, 11, 15), e);
}

// Lane i: q · K[i] over dp (K rows of stride dp).
__m512 dots16(const float* q, const float* K, int64_t dp) {
  __m512 acc[kW];
#pragma GCC unroll 16
  for (int i = 0; i < kW; ++i) acc[i] = _mm512_setzero_ps();
  for (int64_t c = 0; c < dp; c += kW) {
    const __m512 qv = _mm512_load_ps(q + c);
#pragma GCC unroll 16
    for (int i = 0; i < kW; ++i) acc[i] = _mm512_fmadd_ps(qv, _mm512_load_ps(K + i * dp + c), acc[i]);
  }
  return reduce16(acc);
}

// e^x for x <= 0; e^-104 underflows to 0.
__m512 exp_neg(__m512 x) { return exp_in_range(_mm512_max_ps(x, _mm512_set1_ps(ref::kExpMin))); }

// o[c .. c+16*NV) += Σ_{j=js..je} p[j - c0] * V[j - c0][c ..]  (keys ascending).
template <int NV>
void pv_block(float* o, const float* p, const float* V, int64_t c0, int64_t js, int64_t je, int64_t dp, int64_t c) {
  __m512 acc[NV];
#pragma GCC unroll 8
  for (int i = 0; i < NV; ++i) acc[i] = _mm512_load_ps(o + c + i * kW);
  for (int64_t j = js; j <= je; ++j) {
    const __m512 pj = _mm512_set1_ps(p[j - c0]);
    const float* v = V + (j - c0) * dp + c;
#pragma GCC unroll 8
    for (int i = 0; i < NV; ++i) acc[i] = _mm512_fmadd_ps(pj, _mm512_load_ps(v + i * kW), acc[i]);
  }
#pragma GCC unroll 8
  for (int i = 0; i < NV; ++i) _mm512_store_ps(o + c + i * kW, acc[i]);
}

void pv(float* o, const float* p, const float* V, int64_t c0, int64_t js, int64_t je, int64_t dp) {
  int64_t c = 0;
  for (; c + 8 * kW <= dp; c += 8 * kW) pv_block<8>(o, p, V, c0, js, je, dp, c);
  switch ((dp - c) / kW) {
    case 7: return pv_block<7>(o, p, V, c0, js, je, dp, c);
    case 6: return pv_block<6>(o, p, V, c0, js, je, dp, c);
    case 5: return pv_block<5>(o, p, V, c0, js, je, dp, c);
    case 4: return pv_block<4>(o, p, V, c0, js, je, dp, c);
    case 3: return pv_block<3>(o, p, V, c0, js, je, dp, c);
    case 2: return pv_block<2>(o, p, V, c0, js, je, dp, c);
    case 1: return pv_block<1>(o, p, V, c0, js, je, dp, c);
    default: return;
  }
}

}  // namespace

void attention(const AttnItem& a) {
  const int64_t d = a.head_dim, dp = (d + kW - 1) / kW * kW, G = a.group, R = a.nt * G;
  const int64_t p_first = a.pos0 + a.t0, p_last = p_first + a.nt - 1;
  const int64_t U0 = first_key(a, p_first), U1 = p_last;  // keys any row of the item reads
  const int64_t base = U0 / kW * kW, span = (U1 + 1 - base + kW - 1) / kW * kW;
  float* Q = a.scratch;     // [R][dp] queries (rounded to f16 for an f16 cache)
  float* O = Q + R * dp;    // [R][dp] output accumulators
  float* K = O + R * dp;    // [16][dp] widened keys of one chunk
  float* V = K + kW * dp;   // [16][dp] widened values of one chunk
  float* S = V + kW * dp;   // [R][span] scores, then probabilities; S[r][j - base]

  for (int64_t tl = 0; tl < a.nt; ++tl)
    for (int64_t g = 0; g < G; ++g) {
      const float* q = a.q + ((a.t0 + tl) * a.n_heads + a.kvh * G + g) * d;
      float* qr = Q + (tl * G + g) * dp;
      for (int64_t c = 0; c < dp; c += kW) {
        __m512 x = c + kW <= d ? _mm512_loadu_ps(q + c) : _mm512_maskz_loadu_ps(tail_mask(d - c), q + c);
        if (a.f16) x = _mm512_cvtph_ps(_mm512_cvtps_ph(x, _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC));
        _mm512_store_ps(qr + c, x);
        _mm512_store_ps(O + (tl * G + g) * dp + c, _mm512_setzero_ps());
      }
    }

  // 1. Scores, chunk by chunk; keys outside [U0, U1] are zero (never read from the cache).
  const __m512 scale = _mm512_set1_ps(a.scale), neg_inf = _mm512_set1_ps(-__builtin_inff());
  // Cache rows are fetched kKvAheadKeys keys ahead of their use (clipped to
  // [U0, U1]): the first ones now, the values' first ones before the softmax.
  auto prefetch_keys = [&](const void* pool, int64_t j0, int64_t j1) {
    prefetch_kv_rows(a, pool, j0 > U0 ? j0 : U0, j1 < U1 + 1 ? j1 : U1 + 1);
  };
  prefetch_keys(a.k, base, base + kKvAheadKeys);
  for (int64_t c0 = base; c0 <= U1; c0 += kW) {
    prefetch_keys(a.k, c0 + kKvAheadKeys, c0 + kKvAheadKeys + kW);
    const int64_t lo = c0 > U0 ? c0 : U0, hi = c0 + kW - 1 < U1 ? c0 + kW - 1 : U1;
    for (int64_t i = 0; i < kW; ++i)
      if (c0 + i < lo || c0 + i > hi) std::memset(K + i * dp, 0, size_t(dp) * sizeof(float));
    widen_rows(a, a.k, lo, hi, K + (lo - c0) * dp, dp);
    for (int64_t tl = c0 > p_first ? c0 - p_first : 0; tl < a.nt; ++tl) {
      const int64_t pos = p_first + tl, j0 = first_key(a, pos);
      if (j0 >= c0 + kW) continue;
      const __mmask16 m = key_mask(c0, j0, pos);
      for (int64_t g = 0; g < G; ++g) {
        const int64_t r = tl * G + g;
        const __m512 s = _mm512_mask_mul_ps(neg_inf, m, dots16(Q + r * dp, K, dp), scale);
        _mm512_store_ps(S + r * span + (c0 - base), s);
      }
    }
  }

  prefetch_keys(a.v, base, base + kKvAheadKeys);

  // 2. Softmax per row over its chunks.
  for (int64_t tl = 0; tl < a.nt; ++tl) {
    const int64_t pos = p_first + tl, j0 = first_key(a, pos), cb = j0 / kW * kW;
    for (int64_t g = 0; g < G; ++g) {
      float* s = S + (tl * G + g) * span;  // s[j - base]
      __m512 mv = neg_inf;
      for (int64_t c0 = cb; c0 <= pos; c0 += kW) mv = _mm512_max_ps(mv, _mm512_load_ps(s + (c0 - base)));
      const __m512 mx = _mm512_set1_ps(_mm512_reduce_max_ps(mv));
      __m512 sv = _mm512_setzero_ps();
      for (int64_t c0 = cb; c0 <= pos; c0 += kW) {
        float* sc = s + (c0 - base);
        const __m512 e = _mm512_maskz_mov_ps(key_mask(c0, j0, pos), exp_neg(_mm512_sub_ps(_mm512_load_ps(sc), mx)));
        sv = _mm512_add_ps(sv, e);
        _mm512_store_ps(sc, e);
      }
      const __m512 inv = _mm512_set1_ps(1.0f / _mm512_reduce_add_ps(sv));
      for (int64_t c0 = cb; c0 <= pos; c0 += kW)
        _mm512_store_ps(s + (c0 - base), _mm512_mul_ps(_mm512_load_ps(s + (c0 - base)), inv));
    }
  }

  // 3. Output, chunk by chunk; only keys of the row's range are read.
  for (int64_t c0 = base; c0 <= U1; c0 += kW) {
    prefetch_keys(a.v, c0 + kKvAheadKeys, c0 + kKvAheadKeys + kW);
    const int64_t lo = c0 > U0 ? c0 : U0, hi = c0 + kW - 1 < U1 ? c0 + kW - 1 : U1;
    widen_rows(a, a.v, lo, hi, V + (lo - c0) * dp, dp);
    for (int64_t tl = c0 > p_first ? c0 - p_first : 0; tl < a.nt; ++tl) {
      const int64_t pos = p_first + tl, j0 = first_key(a, pos);
      const int64_t js = j0 > c0 ? j0 : c0, je = pos < c0 + kW - 1 ? pos : c0 + kW - 1;
      if (js > je) continue;
      for (int64_t g = 0; g < G; ++g) {
        const int64_t r = tl * G + g;
        pv(O + r * dp, S + r * span + (c0 - base), V, c0, js, je, dp);
      }
    }
  }

  for (int64_t tl = 0; tl < a.nt; ++tl)
    for (int64_t g = 0; g < G; ++g) {
      float* out = a.out + ((a.t0 + tl) * a.n_heads + a.kvh * G + g) * d;
      const float* o = O + (tl * G + g) * dp;
      int64_t c = 0;
      for (; c + kW <= d; c += kW) _mm512_storeu_ps(out + c, _mm512_load_ps(o + c));
      if (c < d) _mm512_mask_storeu_ps(out + c, tail_mask(d - c), _mm512_load_ps(o + c));
    }
}

void f32_to_f16_row(const float* x, uint16_t* y, int64_t n) {
  int64_t i = 0;
  for (; i + 16 <= n; i += 16) {
    const __m256i h = _mm512_cvtps_ph(_mm512_loadu_ps(x + i), _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
    _mm256_storeu_si256(reinterpret_cast<__m256i*>(y + i), h);
  }
  if (i < n) {
    const __mmask16 m = __mmask16((1u << (n - i)) - 1);
    const __m256i h = _mm512_cvtps_ph(_mm512_maskz_loadu_ps(m, x + i), _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
    _mm256_mask_storeu_epi16(y + i, m, h);
  }
}

}  // namespace ms::cpu::avx512
