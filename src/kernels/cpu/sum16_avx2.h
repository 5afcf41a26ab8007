// sum16_avx2.h — a 16-lane sum (ref/lanes16.h) held in two AVX2 halves, lo
// (lanes 0-7) and hi (8-15), reduced by the tree of ref::tree16 and
// _mm512_reduce_add_ps: l + (l+8), then 4, 2, 1 apart. Include only from
// *_avx2.cpp files (internal linkage).
#pragma once
#include <immintrin.h>

namespace ms::cpu::avx2 {
namespace {

inline float hsum16(__m256 lo, __m256 hi) {
  const __m256 t = _mm256_add_ps(lo, hi);                                          // l + (l+8)
  __m128 s = _mm_add_ps(_mm256_castps256_ps128(t), _mm256_extractf128_ps(t, 1));  // 4 apart
  s = _mm_add_ps(s, _mm_movehl_ps(s, s));                                          // 2 apart
  s = _mm_add_ss(s, _mm_movehdup_ps(s));                                           // 1 apart
  return _mm_cvtss_f32(s);
}

}  // namespace
}  // namespace ms::cpu::avx2
