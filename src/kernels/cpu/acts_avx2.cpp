// acts_avx2.cpp — AVX2 activation quantization (bit-exact to
// ref::quantize_act_row) and the quantized matmul entry point.
#include <immintrin.h>

#include <cstring>

#include <cstdint>

#include "kernels/cpu/cpu_kernels.h"
#include "kernels/cpu/page_prefetch.h"
#include "kernels/ref/quant_ref.h"

namespace ms::cpu::avx2 {

void qmatmul_legacy(const WeightsRef& W, const ActsRef& A, int64_t r0, int64_t r1, float* Y, int64_t ldy);
void qmatmul_kquant(const WeightsRef& W, const ActsRef& A, int64_t r0, int64_t r1, float* Y, int64_t ldy);

namespace {

inline float hmax(__m256 v) {
  __m128 m = _mm_max_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
  m = _mm_max_ps(m, _mm_movehl_ps(m, m));
  m = _mm_max_ss(m, _mm_movehdup_ps(m));
  return _mm_cvtss_f32(m);
}

inline int32_t hsum_i32(__m256i v) {
  __m128i s = _mm_add_epi32(_mm256_castsi256_si128(v), _mm256_extracti128_si256(v, 1));
  s = _mm_add_epi32(s, _mm_shuffle_epi32(s, 0x4E));
  s = _mm_add_epi32(s, _mm_shuffle_epi32(s, 0xB1));
  return _mm_cvtsi128_si32(s);
}

// Quantizes 32*ng floats (ng groups of 4 vectors) with one scale: writes the
// int8 quants, the per-16 sums into s16[] and returns the scale.
template <ref::ActFormat F>
inline float quant_block(const float* x, int ng, int8_t* qs, int32_t* s16) {
  const __m256 sign = _mm256_set1_ps(-0.0f);
  __m256 amax = _mm256_setzero_ps();
  #pragma GCC unroll 16
  for (int v = 0; v < 4 * ng; ++v) amax = _mm256_max_ps(amax, _mm256_andnot_ps(sign, _mm256_loadu_ps(x + 8 * v)));
  const float m = hmax(amax);
  const ref::ActScale sc = ref::act_scale(F, m);
  const float d = sc.d, id = sc.id;
  const __m256 vid = _mm256_set1_ps(id);
  const __m256i perm = _mm256_setr_epi32(0, 4, 1, 5, 2, 6, 3, 7);
  #pragma GCC unroll 16
  for (int g = 0; g < ng; ++g) {
    __m256i q[4];
    #pragma GCC unroll 16
    for (int v = 0; v < 4; ++v) q[v] = _mm256_cvtps_epi32(_mm256_mul_ps(_mm256_loadu_ps(x + 32 * g + 8 * v), vid));
    s16[2 * g] = hsum_i32(_mm256_add_epi32(q[0], q[1]));
    s16[2 * g + 1] = hsum_i32(_mm256_add_epi32(q[2], q[3]));
    const __m256i p = _mm256_packs_epi16(_mm256_packs_epi32(q[0], q[1]), _mm256_packs_epi32(q[2], q[3]));
    _mm256_storeu_si256(reinterpret_cast<__m256i*>(qs + 32 * g), _mm256_permutevar8x32_epi32(p, perm));
  }
  return d;
}

}  // namespace

void quantize_acts(const float* X, int64_t ldx, int64_t i0, int64_t i1, const ActsRef& A) {
  for (int64_t i = i0; i < i1; ++i) {
    const float* x = X + i * ldx;
    int8_t* qs = A.qs + i * A.qs_stride;
    float* d = A.d + i * A.nblk;
    int32_t s16[16];
    if (A.format == kActQ8_32) {
      int32_t* sum = A.sum + i * A.nblk;
      for (int64_t b = 0; b < A.nblk; ++b) {
        d[b] = quant_block<ref::ActFormat::Q8_32>(x + 32 * b, 1, qs + 32 * b, s16);
        sum[b] = s16[0] + s16[1];
      }
    } else {
      int16_t* bsum = A.bsum + i * (A.cols / 16);
      for (int64_t b = 0; b < A.nblk; ++b) {
        d[b] = quant_block<ref::ActFormat::Q8_256>(x + 256 * b, 8, qs + 256 * b, s16);
        #pragma GCC unroll 16
        for (int v = 0; v < 16; ++v) bsum[16 * b + v] = int16_t(s16[v]);
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
  __m256i a0 = _mm256_setzero_si256(), a1 = a0, a2 = a0, a3 = a0;
  size_t i = 0;
  for (; i + 4 * 32 <= bytes; i += 4 * 32) {
    // Prefetch across 4 KiB pages, which the hardware prefetchers do not,
    // and touch each page 32 KiB ahead to start them there early (as the
    // matmul kernels do: the probe should read as fast as they can).
    for (size_t o = 0; o < 4 * 32; o += 64) _mm_prefetch(reinterpret_cast<const char*>(p + i + 2048 + o), _MM_HINT_T0);
    prefetch_page_ahead(p + i + 32768, 4 * 32);
    a0 = _mm256_add_epi64(a0, _mm256_loadu_si256(reinterpret_cast<const __m256i*>(p + i)));
    a1 = _mm256_add_epi64(a1, _mm256_loadu_si256(reinterpret_cast<const __m256i*>(p + i + 32)));
    a2 = _mm256_add_epi64(a2, _mm256_loadu_si256(reinterpret_cast<const __m256i*>(p + i + 2 * 32)));
    a3 = _mm256_add_epi64(a3, _mm256_loadu_si256(reinterpret_cast<const __m256i*>(p + i + 3 * 32)));
  }
  alignas(64) uint64_t t[4];
  std::memcpy(t, &a0, sizeof t);
  uint64_t s = 0;
  for (const __m256i& a : {a0, a1, a2, a3}) {
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

}  // namespace ms::cpu::avx2
