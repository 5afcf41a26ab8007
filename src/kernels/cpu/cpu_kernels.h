// cpu_kernels.h — interface between ops.cpp and the SIMD kernel files.
//
// The *_avx2.cpp / *_avx512.cpp files are compiled with wider ISAs. They must
// not emit out-of-line copies of inline functions that baseline code also uses
// (the linker could keep the wide copy), so this interface is plain structs of
// pointers and free functions; the kernel files keep their helpers in
// anonymous namespaces and use no inline functions from other headers.
//
// Every quantized kernel computes exactly the ref spec (kernels/ref/quant_ref.h):
// the same integers, and per output one float accumulator updated block by
// block with fused multiply-adds, so results are bit-identical to ref::vec_dot
// whatever the batch size, tiling or thread split.
#pragma once
#include <cstddef>
#include <cstdint>

#include "core/dtype.h"

namespace ms::cpu {

struct WeightsRef {
  DType dtype;
  int64_t rows, cols;
  const uint8_t* data;
  size_t row_stride;
  bool panel16 = false;  // ops::repack_panels layout (read by the AVX2 and AVX-512 kernels)
};

// Activation formats (values of ref::ActFormat).
enum : int { kActNone = 0, kActQ8_32 = 1, kActQ8_256 = 2 };

// Quantized activations, laid out as in ops::QuantizedActs.
struct ActsRef {
  int format;
  int64_t n, cols, nblk, qs_stride;
  int8_t* qs;
  float* d;
  int32_t* sum;   // [n][nblk]      (Q8_32)
  int16_t* bsum;  // [n][cols/16]   (Q8_256)
};

#define MS_CPU_KERNEL_DECLS                                                                           \
  /* Weight types matmul_q handles. */                                                                \
  bool has_q(DType t);                                                                                \
  /* Quantizes rows [i0, i1) of X into A (buffers sized by the caller). */                            \
  void quantize_acts(const float* X, int64_t ldx, int64_t i0, int64_t i1, const ActsRef& A);          \
  /* Y[i][r] for all i < A.n and r in [r0, r1). */                                                    \
  void matmul_q(const WeightsRef& W, const ActsRef& A, int64_t r0, int64_t r1, float* Y, int64_t ldy); \
  /* Float weights (F32/F16/BF16): Y[i][r] for i < n, r in [r0, r1). */                               \
  void matmul_f(const WeightsRef& W, const float* X, int64_t ldx, int64_t n, int64_t r0, int64_t r1,  \
                float* Y, int64_t ldy);                                                               \
  /* Sum of the bytes as 64-bit words (a memory-read probe). */                                     \
  uint64_t read_sum(const uint8_t* p, size_t bytes);                                                  \
  /* out[i] = silu(gate[i]) * up[i], exp by a polynomial (elementwise_*.cpp). */                      \
  void silu_mul(const float* gate, const float* up, int64_t n, float* out);                            \
  /* Runs `iters` steps of independent int8 dot-product chains in registers and */                    \
  /* returns the multiply-adds done: the core's int8 peak (int8_probe_*.cpp). */                        \
  uint64_t int8_dot_loop(int64_t iters);

// Per-thread 64-byte aligned packing buffer of at least `bytes` (grows, never
// shrinks; valid until the thread's next call). Defined in baseline code.
uint8_t* pack_buffer(size_t bytes);

namespace avx512 {
MS_CPU_KERNEL_DECLS
// Float weights, the greedy argmax of each activation row's outputs over
// weight rows [r0, r1) without writing them (an lm_head for greedy decoding):
// merged into best_v[i] / best_i[i] (the larger value; on a tie the smaller
// index; NaN and -inf never taken), the callers' values for i < n kept where
// they win. False, touching nothing, for shapes it does not handle.
// An empty range [r0, r0) does no work: it only answers whether the shape is handled.
bool matmul_f_argmax(const WeightsRef& W, const float* X, int64_t ldx, int64_t n, int64_t r0, int64_t r1,
                     float* best_v, int32_t* best_i);
// Its two ways to the same tokens, for a range r0 < r1 of a shape it handles:
// every output in f32 (the vocabulary lanes, fgemm_avx512.cpp), or bf16
// weights scored against bf16-rounded activations with VDPBF16PS and the
// few entries that could win computed again in f32 (argmax_bf16_avx512.cpp).
void argmax_f32_pass(const WeightsRef& W, const float* X, int64_t ldx, int64_t n, int64_t r0, int64_t r1,
                     float* best_v, int32_t* best_i);
void argmax_bf16_pass(const WeightsRef& W, const float* X, int64_t ldx, int64_t n, int64_t r0, int64_t r1,
                      float* best_v, int32_t* best_i);
// Which one matmul_f_argmax takes for bf16 weights: Bf16Candidates where the
// CPU has AVX512_BF16 and its VDPBF16PS does at least 1.5x the products a
// second of its FMAs (measured once: AMD Zen 4 2x, Intel's cores 1x), unless
// MOESERVE_ARGMAX=f32 or =bf16 says; set_argmax_pass overrides it (tests).
enum class ArgmaxPass { F32, Bf16Candidates };
ArgmaxPass argmax_pass();
void set_argmax_pass(ArgmaxPass p);
// Counts since start (relaxed; for tests and bench): activation rows the bf16
// pass scored, entries it computed again, rows it handed to the f32 pass.
struct Bf16ArgmaxStats {
  uint64_t rows = 0, recomputed = 0, f32_rows = 0;
};
Bf16ArgmaxStats bf16_argmax_stats();
}
// matmul_f_argmax's merge rule, for callers merging its results: (v, i)
// takes the place of (bv, bi) when larger, or equal with a smaller index.
inline bool argmax_beats(float v, int32_t i, float bv, int32_t bi) { return v > bv || (v == bv && i < bi); }
namespace avx2 {
MS_CPU_KERNEL_DECLS
}
// The AVX2 quantized kernels built with AVX-VNNI (VEX VPDPBUSD; the same
// types as avx2::has_q): Y[i][r] for all i < A.n and r in [r0, r1).
namespace avx2 {
uint64_t int8_dot_loop_vnni(int64_t iters);  // the same with VEX VPDPBUSD (AVX-VNNI)
}
namespace avx2vnni {
void matmul_q(const WeightsRef& W, const ActsRef& A, int64_t r0, int64_t r1, float* Y, int64_t ldy);
}

#undef MS_CPU_KERNEL_DECLS

}  // namespace ms::cpu
