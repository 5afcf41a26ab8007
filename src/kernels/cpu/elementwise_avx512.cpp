// elementwise_avx512.cpp — SwiGLU's elementwise step with AVX-512.
//
// silu(g)·u = g / (1 + e^-g) · u, 16 lanes at a time, e^x as in
// vexp_avx512.h (within 2 ulp of libm's), the division IEEE: bit-identical
// to the scalar reference ref::silu_mul (tests/kernels).
#include <immintrin.h>

#include <cstdint>

#include "kernels/cpu/cpu_kernels.h"
#include "kernels/cpu/vexp_avx512.h"

namespace ms::cpu::avx512 {
namespace {

__m512 exp_any(__m512 x) {
  // Beyond these, e^x is +inf or 0 whatever r is (NaN lanes: see silu_mul16).
  return exp_in_range(_mm512_min_ps(_mm512_max_ps(x, _mm512_set1_ps(ref::kExpMin)), _mm512_set1_ps(ref::kExpMax)));
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
