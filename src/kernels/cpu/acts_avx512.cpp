// acts_avx512.cpp — AVX-512 activation quantization (bit-exact to
// ref::quantize_act_row) and the quantized matmul entry point.
#include <immintrin.h>

#include <cstring>

#include <cstdint>

#include "kernels/cpu/cpu_kernels.h"
#include "kernels/cpu/page_prefetch.h"
#include "kernels/ref/quant_ref.h"

namespace ms::cpu::avx512 {

void qmatmul_legacy(const WeightsRef& W, const ActsRef& A, int64_t r0, int64_t r1, float* Y, int64_t ldy);
void qmatmul_kquant(const WeightsRef& W, const ActsRef& A, int64_t r0, int64_t r1, float* Y, int64_t ldy);

namespace {

// Quantizes `nv` vectors of 16 floats sharing one scale; returns the scale and
// leaves the int32 quants in q[].
template <ref::ActFormat F>
inline float quant_block(const float* x, int nv, __m512i* q) {
  __m512 amax = _mm512_setzero_ps();
  #pragma GCC unroll 16
  for (int v = 0; v < nv; ++v) amax = _mm512_max_ps(amax, _mm512_abs_ps(_mm512_loadu_ps(x + 16 * v)));
  const float m = _mm512_reduce_max_ps(amax);
  const ref::ActScale sc = ref::act_scale(F, m);
  const float d = sc.d, id = sc.id;
  const __m512 vid = _mm512_set1_ps(id);
  #pragma GCC unroll 16
  for (int v = 0; v < nv; ++v) q[v] = _mm512_cvtps_epi32(_mm512_mul_ps(_mm512_loadu_ps(x + 16 * v), vid));
  return d;
}

}  // namespace

void quantize_acts(const float* X, int64_t ldx, int64_t i0, int64_t i1, const ActsRef& A) {
  for (int64_t i = i0; i < i1; ++i) {
    const float* x = X + i * ldx;
    int8_t* qs = A.qs + i * A.qs_stride;
    float* d = A.d + i * A.nblk;
    if (A.format == kActQ8_32) {
      int32_t* sum = A.sum + i * A.nblk;
      for (int64_t b = 0; b < A.nblk; ++b) {
        __m512i q[2];
        d[b] = quant_block<ref::ActFormat::Q8_32>(x + 32 * b, 2, q);
        _mm_storeu_si128(reinterpret_cast<__m128i*>(qs + 32 * b), _mm512_cvtsepi32_epi8(q[0]));
        _mm_storeu_si128(reinterpret_cast<__m128i*>(qs + 32 * b + 16), _mm512_cvtsepi32_epi8(q[1]));
        sum[b] = _mm512_reduce_add_epi32(_mm512_add_epi32(q[0], q[1]));
      }
    } else {
      int16_t* bsum = A.bsum + i * (A.cols / 16);
      for (int64_t b = 0; b < A.nblk; ++b) {
        __m512i q[16];
        d[b] = quant_block<ref::ActFormat::Q8_256>(x + 256 * b, 16, q);
        #pragma GCC unroll 16
        for (int v = 0; v < 16; ++v) {
          _mm_storeu_si128(reinterpret_cast<__m128i*>(qs + 256 * b + 16 * v), _mm512_cvtsepi32_epi8(q[v]));
          bsum[16 * b + v] = int16_t(_mm512_reduce_add_epi32(q[v]));
        }
      }
    }
  }
}

bool has_q(DType t) {
  switch (t) {
    case DType::Q8_0:
    case DType::Q4_0:
    case DType::Q4_1:
    case DType::Q5_0:
    case DType::Q5_1:
    case DType::Q4_K:
    case DType::Q5_K:
    case DType::Q6_K: return true;
    default: return false;
  }
}

void matmul_q(const WeightsRef& W, const ActsRef& A, int64_t r0, int64_t r1, float* Y, int64_t ldy) {
  if (A.format == kActQ8_32)
    qmatmul_legacy(W, A, r0, r1, Y, ldy);
  else
    qmatmul_kquant(W, A, r0, r1, Y, ldy);
}

uint64_t read_sum(const uint8_t* p, size_t bytes) {
  __m512i a0 = _mm512_setzero_si512(), a1 = a0, a2 = a0, a3 = a0;
  size_t i = 0;
  for (; i + 4 * 64 <= bytes; i += 4 * 64) {
    // Prefetch across 4 KiB pages, which the hardware prefetchers do not,
    // and touch each page 32 KiB ahead to start them there early (as the
    // matmul kernels do: the probe should read as fast as they can).
    for (size_t o = 0; o < 4 * 64; o += 64) _mm_prefetch(reinterpret_cast<const char*>(p + i + 2048 + o), _MM_HINT_T0);
    prefetch_page_ahead(p + i + 32768, 4 * 64);
    a0 = _mm512_add_epi64(a0, _mm512_loadu_si512((p + i)));
    a1 = _mm512_add_epi64(a1, _mm512_loadu_si512((p + i + 64)));
    a2 = _mm512_add_epi64(a2, _mm512_loadu_si512((p + i + 2 * 64)));
    a3 = _mm512_add_epi64(a3, _mm512_loadu_si512((p + i + 3 * 64)));
  }
  alignas(64) uint64_t t[8];
  std::memcpy(t, &a0, sizeof t);
  uint64_t s = 0;
  for (const __m512i& a : {a0, a1, a2, a3}) {
    std::memcpy(t, &a, sizeof t);
    for (uint64_t x : t) s += x;
  }
  for (; i + 8 <= bytes; i += 8) {
    uint64_t v;
    std::memcpy(&v, p + i, 8);
    s += v;
  }
  for (; i < bytes; ++i) s += p[i];
  return s;
}

}  // namespace ms::cpu::avx512
