// attention_avx2.cpp — paged attention with AVX2 (FMA, F16C).
//
// The same algorithm as attention_avx512.cpp (read its design note) with
// 8-lane vectors and keys in chunks of 8 aligned to the absolute key index,
// and bit-identical to it: what the AVX-512 kernel keeps in 16 lanes (each
// dot product's partial sums, lane l: terms c ≡ l mod 16; a row's Σe, lane
// l: keys j ≡ l mod 16) is kept here as two 8-lane halves, lo and hi, added
// lane-wise first and then reduced by the rest of the same tree
// (sum16_avx2.h); e^x is the same polynomial, rounded as VSCALEFPS rounds
// (vexp_avx2.h). p·V is accumulated with FMAs in ascending key order. Rows
// are head_dim rounded up to 16, zero padded, as there (zeros add nothing to
// a sum), so any head_dim gives the same bits.
#include <immintrin.h>

#include <cstdint>
#include <cstring>

#include "kernels/cpu/attention_cpu.h"
#include "kernels/cpu/sum16_avx2.h"
#include "kernels/cpu/vexp_avx2.h"

namespace ms::cpu::avx2 {
namespace {

constexpr int64_t kW = 8;  // lanes, keys per chunk

int64_t first_key(const AttnItem& a, int64_t pos) {
  const int64_t j0 = a.window > 0 ? pos - a.window + 1 : 0;
  return j0 > 0 ? j0 : 0;
}

// All-ones lanes i of chunk c0 with c0 + i outside [j0, pos].
__m256 outside_mask(int64_t c0, int64_t j0, int64_t pos) {
  const __m256i j = _mm256_add_epi32(_mm256_set1_epi32(int32_t(c0)), _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7));
  const __m256i out = _mm256_or_si256(_mm256_cmpgt_epi32(_mm256_set1_epi32(int32_t(j0)), j),
                                      _mm256_cmpgt_epi32(j, _mm256_set1_epi32(int32_t(pos))));
  return _mm256_castsi256_ps(out);
}

// The first n (may be <= 0 or >= 8) of 8 floats at p, zeros after.
__m256 load_part(const float* p, int64_t n) {
  if (n >= kW) return _mm256_loadu_ps(p);
  const __m256i lanes = _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7);
  return _mm256_maskload_ps(p, _mm256_cmpgt_epi32(_mm256_set1_epi32(int32_t(n > 0 ? n : 0)), lanes));
}

