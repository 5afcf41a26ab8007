// vexp_avx2.h — e^x on 8 lanes, shared by the AVX2 kernels (include only from
// *_avx2.cpp files; internal linkage).
//
// Cephes expf as vexp_avx512.h computes it (constants: ref/lanes16.h), with
// 2^n built in the exponent field in two halves, 2^(n/2) · 2^(n - n/2): the
// first product is exact and the second rounds once, so n from -150 to 128
// gives subnormals, normals and +inf as VSCALEFPS does.
#pragma once
#include <immintrin.h>

#include "kernels/ref/lanes16.h"

namespace ms::cpu::avx2 {
namespace {

// 2^k for integer lanes -126 <= k <= 127, built in the exponent field.
inline __m256 pow2i(__m256i k) {
  return _mm256_castsi256_ps(_mm256_slli_epi32(_mm256_add_epi32(k, _mm256_set1_epi32(127)), 23));
}

// e^x for x in [ref::kExpMin, ref::kExpMax] (callers clamp).
inline __m256 exp_in_range(__m256 x) {
  namespace c = ref::cephes;
  const __m256 n = _mm256_round_ps(_mm256_mul_ps(x, _mm256_set1_ps(c::kLog2e)),
                                   _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
  __m256 r = _mm256_fnmadd_ps(n, _mm256_set1_ps(c::kLn2Hi), x);
  r = _mm256_fnmadd_ps(n, _mm256_set1_ps(c::kLn2Lo), r);
  __m256 y = _mm256_set1_ps(c::kP[0]);
#pragma GCC unroll 5
  for (int i = 1; i < 6; ++i) y = _mm256_fmadd_ps(y, r, _mm256_set1_ps(c::kP[i]));
  y = _mm256_fmadd_ps(y, _mm256_mul_ps(r, r), _mm256_add_ps(r, _mm256_set1_ps(1.0f)));
  const __m256i ni = _mm256_cvtps_epi32(n);    // -150 .. 128
  const __m256i h = _mm256_srai_epi32(ni, 1);  // n/2 rounded down
  return _mm256_mul_ps(_mm256_mul_ps(y, pow2i(h)), pow2i(_mm256_sub_epi32(ni, h)));
}

}  // namespace
}  // namespace ms::cpu::avx2
