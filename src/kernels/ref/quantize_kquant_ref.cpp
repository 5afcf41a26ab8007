// quantize_kquant_ref.cpp — quality quantizers for Q4_K, Q5_K and Q6_K.
//
// These run at load time when a Hugging Face checkpoint is quantized, so they
// trade speed for accuracy. Per super-block of 256 values:
//  1. every sub-block gets a (scale, min) pair — or a signed scale for Q6_K —
//     chosen by searching candidate scales and refitting each candidate's
//     integer assignment by weighted least squares (importance of a value:
//     rms(superblock) + |x| for Q4_K/Q5_K, x^2 for Q6_K);
//  2. the sub-block scales/mins are quantized to 6 bits (8 bits for Q6_K) with a
//     small search for the super-block factor;
//  3. the super-block factors d, dmin are refitted by least squares for the
//     integers chosen, and the values requantized, keeping the best result.
#include <cmath>
#include <cstdint>
#include <cstring>

#include "core/error.h"
#include "core/quant.h"
#include "kernels/ref/quant_ref.h"

namespace ms::ref {

namespace {

// Round half to even without a libm call (the baseline ISA has no ROUNDSS):
// adding 1.5*2^23 leaves the rounded integer in the low mantissa bits.
inline int nearest(float v) {
  if (!(std::fabs(v) < 4194303.0f)) return v > 0 ? (1 << 22) : -(1 << 22);  // out of range or NaN
  const float t = v + 12582912.0f;
  int32_t i;
  std::memcpy(&i, &t, 4);
  return (i & 0x007fffff) - 0x00400000;
}
inline int clampi(int v, int lo, int hi) { return v < lo ? lo : v > hi ? hi : v; }

// Fits x ≈ scale*L - mn (L in [0, nmax], scale >= 0, mn >= 0) minimising Σ w (.)^2.
// Writes L and returns scale; *mn_out receives mn.
float fit_scale_min(int n, int nmax, const float* x, const float* w, uint8_t* L, float* mn_out) {
  float lo = x[0], hi = x[0], sw = 0, sx = 0;
  for (int i = 0; i < n; ++i) {
    lo = std::fmin(lo, x[i]);
    hi = std::fmax(hi, x[i]);
    sw += w[i];
    sx += w[i] * x[i];
  }
  if (lo > 0) lo = 0;
  if (!(hi > lo)) {
    std::memset(L, 0, size_t(n));
    *mn_out = -lo;
    return 0.0f;
  }
  auto error_of = [&](float scale, float off, const uint8_t* q) {
    float e = 0;
    for (int i = 0; i < n; ++i) {
      const float diff = scale * float(q[i]) + off - x[i];
      e += w[i] * diff * diff;
    }
    return e;
  };
  float best_scale = (hi - lo) / float(nmax), best_off = lo;
  const float inv0 = 1.0f / best_scale;
  for (int i = 0; i < n; ++i) L[i] = uint8_t(clampi(nearest((x[i] - lo) * inv0), 0, nmax));
  float best_err = error_of(best_scale, best_off, L);
  uint8_t Laux[QK_K];
  auto try_assignment = [&](const uint8_t* q) {
    float sl = 0, sl2 = 0, sxl = 0;
    for (int i = 0; i < n; ++i) {
      sl += w[i] * q[i];
      sl2 += w[i] * q[i] * q[i];
      sxl += w[i] * q[i] * x[i];
    }
    const float D = sw * sl2 - sl * sl;
    if (!(D > 0)) return false;
    float scale = (sw * sxl - sx * sl) / D;
    float off = (sl2 * sx - sl * sxl) / D;
    if (off > 0) {
      off = 0;
      scale = sl2 > 0 ? sxl / sl2 : 0;
    }
    if (!(scale > 0)) return false;
    const float e = error_of(scale, off, q);
    if (e < best_err) {
      best_err = e;
      best_scale = scale;
      best_off = off;
      std::memcpy(L, q, size_t(n));
      return true;
    }
    return false;
  };
  for (int is = 0; is <= 36; ++is) {
    const float iscale = (float(nmax) - 0.9f + 0.05f * float(is)) / (hi - lo);
    for (int i = 0; i < n; ++i) Laux[i] = uint8_t(clampi(nearest(iscale * (x[i] - lo)), 0, nmax));
    try_assignment(Laux);
  }
  // Alternate assignment and refit until it stops improving.
  for (int it = 0; it < 4; ++it) {
    const float inv = 1.0f / best_scale;
    for (int i = 0; i < n; ++i) Laux[i] = uint8_t(clampi(nearest((x[i] - best_off) * inv), 0, nmax));
    if (!try_assignment(Laux)) break;
  }
  *mn_out = -best_off;
  return best_scale;
}

// Quantizes non-negative values v[0..n) to integers in [0, nmax] with one
// factor, minimising Σ w (v - f*l)^2; returns f.
float fit_positive(int n, int nmax, const float* v, const float* w, uint8_t* L) {
  float mx = 0;
  for (int i = 0; i < n; ++i) mx = std::fmax(mx, v[i]);
  if (!(mx > 0)) {
    std::memset(L, 0, size_t(n));
    return 0.0f;
  }
  float best_f = mx / float(nmax), best_err = INFINITY;
  for (int is = -6; is <= 6; ++is) {
    const float f = mx / (float(nmax) + 0.1f * float(is));
    float slv = 0, sl2 = 0;
    uint8_t q[16];
    for (int i = 0; i < n; ++i) {
      q[i] = uint8_t(clampi(nearest(v[i] / f), 0, nmax));
      slv += w[i] * q[i] * v[i];
      sl2 += w[i] * q[i] * q[i];
    }
    const float fr = sl2 > 0 ? slv / sl2 : f;  // refit the factor for this assignment
    float e = 0;
    for (int i = 0; i < n; ++i) {
      const int l = clampi(nearest(v[i] / fr), 0, nmax);
      const float diff = v[i] - fr * float(l);
      e += w[i] * diff * diff;
    }
    if (e < best_err) {
      best_err = e;
      best_f = fr;
    }
  }
  for (int i = 0; i < n; ++i) L[i] = uint8_t(clampi(nearest(v[i] / best_f), 0, nmax));
  return best_f;
}

// Shared body of Q4_K and Q5_K: returns 6-bit scales/mins, f16 d/dmin and the quants L.
void quantize_superblock_k(const float* x, int nmax, uint8_t* sc, uint8_t* mn, uint16_t* d16,
                           uint16_t* dmin16, uint8_t* L) {
  float sum_x2 = 0;
  for (int l = 0; l < QK_K; ++l) sum_x2 += x[l] * x[l];
  const float av_x = std::sqrt(2.0f * sum_x2 / QK_K);
  float w[QK_K], scales[8], mins[8], sw[8];
  for (int l = 0; l < QK_K; ++l) w[l] = av_x + std::fabs(x[l]);
  for (int j = 0; j < 8; ++j) {
    sw[j] = 0;
    for (int l = 0; l < 32; ++l) sw[j] += w[32 * j + l];
    scales[j] = fit_scale_min(32, nmax, x + 32 * j, w + 32 * j, L + 32 * j, &mins[j]);
  }
  float d = fit_positive(8, 63, scales, sw, sc);
  float dmin = fit_positive(8, 63, mins, sw, mn);

  // Error of sub-block j for scale/min integers s, m (requantizing its L).
  auto sub_err = [&](int j, float dd, float dm, int s, int m, uint8_t* q) {
    const float fs = dd * float(s), fm = dm * float(m);
    const float inv = fs > 0 ? 1.0f / fs : 0.0f;
    float e = 0;
    for (int l = 0; l < 32; ++l) {
      const int i = 32 * j + l;
      const int v = clampi(nearest((x[i] + fm) * inv), 0, nmax);
      q[l] = uint8_t(v);
      const float diff = fs * float(v) - fm - x[i];
      e += w[i] * diff * diff;
    }
    return e;
  };
  auto f16r = [](float v) { return f16_to_f32(f32_to_f16(v)); };
  d = f16r(d);
  dmin = f16r(dmin);
  float errs[8];
  for (int j = 0; j < 8; ++j) errs[j] = sub_err(j, d, dmin, sc[j], mn[j], L + 32 * j);
  uint8_t Lt[32];
  for (int round = 0; round < 3; ++round) {
    // Local search on each sub-block's 6-bit scale and min.
    bool changed = false;
    for (int j = 0; j < 8; ++j)
      for (int ds = -2; ds <= 2; ++ds)
        for (int dm = -2; dm <= 2; ++dm) {
          const int s2 = sc[j] + ds, m2 = mn[j] + dm;
          if ((ds == 0 && dm == 0) || s2 < 0 || s2 > 63 || m2 < 0 || m2 > 63) continue;
          const float e = sub_err(j, d, dmin, s2, m2, Lt);
          if (e < errs[j]) {
            errs[j] = e;
            sc[j] = uint8_t(s2);
            mn[j] = uint8_t(m2);
            std::memcpy(L + 32 * j, Lt, 32);
            changed = true;
          }
        }
    // Refit d, dmin jointly for the chosen integers: x ≈ d*(sc*L) - dmin*mn.
    double a11 = 0, a12 = 0, a22 = 0, b1 = 0, b2 = 0;
    for (int j = 0; j < 8; ++j)
      for (int l = 0; l < 32; ++l) {
        const int i = 32 * j + l;
        const double p = double(sc[j]) * L[i], q = -double(mn[j]);
        a11 += w[i] * p * p;
        a12 += w[i] * p * q;
        a22 += w[i] * q * q;
        b1 += w[i] * p * x[i];
        b2 += w[i] * q * x[i];
      }
    const double det = a11 * a22 - a12 * a12;
    float nd = d, nm = dmin;
    if (a22 > 0 && det > 1e-12 * a11 * a22) {
      nd = f16r(float((b1 * a22 - b2 * a12) / det));
      nm = f16r(float((a11 * b2 - a12 * b1) / det));
    } else if (a11 > 0) {  // no mins in use: refit d alone
      nd = f16r(float((b1 - dmin * a12) / a11));
    }
    if (nd > 0 && nm >= 0 && (nd != d || nm != dmin)) {
      float tot = 0, cur = 0, ne[8];
      uint8_t Ln[QK_K];
      for (int j = 0; j < 8; ++j) {
        ne[j] = sub_err(j, nd, nm, sc[j], mn[j], Ln + 32 * j);
        tot += ne[j];
        cur += errs[j];
      }
      if (tot < cur) {
        d = nd;
        dmin = nm;
        std::memcpy(errs, ne, sizeof errs);
        std::memcpy(L, Ln, QK_K);
        changed = true;
      }
    }
    if (!changed) break;
  }
  *d16 = f32_to_f16(d);
  *dmin16 = f32_to_f16(dmin);
}

// Fits x ≈ s*(L) with L in [-nmax, nmax-1] minimising Σ x^2 (x - s L)^2; returns s (may be negative).
float fit_symmetric(int n, int nmax, const float* x, const float* w, int8_t* L) {
  float amax = 0, mx = 0;
  for (int i = 0; i < n; ++i)
    if (std::fabs(x[i]) > amax) {
      amax = std::fabs(x[i]);
      mx = x[i];
    }
  if (!(amax > 1e-15f)) {
    std::memset(L, 0, size_t(n));
    return 0.0f;
  }
  float best_scale = 0, best = -1;
  int8_t q[16];
  for (int is = -9; is <= 9; ++is) {
    const float iscale = -(float(nmax) + 0.1f * float(is)) / mx;
    float sxl = 0, sl2 = 0;
    for (int i = 0; i < n; ++i) {
      q[i] = int8_t(clampi(nearest(iscale * x[i]), -nmax, nmax - 1));
      sxl += w[i] * x[i] * q[i];
      sl2 += w[i] * q[i] * q[i];
    }
    if (sl2 > 0 && sxl * sxl > best * sl2) {  // maximises the explained energy
      best = sxl * sxl / sl2;
      best_scale = sxl / sl2;
      std::memcpy(L, q, size_t(n));
    }
  }
  return best_scale;
}

}  // namespace

void quantize_row_q4_K(const float* x, void* dst, int64_t n) {
  BlockQ4_K* y = static_cast<BlockQ4_K*>(dst);
  uint8_t L[QK_K], sc[8], mn[8];
  for (int64_t i = 0; i < n / QK_K; ++i, x += QK_K) {
    quantize_superblock_k(x, 15, sc, mn, &y[i].d, &y[i].dmin, L);
    kquant_pack_scales(sc, mn, y[i].scales);
    for (int c = 0; c < 4; ++c)
      for (int l = 0; l < 32; ++l) y[i].qs[32 * c + l] = uint8_t(L[64 * c + l] | (L[64 * c + 32 + l] << 4));
  }
}

void quantize_row_q5_K(const float* x, void* dst, int64_t n) {
  BlockQ5_K* y = static_cast<BlockQ5_K*>(dst);
  uint8_t L[QK_K], sc[8], mn[8];
  for (int64_t i = 0; i < n / QK_K; ++i, x += QK_K) {
    quantize_superblock_k(x, 31, sc, mn, &y[i].d, &y[i].dmin, L);
    kquant_pack_scales(sc, mn, y[i].scales);
    std::memset(y[i].qh, 0, sizeof y[i].qh);
    for (int c = 0; c < 4; ++c)
      for (int l = 0; l < 32; ++l) {
        const int l1 = L[64 * c + l], l2 = L[64 * c + 32 + l];
        y[i].qs[32 * c + l] = uint8_t((l1 & 0xF) | ((l2 & 0xF) << 4));
        y[i].qh[l] |= uint8_t(((l1 >> 4) << (2 * c)) | ((l2 >> 4) << (2 * c + 1)));
      }
  }
}

void quantize_row_q6_K(const float* x, void* dst, int64_t n) {
  BlockQ6_K* y = static_cast<BlockQ6_K*>(dst);
  for (int64_t i = 0; i < n / QK_K; ++i, x += QK_K) {
    float w[QK_K], scales[16];
    int8_t L[QK_K];
    for (int l = 0; l < QK_K; ++l) w[l] = x[l] * x[l];
    float max_scale = 0, amax_scale = 0;
    for (int j = 0; j < 16; ++j) {
      scales[j] = fit_symmetric(16, 32, x + 16 * j, w + 16 * j, L + 16 * j);
      if (std::fabs(scales[j]) > amax_scale) {
        amax_scale = std::fabs(scales[j]);
        max_scale = scales[j];
      }
    }
    std::memset(&y[i], 0, sizeof(BlockQ6_K));
    if (!(amax_scale > 1e-15f)) continue;
    int sc[16];
    const float iscale = -128.0f / max_scale;
    for (int j = 0; j < 16; ++j) sc[j] = clampi(nearest(iscale * scales[j]), -128, 127);
    auto requant = [&](float d, int8_t* q) {
      float e = 0;
      for (int j = 0; j < 16; ++j) {
        const float s = d * float(sc[j]);
        const float inv = s != 0 ? 1.0f / s : 0.0f;
        for (int l = 0; l < 16; ++l) {
          const int k = 16 * j + l;
          const int v = clampi(nearest(x[k] * inv), -32, 31);
          q[k] = int8_t(v);
          const float diff = s * float(v) - x[k];
          e += (w[k] + 1e-30f) * diff * diff;
        }
      }
      return e;
    };
    float d = f16_to_f32(f32_to_f16(1.0f / iscale));
    float best = requant(d, L);
    int8_t Lt[QK_K];
    for (int it = 0; it < 3; ++it) {  // refit d for the chosen integers
      double num = 0, den = 0;
      for (int k = 0; k < QK_K; ++k) {
        const double p = double(sc[k / 16]) * L[k];
        num += (w[k] + 1e-30) * p * x[k];
        den += (w[k] + 1e-30) * p * p;
      }
      if (!(den > 0)) break;
      const float nd = f16_to_f32(f32_to_f16(float(num / den)));
      const float e = requant(nd, Lt);
      if (!(e < best)) break;
      best = e;
      d = nd;
      std::memcpy(L, Lt, QK_K);
    }
    y[i].d = f32_to_f16(d);
    for (int j = 0; j < 16; ++j) y[i].scales[j] = int8_t(sc[j]);
    for (int h = 0; h < 2; ++h) {
      uint8_t* ql = y[i].ql + 64 * h;
      uint8_t* qh = y[i].qh + 32 * h;
      const int8_t* Lh = L + 128 * h;
      for (int l = 0; l < 32; ++l) {
        const int q1 = Lh[l] + 32, q2 = Lh[l + 32] + 32, q3 = Lh[l + 64] + 32, q4 = Lh[l + 96] + 32;
        ql[l] = uint8_t((q1 & 0xF) | ((q3 & 0xF) << 4));
        ql[l + 32] = uint8_t((q2 & 0xF) | ((q4 & 0xF) << 4));
        qh[l] = uint8_t((q1 >> 4) | ((q2 >> 4) << 2) | ((q3 >> 4) << 4) | ((q4 >> 4) << 6));
      }
    }
  }
}

}  // namespace ms::ref
