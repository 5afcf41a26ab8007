// int8_probe_avx512.cpp — the int8 dot-product peak of one core: 12
// independent chains of VPDPBUSD zmm (64 multiply-adds each), so neither
// latency nor memory limits it. `moeserve bench` divides prefill's
// multiply-adds by this rate (ops::probe_int8_gmacs).
//
// The loop is one asm block over fixed registers. Written with intrinsics
// and an array of accumulators (as it was up to stop 21), GCC kept the
// array on the stack and every VPDPBUSD waited for a store and a reload:
// the probe read about half the real rate (110 against 232 G multiply-adds/s
// on one core of an AMD EPYC), below the rate prefill itself reached.
#include <cstdint>

#include "kernels/cpu/cpu_kernels.h"

namespace ms::cpu::avx512 {

uint64_t int8_dot_loop(int64_t iters) {
  if (iters <= 0) return 0;
  int64_t n = iters;
  const int32_t a = 0x01020304, b = 0x05060708;
  asm volatile(
      "vpbroadcastd %k1, %%zmm12\n\t"
      "vpbroadcastd %k2, %%zmm13\n\t"
      "vpxord %%zmm0, %%zmm0, %%zmm0\n\t"
      "vmovdqa64 %%zmm0, %%zmm1\n\tvmovdqa64 %%zmm0, %%zmm2\n\tvmovdqa64 %%zmm0, %%zmm3\n\t"
      "vmovdqa64 %%zmm0, %%zmm4\n\tvmovdqa64 %%zmm0, %%zmm5\n\tvmovdqa64 %%zmm0, %%zmm6\n\t"
      "vmovdqa64 %%zmm0, %%zmm7\n\tvmovdqa64 %%zmm0, %%zmm8\n\tvmovdqa64 %%zmm0, %%zmm9\n\t"
      "vmovdqa64 %%zmm0, %%zmm10\n\tvmovdqa64 %%zmm0, %%zmm11\n\t"
      "1:\n\t"
      "vpdpbusd %%zmm13, %%zmm12, %%zmm0\n\tvpdpbusd %%zmm13, %%zmm12, %%zmm1\n\t"
      "vpdpbusd %%zmm13, %%zmm12, %%zmm2\n\tvpdpbusd %%zmm13, %%zmm12, %%zmm3\n\t"
      "vpdpbusd %%zmm13, %%zmm12, %%zmm4\n\tvpdpbusd %%zmm13, %%zmm12, %%zmm5\n\t"
      "vpdpbusd %%zmm13, %%zmm12, %%zmm6\n\tvpdpbusd %%zmm13, %%zmm12, %%zmm7\n\t"
      "vpdpbusd %%zmm13, %%zmm12, %%zmm8\n\tvpdpbusd %%zmm13, %%zmm12, %%zmm9\n\t"
      "vpdpbusd %%zmm13, %%zmm12, %%zmm10\n\tvpdpbusd %%zmm13, %%zmm12, %%zmm11\n\t"
      "dec %0\n\t"
      "jnz 1b\n\t"
      "vzeroupper\n\t"
      : "+r"(n)
      : "r"(a), "r"(b)
      : "xmm0", "xmm1", "xmm2", "xmm3", "xmm4", "xmm5", "xmm6", "xmm7", "xmm8", "xmm9", "xmm10", "xmm11", "xmm12",
        "xmm13", "cc");
  return uint64_t(iters) * 12 * 64;
}

}  // namespace ms::cpu::avx512
