// int8_probe_avx512.cpp — the int8 dot-product peak of one core: 12
// independent chains of VPDPBUSD zmm (64 multiply-adds each), so neither
// latency nor memory limits it. `moeserve bench` divides prefill's
// multiply-adds by this rate (ops::probe_int8_gmacs).
#include <immintrin.h>

#include <cstdint>

#include "kernels/cpu/cpu_kernels.h"

namespace ms::cpu::avx512 {

uint64_t int8_dot_loop(int64_t iters) {
  __m512i acc[12];
  for (int c = 0; c < 12; ++c) acc[c] = _mm512_set1_epi32(c);
  const __m512i a = _mm512_set1_epi32(0x01020304), b = _mm512_set1_epi32(0x05060708);
  for (int64_t i = 0; i < iters; ++i) {
    #pragma GCC unroll 12
    for (int c = 0; c < 12; ++c) asm volatile("vpdpbusd %2, %1, %0" : "+v"(acc[c]) : "v"(a), "v"(b));
  }
  __m512i s = acc[0];
  for (int c = 1; c < 12; ++c) s = _mm512_add_epi32(s, acc[c]);
  volatile int sink = _mm512_reduce_add_epi32(s);
  (void)sink;
  return uint64_t(iters) * 12 * 64;
}

}  // namespace ms::cpu::avx512
