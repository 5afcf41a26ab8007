// vexp_avx512.h — e^x on 16 lanes, shared by the AVX-512 kernels (include only
// from *_avx512.cpp files; internal linkage).
//
// Cephes expf: x = n·ln2 + r with ln2 split in two (exact n·C1), a degree-6
// polynomial in r, and 2^n by VSCALEFPS, which gives +inf past 88.7 and
// subnormals down to 2^-149. Within 2 ulp of libm's expf for x in
// [-104, 89]; callers clamp to what they need.
#pragma once
#include <immintrin.h>

namespace ms::cpu::avx512 {
namespace {

inline __m512 exp_in_range(__m512 x) {
  const __m512 n = _mm512_roundscale_ps(_mm512_mul_ps(x, _mm512_set1_ps(1.44269504088896341f)),
                                        _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
  __m512 r = _mm512_fnmadd_ps(n, _mm512_set1_ps(0.693359375f), x);
  r = _mm512_fnmadd_ps(n, _mm512_set1_ps(-2.12194440e-4f), r);
  __m512 y = _mm512_set1_ps(1.9875691500e-4f);
  y = _mm512_fmadd_ps(y, r, _mm512_set1_ps(1.3981999507e-3f));
  y = _mm512_fmadd_ps(y, r, _mm512_set1_ps(8.3334519073e-3f));
  y = _mm512_fmadd_ps(y, r, _mm512_set1_ps(4.1665795894e-2f));
  y = _mm512_fmadd_ps(y, r, _mm512_set1_ps(1.6666665459e-1f));
  y = _mm512_fmadd_ps(y, r, _mm512_set1_ps(5.0000001201e-1f));
  y = _mm512_fmadd_ps(y, _mm512_mul_ps(r, r), _mm512_add_ps(r, _mm512_set1_ps(1.0f)));
  return _mm512_scalef_ps(y, n);
}

}  // namespace
}  // namespace ms::cpu::avx512