// Widens the cache row at element offset off (head_dim values) into dst[dp], zero padded.
void widen_row(const AttnItem& a, const void* pool, int64_t off, float* dst, int64_t dp) {
  const int64_t d = a.head_dim;
  int64_t c = 0;
  if (a.f16) {
    const uint16_t* s = static_cast<const uint16_t*>(pool) + off;
    for (; c + kW <= d; c += kW)
      _mm256_store_ps(dst + c, _mm256_cvtph_ps(_mm_loadu_si128(reinterpret_cast<const __m128i*>(s + c))));
    for (; c < dp; ++c) dst[c] = c < d ? _cvtsh_ss(s[c]) : 0.0f;
  } else {
    const float* s = static_cast<const float*>(pool) + off;
    for (; c < dp; c += kW) _mm256_store_ps(dst + c, load_part(s + c, d - c));
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

// a[i] = partial sums of key i (lane l: terms c ≡ l mod 8); returns lane i =
// Σ_l a[i][l], every key summed by the same tree (l + (l+4), then 2 apart, 1 apart).
__m256 reduce8(const __m256* a) {
  __m256 b[4], c[2];
  for (int i = 0; i < 4; ++i)  // b[i]: key 2i in lanes 0-3, key 2i+1 in lanes 4-7
    b[i] = _mm256_add_ps(_mm256_permute2f128_ps(a[2 * i], a[2 * i + 1], 0x20),
                         _mm256_permute2f128_ps(a[2 * i], a[2 * i + 1], 0x31));
  for (int i = 0; i < 2; ++i)  // c[i], half h: key 4i+h (2 lanes), key 4i+2+h (2 lanes)
    c[i] = _mm256_add_ps(_mm256_shuffle_ps(b[2 * i], b[2 * i + 1], 0x44), _mm256_shuffle_ps(b[2 * i], b[2 * i + 1], 0xEE));
  // e lane 4h+m = key 2m+h; permute to lane = key.
  const __m256 e = _mm256_add_ps(_mm256_shuffle_ps(c[0], c[1], 0x88), _mm256_shuffle_ps(c[0], c[1], 0xDD));
  return _mm256_permutevar8x32_ps(e, _mm256_setr_epi32(0, 4, 1, 5, 2, 6, 3, 7));
}

// Lane i: q · K[i] over dp (a multiple of 16; K rows of stride dp): per key,
// 16 partial sums as lo (c mod 16 < 8) and hi halves, then lo + hi (the
// tree's first step) and reduce8 (its other steps).
__m256 dots8(const float* q, const float* K, int64_t dp) {
  __m256 t[kW];
#pragma GCC unroll 2
  for (int i0 = 0; i0 < kW; i0 += 4) {
    __m256 lo[4], hi[4];
#pragma GCC unroll 4
    for (int i = 0; i < 4; ++i) lo[i] = hi[i] = _mm256_setzero_ps();
    for (int64_t c = 0; c < dp; c += 16) {
      const __m256 ql = _mm256_load_ps(q + c), qh = _mm256_load_ps(q + c + 8);
#pragma GCC unroll 4
      for (int i = 0; i < 4; ++i) {
        lo[i] = _mm256_fmadd_ps(ql, _mm256_load_ps(K + (i0 + i) * dp + c), lo[i]);
        hi[i] = _mm256_fmadd_ps(qh, _mm256_load_ps(K + (i0 + i) * dp + c + 8), hi[i]);
      }
    }
#pragma GCC unroll 4
    for (int i = 0; i < 4; ++i) t[i0 + i] = _mm256_add_ps(lo[i], hi[i]);
  }
  return reduce8(t);
}

float hmax(__m256 v) {
  __m128 x = _mm_max_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
  x = _mm_max_ps(x, _mm_movehl_ps(x, x));
  return _mm_cvtss_f32(_mm_max_ss(x, _mm_shuffle_ps(x, x, 1)));
}

// e^x for x <= 0, as attention_avx512.cpp's exp_neg (e^-104 underflows to 0).
__m256 exp_neg(__m256 x) { return exp_in_range(_mm256_max_ps(x, _mm256_set1_ps(ref::kExpMin))); }

// o[c .. c+8*NV) += Σ_{j=js..je} p[j - c0] * V[j - c0][c ..]  (keys ascending).
template <int NV>
void pv_block(float* o, const float* p, const float* V, int64_t c0, int64_t js, int64_t je, int64_t d, int64_t c) {
  __m256 acc[NV];
#pragma GCC unroll 8
  for (int i = 0; i < NV; ++i) acc[i] = _mm256_load_ps(o + c + i * kW);
  for (int64_t j = js; j <= je; ++j) {
    const __m256 pj = _mm256_set1_ps(p[j - c0]);
    const float* v = V + (j - c0) * d + c;
#pragma GCC unroll 8
    for (int i = 0; i < NV; ++i) acc[i] = _mm256_fmadd_ps(pj, _mm256_load_ps(v + i * kW), acc[i]);
  }
#pragma GCC unroll 8
  for (int i = 0; i < NV; ++i) _mm256_store_ps(o + c + i * kW, acc[i]);
}

void pv(float* o, const float* p, const float* V, int64_t c0, int64_t js, int64_t je, int64_t d) {
  int64_t c = 0;
  for (; c + 8 * kW <= d; c += 8 * kW) pv_block<8>(o, p, V, c0, js, je, d, c);
  switch ((d - c) / kW) {
    case 7: return pv_block<7>(o, p, V, c0, js, je, d, c);
    case 6: return pv_block<6>(o, p, V, c0, js, je, d, c);
    case 5: return pv_block<5>(o, p, V, c0, js, je, d, c);
    case 4: return pv_block<4>(o, p, V, c0, js, je, d, c);
    case 3: return pv_block<3>(o, p, V, c0, js, je, d, c);
    case 2: return pv_block<2>(o, p, V, c0, js, je, d, c);
    case 1: return pv_block<1>(o, p, V, c0, js, je, d, c);
    default: return;
  }
}

}  // namespace

void attention(const AttnItem& a) {
  const int64_t d = a.head_dim, dp = (d + 15) / 16 * 16, G = a.group, R = a.nt * G;
  const int64_t p_first = a.pos0 + a.t0, p_last = p_first + a.nt - 1;
  const int64_t U0 = first_key(a, p_first), U1 = p_last;  // keys any row of the item reads
  const int64_t base = U0 / kW * kW, span = (U1 + 1 - base + kW - 1) / kW * kW;
  float* Q = a.scratch;     // [R][dp] queries (rounded to f16 for an f16 cache)
  float* O = Q + R * dp;    // [R][dp] output accumulators
  float* K = O + R * dp;    // [8][dp] widened keys of one chunk
  float* V = K + kW * dp;   // [8][dp] widened values of one chunk
  float* S = V + kW * dp;   // [R][span] scores, then probabilities; S[r][j - base]

  for (int64_t tl = 0; tl < a.nt; ++tl)
    for (int64_t g = 0; g < G; ++g) {
      const float* q = a.q + ((a.t0 + tl) * a.n_heads + a.kvh * G + g) * d;
      float* qr = Q + (tl * G + g) * dp;
      for (int64_t c = 0; c < dp; c += kW) {
        __m256 x = load_part(q + c, d - c);
        if (a.f16) x = _mm256_cvtph_ps(_mm256_cvtps_ph(x, _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC));
        _mm256_store_ps(qr + c, x);
        _mm256_store_ps(O + (tl * G + g) * dp + c, _mm256_setzero_ps());
      }
    }

  // 1. Scores, chunk by chunk; keys outside [U0, U1] are zero (never read from the cache).
  const __m256 scale = _mm256_set1_ps(a.scale), neg_inf = _mm256_set1_ps(-__builtin_inff());
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
      const __m256 out = outside_mask(c0, j0, pos);
      for (int64_t g = 0; g < G; ++g) {
        const int64_t r = tl * G + g;
        const __m256 s = _mm256_blendv_ps(_mm256_mul_ps(dots8(Q + r * dp, K, dp), scale), neg_inf, out);
        _mm256_store_ps(S + r * span + (c0 - base), s);
      }
    }
  }

  prefetch_keys(a.v, base, base + kKvAheadKeys);

  // 2. Softmax per row over its chunks (lanes outside the range hold -inf: exp gives 0).
  for (int64_t tl = 0; tl < a.nt; ++tl) {
    const int64_t pos = p_first + tl, j0 = first_key(a, pos), cb = j0 / kW * kW;
    for (int64_t g = 0; g < G; ++g) {
      float* s = S + (tl * G + g) * span;  // s[j - base]
      __m256 mv = neg_inf;
      for (int64_t c0 = cb; c0 <= pos; c0 += kW) mv = _mm256_max_ps(mv, _mm256_load_ps(s + (c0 - base)));
      const __m256 mx = _mm256_set1_ps(hmax(mv));
      __m256 lo = _mm256_setzero_ps(), hi = _mm256_setzero_ps();  // keys j mod 16 < 8, >= 8
      for (int64_t c0 = cb; c0 <= pos; c0 += kW) {
        float* sc = s + (c0 - base);
        const __m256 e = _mm256_andnot_ps(outside_mask(c0, j0, pos), exp_neg(_mm256_sub_ps(_mm256_load_ps(sc), mx)));
        if (c0 & kW)
          hi = _mm256_add_ps(hi, e);
        else
          lo = _mm256_add_ps(lo, e);
        _mm256_store_ps(sc, e);
      }
      const __m256 inv = _mm256_set1_ps(1.0f / hsum16(lo, hi));
      for (int64_t c0 = cb; c0 <= pos; c0 += kW)
        _mm256_store_ps(s + (c0 - base), _mm256_mul_ps(_mm256_load_ps(s + (c0 - base)), inv));
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
      std::memcpy(out, O + (tl * G + g) * dp, size_t(d) * sizeof(float));
    }
}

void f32_to_f16_row(const float* x, uint16_t* y, int64_t n) {
  int64_t i = 0;
  for (; i + 8 <= n; i += 8) {
    const __m128i h = _mm256_cvtps_ph(_mm256_loadu_ps(x + i), _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
    _mm_storeu_si128(reinterpret_cast<__m128i*>(y + i), h);
  }
  for (; i < n; ++i)
    y[i] = uint16_t(_mm_extract_epi16(_mm_cvtps_ph(_mm_set_ss(x[i]), _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC), 0));
}

}  // namespace ms::cpu::avx2
