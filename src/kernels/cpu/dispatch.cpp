// dispatch.cpp — detection of the kernel level and its table (dispatch.h).
// Baseline code: the scalar entries wrap the reference kernels.
#include "kernels/cpu/dispatch.h"

#include <cstring>

#include "core/cpu_features.h"
#include "core/tensor.h"
#include "kernels/ref/quant_ref.h"
#include "kernels/ref/ref.h"

namespace ms::cpu {

namespace {

MatView mat(const WeightsRef& W) {
  MatView m;
  m.dtype = W.dtype;
  m.rows = W.rows;
  m.cols = W.cols;
  m.data = W.data;
  m.row_stride = W.row_stride;
  m.panel16 = W.panel16;
  return m;
}

ref::ActRow act_row(const ActsRef& A, int64_t i) {
  return {A.qs + i * A.qs_stride, A.d + i * A.nblk, A.format == kActQ8_32 ? A.sum + i * A.nblk : nullptr,
          A.format == kActQ8_256 ? A.bsum + i * (A.cols / 16) : nullptr};
}

// The scalar level: the reference, one row or output at a time.
bool scalar_has_q(DType) { return true; }

void scalar_quantize_acts(const float* X, int64_t ldx, int64_t i0, int64_t i1, const ActsRef& A) {
  for (int64_t i = i0; i < i1; ++i) {
    const ref::ActRow r = act_row(A, i);
    ref::quantize_act_row(ref::ActFormat(A.format), X + i * ldx, A.cols, const_cast<int8_t*>(r.qs),
                          const_cast<float*>(r.d), const_cast<int32_t*>(r.sum), const_cast<int16_t*>(r.bsum));
  }
}

void scalar_matmul_q(const WeightsRef& W, const ActsRef& A, int64_t r0, int64_t r1, float* Y, int64_t ldy) {
  const MatView m = mat(W);
  for (int64_t i = 0; i < A.n; ++i) {
    const ref::ActRow a = act_row(A, i);
    for (int64_t r = r0; r < r1; ++r) Y[i * ldy + r] = ref::vec_dot(m.dtype, m.row(r), a, m.cols);
  }
}

void scalar_matmul_f(const WeightsRef& W, const float* X, int64_t ldx, int64_t n, int64_t r0, int64_t r1, float* Y,
                     int64_t ldy) {
  ref::matmul_float(mat(W).slice_rows(r0, r1 - r0), X, ldx, n, Y + r0, ldy);
}

uint64_t scalar_read_sum(const uint8_t* q, size_t n) {
  uint64_t s = 0;
  for (size_t i = 0; i < n; i += 8) {
    uint64_t v;
    std::memcpy(&v, q + i, 8);
    s += v;
  }
  return s;
}

void scalar_f32_to_f16_row(const float* x, uint16_t* y, int64_t n) {
  for (int64_t i = 0; i < n; ++i) y[i] = f32_to_f16(x[i]);
}

bool has_avx2(const CpuFeatures& f) { return f.avx2 && f.fma && f.f16c; }
bool has_avx512(const CpuFeatures& f) {
  return f.avx512f && f.avx512bw && f.avx512vl && f.avx512dq && f.avx512vnni && has_avx2(f);
}

const KernelTable kScalar{Isa::Scalar,          "scalar",        false,
                          scalar_has_q,         scalar_quantize_acts, scalar_matmul_q,
                          scalar_matmul_f,      scalar_read_sum, ref::silu_mul,
                          scalar_f32_to_f16_row, nullptr, nullptr};

const KernelTable kAvx512{Isa::Avx512,           "avx512",           true,
                          avx512::has_q,         avx512::quantize_acts, avx512::matmul_q,
                          avx512::matmul_f,      avx512::read_sum,   avx512::silu_mul,
                          avx512::f32_to_f16_row, avx512::attention, avx512::int8_dot_loop,
                          avx512::matmul_f_argmax};

// AVX2, with the quantized matmuls of the AVX-VNNI build where the CPU has it.
KernelTable avx2_table(bool vnni) {
  return {Isa::Avx2,        "avx2",           true,
          avx2::has_q,      avx2::quantize_acts, vnni ? avx2vnni::matmul_q : avx2::matmul_q,
          avx2::matmul_f,   avx2::read_sum,   avx2::silu_mul,
          avx2::f32_to_f16_row, avx2::attention, vnni ? avx2::int8_dot_loop_vnni : avx2::int8_dot_loop};
}

}  // namespace

const KernelTable* kernels_at(Isa level) {
  static const KernelTable avx2 = avx2_table(cpu_features().avxvnni);
  const CpuFeatures& f = cpu_features();
  switch (level) {
    case Isa::Avx512: return has_avx512(f) ? &kAvx512 : nullptr;
    case Isa::Avx2: return has_avx2(f) ? &avx2 : nullptr;
    case Isa::Scalar: return &kScalar;
  }
  return nullptr;
}

const KernelTable& kernels() {
  static const KernelTable& t = [&]() -> const KernelTable& {
    for (Isa l : {Isa::Avx512, Isa::Avx2})
      if (const KernelTable* k = kernels_at(l)) return *k;
    return kScalar;
  }();
  return t;
}

}  // namespace ms::cpu
