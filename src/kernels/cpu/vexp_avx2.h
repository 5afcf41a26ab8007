// vexp_avx2.h — e^x on 8 lanes, shared by the AVX2 kernels (include only from
// *_avx2.cpp files; internal linkage).
//
// Cephes expf: x = n·ln2 + r with ln2 split in two (exact n·C1) and a
// degree-6 polynomial in r: e^x = y · 2^n with y in [0.7, 1.5] and n
// returned as a float, for the caller to scale by (its range decides how).
#pragma once
#include <immintrin.h>

namespace ms::cpu::avx2 {
namespace {

inline __m256 exp_poly(__m256 x, __m256& n) {
  n = _mm256_round_ps(_mm256_mul_ps(x, _mm256_set1_ps(1.44269504088896341f)),
                      _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
  __m256 r = _mm256_fnmadd_ps(n, _mm256_set1_ps(0.693359375f), x);
  r = _mm256_fnmadd_ps(n, _mm256_set1_ps(-2.12194440e-4f), r);
  __m256 y = _mm256_set1_ps(1.9875691500e-4f);
  y = _mm256_fmadd_ps(y, r, _mm256_set1_ps(1.3981999507e-3f));
  y = _mm256_fmadd_ps(y, r, _mm256_set1_ps(8.3334519073e-3f));
  y = _mm256_fmadd_ps(y, r, _mm256_set1_ps(4.1665795894e-2f));
  y = _mm256_fmadd_ps(y, r, _mm256_set1_ps(1.6666665459e-1f));
  y = _mm256_fmadd_ps(y, r, _mm256_set1_ps(5.0000001201e-1f));
  return _mm256_fmadd_ps(y, _mm256_mul_ps(r, r), _mm256_add_ps(r, _mm256_set1_ps(1.0f)));
}

// 2^k for integer lanes -126 <= k <= 127, built in the exponent field.
inline __m256 pow2i(__m256i k) {
  return _mm256_castsi256_ps(_mm256_slli_epi32(_mm256_add_epi32(k, _mm256_set1_epi32(127)), 23));
}

}  // namespace
}  // namespace ms::cpu::avx2
