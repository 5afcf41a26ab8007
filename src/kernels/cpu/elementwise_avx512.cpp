// elementwise_avx512.cpp — SwiGLU's elementwise step with AVX-512.
//
// silu(g)·u = g / (1 + e^-g) · u, 16 lanes at a time. e^x is Cephes' expf
// (x = n·ln2 + r with ln2 split in two, a degree-6 polynomial in r, 2^n by
// VSCALEFPS, which also gives +inf past 88.7 and subnormals below -87), within
// 2 ulp of libm's; the division is IEEE. Against the scalar reference
// (ref::silu_mul) each output is within a few ulp (tests/kernels).
#include <immintrin.h>

#include <cstdint>

#include "kernels/cpu/cpu_kernels.h"

namespace ms::cpu::avx512 {
namespace {

__m512 exp_any(__m512 x) {
  // Beyond these, e^x is +inf or 0 whatever r is (NaN lanes: see silu_mul).
  x = _mm512_min_ps(_mm512_max_ps(x, _mm512_set1_ps(-104.0f)), _mm512_set1_ps(89.0f));
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

__m512 silu_mul16(__m512 g, __m512 u) {
  const __m512 e = exp_any(_mm512_sub_ps(_mm512_setzero_ps(), g));
  // g / (1 + e): a NaN g stays NaN through the division (the clamp above
  // only touched e).
  return _mm512_mul_ps(_mm512_div_ps(g, _mm512_add_ps(_mm512_set1_ps(1.0f), e)), u);
}

}  // namespace

void silu_mul(const float* gate, const float* up, int64_t n, float* out) {
  int64_t i = 0;
  for (; i + 16 <= n; i += 16)
    _mm512_storeu_ps(out + i, silu_mul16(_mm512_loadu_ps(gate + i), _mm512_loadu_ps(up + i)));
  if (i < n) {
    const __mmask16 m = __mmask16((1u << (n - i)) - 1);
    _mm512_mask_storeu_ps(out + i, m, silu_mul16(_mm512_maskz_loadu_ps(m, gate + i), _mm512_maskz_loadu_ps(m, up + i)));
  }
}

}  // namespace ms::cpu::avx512
