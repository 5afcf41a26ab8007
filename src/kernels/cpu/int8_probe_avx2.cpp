// int8_probe_avx2.cpp — the int8 dot-product peak of one core at the AVX2
// level, as its quantized kernels multiply: VEX VPDPBUSD ymm where the CPU
// has AVX-VNNI, else VPMADDUBSW + VPMADDWD + VPADDD (32 multiply-adds per
// step either way), in 12 independent chains.
//
// Each loop is one asm block over fixed registers, so that no accumulator
// lives in memory (see int8_probe_avx512.cpp: with intrinsics GCC kept them
// on the stack and the probe read about half the real rate).
#include <cstdint>

#include "kernels/cpu/cpu_kernels.h"

namespace ms::cpu::avx2 {

// ymm12 = a, ymm13 = b (bytes), ymm14 = 16-bit ones; ymm0..11 the chains.
#define MS_PROBE_SETUP                                                                                  \
  "vmovd %k1, %%xmm12\n\tvpbroadcastd %%xmm12, %%ymm12\n\t"                                             \
  "vmovd %k2, %%xmm13\n\tvpbroadcastd %%xmm13, %%ymm13\n\t"                                             \
  "vpcmpeqw %%ymm14, %%ymm14, %%ymm14\n\tvpsrlw $15, %%ymm14, %%ymm14\n\t"                               \
  "vpxor %%ymm0, %%ymm0, %%ymm0\n\tvmovdqa %%ymm0, %%ymm1\n\tvmovdqa %%ymm0, %%ymm2\n\t"                \
  "vmovdqa %%ymm0, %%ymm3\n\tvmovdqa %%ymm0, %%ymm4\n\tvmovdqa %%ymm0, %%ymm5\n\tvmovdqa %%ymm0, %%ymm6\n\t" \
  "vmovdqa %%ymm0, %%ymm7\n\tvmovdqa %%ymm0, %%ymm8\n\tvmovdqa %%ymm0, %%ymm9\n\tvmovdqa %%ymm0, %%ymm10\n\t" \
  "vmovdqa %%ymm0, %%ymm11\n\t"
#define MS_PROBE_CLOBBERS                                                                                   \
  "xmm0", "xmm1", "xmm2", "xmm3", "xmm4", "xmm5", "xmm6", "xmm7", "xmm8", "xmm9", "xmm10", "xmm11", "xmm12", \
      "xmm13", "xmm14", "xmm15", "cc"
// One step of chain R: a product of a and b (ymm15, renamed each time), its
// pairs summed into 32-bit lanes, added to the chain.
#define MS_PROBE_STEP(R) \
  "vpmaddubsw %%ymm13, %%ymm12, %%ymm15\n\tvpmaddwd %%ymm14, %%ymm15, %%ymm15\n\tvpaddd %%ymm15, %%ymm" #R ", %%ymm" #R "\n\t"
#define MS_PROBE_VNNI(R) "%{vex%} vpdpbusd %%ymm13, %%ymm12, %%ymm" #R "\n\t"

// The loop: 12 steps, one per chain, `iters` times (none for iters <= 0:
// it counts down to zero). The multiply-adds it ran: 32 per step.
#define MS_PROBE_LOOP(S)                                                                                        \
  if (iters <= 0) return 0;                                                                                     \
  int64_t n = iters;                                                                                            \
  const int32_t a = 0x01020304, b = 0x05060708;                                                                 \
  asm volatile(MS_PROBE_SETUP "1:\n\t" S(0) S(1) S(2) S(3) S(4) S(5) S(6) S(7) S(8) S(9) S(10) S(11)               \
               "dec %0\n\tjnz 1b\n\tvzeroupper\n\t"                                                              \
               : "+r"(n)                                                                                        \
               : "r"(a), "r"(b)                                                                                 \
               : MS_PROBE_CLOBBERS);                                                                            \
  return uint64_t(iters) * 12 * 32

uint64_t int8_dot_loop(int64_t iters) { MS_PROBE_LOOP(MS_PROBE_STEP); }

__attribute__((target("avxvnni"))) uint64_t int8_dot_loop_vnni(int64_t iters) { MS_PROBE_LOOP(MS_PROBE_VNNI); }

#undef MS_PROBE_SETUP
#undef MS_PROBE_CLOBBERS
#undef MS_PROBE_STEP
#undef MS_PROBE_VNNI
#undef MS_PROBE_LOOP

}  // namespace ms::cpu::avx2
