// vexp_avx512.h — e^x on 16 lanes, shared by the AVX-512 kernels (include only
// from *_avx512.cpp files; internal linkage).
//
// Cephes expf: x = n·ln2 + r with ln2 split in two (exact n·C1), a degree-6
// polynomial in r, and 2^n by VSCALEFPS, which gives +inf past 88.7 and
// subnormals down to 2^-149. Within 2 ulp of libm's expf for x in
// [-104, 89]; callers clamp to what they need. The constants and the range
// are ref/lanes16.h's (its exp16 is this, one lane at a time).
#pragma once
#include <immintrin.h>

#include "kernels/ref/lanes16.h"

namespace ms::cpu::avx512 {
namespace {

inline __m512 exp_in_range(__m512 x) {
  namespace c = ref::cephes;
  const __m512 n = _mm512_roundscale_ps(_mm512_mul_ps(x, _mm512_set1_ps(c::kLog2e)),
                                        _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
  __m512 r = _mm512_fnmadd_ps(n, _mm512_set1_ps(c::kLn2Hi), x);
  r = _mm512_fnmadd_ps(n, _mm512_set1_ps(c::kLn2Lo), r);
  __m512 y = _mm512_set1_ps(c::kP[0]);
#pragma GCC unroll 5
  for (int i = 1; i < 6; ++i) y = _mm512_fmadd_ps(y, r, _mm512_set1_ps(c::kP[i]));
  y = _mm512_fmadd_ps(y, _mm512_mul_ps(r, r), _mm512_add_ps(r, _mm512_set1_ps(1.0f)));
  return _mm512_scalef_ps(y, n);
}

}  // namespace
}  // namespace ms::cpu::avx512
