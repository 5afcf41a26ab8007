// dispatch.h — the one place the kernel set is chosen. CPU features are read
// once (core/cpu_features.h, capped by MOESERVE_ISA) and select one table of
// function pointers; ops.cpp, attention.cpp and repack.cpp call through it
// and never test the ISA themselves. Internal to the kernels library.
//
// The scalar table points at wrappers of the reference (kernels/ref), so a
// caller has one path whatever the level. Entries that are null have no
// kernel at that level: `attention` (the scalar level runs
// ref::paged_attention over the whole call, not per work item) and
// `matmul_f_argmax` below AVX-512 (ops computes the outputs, then the argmax).
#pragma once
#include <cstddef>
#include <cstdint>

#include "core/dtype.h"
#include "kernels/cpu/attention_cpu.h"
#include "kernels/cpu/cpu_kernels.h"

namespace ms::cpu {

enum class Isa : uint8_t { Scalar, Avx2, Avx512 };

struct KernelTable {
  Isa isa;
  const char* name;  // "scalar", "avx2", "avx512" (ops::isa_name)
  bool panels;       // reads ops::repack_panels matrices
  // matmul_q's quantized kernels handle type t (else the reference does).
  bool (*has_q)(DType t);
  void (*quantize_acts)(const float* X, int64_t ldx, int64_t i0, int64_t i1, const ActsRef& A);
  void (*matmul_q)(const WeightsRef& W, const ActsRef& A, int64_t r0, int64_t r1, float* Y, int64_t ldy);
  void (*matmul_f)(const WeightsRef& W, const float* X, int64_t ldx, int64_t n, int64_t r0, int64_t r1, float* Y,
                   int64_t ldy);
  uint64_t (*read_sum)(const uint8_t* p, size_t bytes);
  void (*silu_mul)(const float* gate, const float* up, int64_t n, float* out);
  void (*f32_to_f16_row)(const float* x, uint16_t* y, int64_t n);
  void (*attention)(const AttnItem& a);  // null at the scalar level
  // int8 multiply-add peak loop (ops::probe_int8_gmacs); null at the scalar level.
  uint64_t (*int8_dot_loop)(int64_t iters);
  // The greedy argmax of a float matmul without its outputs
  // (avx512::matmul_f_argmax); null below AVX-512.
  bool (*matmul_f_argmax)(const WeightsRef& W, const float* X, int64_t ldx, int64_t n, int64_t r0, int64_t r1,
                          float* best_v, int32_t* best_i) = nullptr;
};

// The table of the best level this CPU (and MOESERVE_ISA) allows, chosen on
// first use. One process runs one kernel set.
const KernelTable& kernels();
// The table of a given level, or null if the CPU lacks it (tests, benchmarks).
const KernelTable* kernels_at(Isa level);

}  // namespace ms::cpu
