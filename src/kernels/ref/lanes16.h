// lanes16.h — the summation order and exp of the SIMD float kernels, written
// as plain scalar code, so that the reference (and the scalar path) gives the
// same bits as the AVX2 and AVX-512 kernels.
//
// A sum of many terms is 16 partial sums, lane l taking the terms whose index
// is l mod 16 in order (each product added by one fused multiply-add), reduced
// by a fixed tree: l + (l+8), then 4, 2 and 1 apart — what _mm512_reduce_add_ps
// does, and what the AVX2 kernels do with two 8-lane halves. e^x is Cephes'
// expf: x = n·ln2 + r with ln2 split in two, a degree-6 polynomial in r, and
// y·2^n rounded once (VSCALEFPS, ldexpf here).
#pragma once
#include <cmath>
#include <cstdint>

namespace ms::ref {

// The tree over 16 partial sums p.
inline float tree16(const float* p) {
  float t[8], u[4];
  for (int m = 0; m < 8; ++m) t[m] = p[m] + p[m + 8];
  for (int m = 0; m < 4; ++m) u[m] = t[m] + t[m + 4];
  return (u[0] + u[2]) + (u[1] + u[3]);
}

// Σ_k a[k]·b[k] in the 16-lane order.
inline float dot16(const float* a, const float* b, int64_t n) {
  float p[16] = {};
  for (int64_t k = 0; k < n; ++k) p[k % 16] = std::fma(a[k], b[k], p[k % 16]);
  return tree16(p);
}

// e^x for x in [-104, 89] (callers clamp), as vexp_avx512.h computes it.
inline float exp16(float x) {
  const float n = std::nearbyint(x * 1.44269504088896341f);
  float r = std::fma(-n, 0.693359375f, x);
  r = std::fma(-n, -2.12194440e-4f, r);
  float y = 1.9875691500e-4f;
  y = std::fma(y, r, 1.3981999507e-3f);
  y = std::fma(y, r, 8.3334519073e-3f);
  y = std::fma(y, r, 4.1665795894e-2f);
  y = std::fma(y, r, 1.6666665459e-1f);
  y = std::fma(y, r, 5.0000001201e-1f);
  y = std::fma(y, r * r, r + 1.0f);
  return std::ldexp(y, int(n));
}

}  // namespace ms::ref
