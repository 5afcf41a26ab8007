// int8_probe_avx2.cpp — the int8 dot-product peak of one core at the AVX2
// level, as its quantized kernels multiply: VEX VPDPBUSD ymm where the CPU
// has AVX-VNNI, else VPMADDUBSW + VPMADDWD + VPADDD (32 multiply-adds per
// step either way), in 12 independent chains.
#include <immintrin.h>

#include <cstdint>

#include "kernels/cpu/cpu_kernels.h"

namespace ms::cpu::avx2 {

uint64_t int8_dot_loop(int64_t iters) {
  __m256i acc[12];
  for (int c = 0; c < 12; ++c) acc[c] = _mm256_set1_epi32(c);
  const __m256i a = _mm256_set1_epi32(0x01020304), b = _mm256_set1_epi32(0x05060708), one = _mm256_set1_epi16(1);
  for (int64_t i = 0; i < iters; ++i) {
    #pragma GCC unroll 12
    for (int c = 0; c < 12; ++c) {
      __m256i p = _mm256_maddubs_epi16(a, b);
      asm volatile("" : "+x"(p));  // one product per chain and step, not hoisted
      acc[c] = _mm256_add_epi32(acc[c], _mm256_madd_epi16(p, one));
    }
  }
  __m256i s = acc[0];
  for (int c = 1; c < 12; ++c) s = _mm256_add_epi32(s, acc[c]);
  alignas(32) int32_t t[8];
  _mm256_store_si256(reinterpret_cast<__m256i*>(t), s);
  volatile int32_t sink = t[0];
  (void)sink;
  return uint64_t(iters) * 12 * 32;
}

__attribute__((target("avxvnni"))) uint64_t int8_dot_loop_vnni(int64_t iters) {
  __m256i acc[12];
  for (int c = 0; c < 12; ++c) acc[c] = _mm256_set1_epi32(c);
  const __m256i a = _mm256_set1_epi32(0x01020304), b = _mm256_set1_epi32(0x05060708);
  for (int64_t i = 0; i < iters; ++i) {
    #pragma GCC unroll 12
    for (int c = 0; c < 12; ++c) acc[c] = _mm256_dpbusd_avx_epi32(acc[c], a, b);
  }
  __m256i s = acc[0];
  for (int c = 1; c < 12; ++c) s = _mm256_add_epi32(s, acc[c]);
  alignas(32) int32_t t[8];
  _mm256_store_si256(reinterpret_cast<__m256i*>(t), s);
  volatile int32_t sink = t[0];
  (void)sink;
  return uint64_t(iters) * 12 * 32;
}

}  // namespace ms::cpu::avx2
