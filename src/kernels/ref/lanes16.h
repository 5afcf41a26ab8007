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

// Cephes expf's constants, shared by exp16 and the SIMD exp (vexp_*.h), and
// the range every caller clamps x to: below -104, e^x rounds to 0; above 89,
// to +inf.
namespace cephes {
constexpr float kLog2e = 1.44269504088896341f, kLn2Hi = 0.693359375f, kLn2Lo = -2.12194440e-4f;
constexpr float kP[6] = {1.9875691500e-4f, 1.3981999507e-3f, 8.3334519073e-3f,
                         4.1665795894e-2f, 1.6666665459e-1f, 5.0000001201e-1f};
}  // namespace cephes
constexpr float kExpMin = -104.0f, kExpMax = 89.0f;

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

// e^x for x in [kExpMin, kExpMax] (callers clamp), as vexp_avx512.h computes it.
inline float exp16(float x) {
  const float n = std::nearbyint(x * cephes::kLog2e);
  float r = std::fma(-n, cephes::kLn2Hi, x);
  r = std::fma(-n, cephes::kLn2Lo, r);
  float y = cephes::kP[0];
  for (int i = 1; i < 6; ++i) y = std::fma(y, r, cephes::kP[i]);
  y = std::fma(y, r * r, r + 1.0f);
  return std::ldexp(y, int(n));
}

}  // namespace ms::ref
