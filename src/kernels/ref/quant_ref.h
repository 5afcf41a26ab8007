// quant_ref.h — scalar reference for the GGML block formats: the numerical
// specification of dequantization, quantization and quantized dot products.
// The SIMD kernels in kernels/cpu must reproduce these results: bit-exactly
// for dequantization, activation quantization and the integer parts of dot
// products; the float part of a dot product is specified below so that the
// fast paths (which keep one accumulator per output, updated block by block)
// reproduce it bit-for-bit as well.
//
// Activations. Quantized weights are multiplied with activations quantized to
// 8 bits, as the formats are meant to be run:
//   legacy weights (Q8_0 Q4_0 Q4_1 Q5_0 Q5_1) -> ActFormat::Q8_32, blocks of 32;
//   K weights (Q4_K Q5_K Q6_K Q8_K)          -> ActFormat::Q8_256, blocks of 256.
// Per block, with a = max|x| (all scales 0 when a = 0), as llama.cpp's x86
// build quantizes them, so that answers match llama.cpp's on its own files:
//   Q8_32 (its block_q8_0):  id = 127 / a,  d = f16(a / 127) (the scale is stored as f16;
//                            a / 127 itself where f16 would overflow or flush to 0);
//   Q8_256 (its block_q8_K): id = 127 / a,  d = 1 / id        (float32);
//   q[i] = round-half-even(x[i] * id)  (in [-127, 127]);
//   Q8_32 also keeps sum = Σq (int32) per block, Q8_256 keeps bsum = Σq per 16 (int16).
// (ggml's q8_K takes the signed extreme x_m and scales by -127/x_m; that flips
// the signs of q and d together, which leaves every product unchanged.)
//
// Dot product of a weight row with an activation row: one float accumulator,
// updated once per block in block order with fused multiply-adds:
//   Q8_0/Q4_0/Q5_0:  acc = fma((float)isum, dw*da, acc)       isum = Σ wq[i]*q[i] (wq signed)
//   Q4_1/Q5_1:       acc = fma((float)isum, dw*da, acc); acc = fma(m, da*(float)sum, acc)
//   Q4_K/Q5_K:       isum = Σ_j sc_j Σ_i wq*q ;  msum = Σ_j m_j (bsum[2j]+bsum[2j+1])
//                    acc = fma((float)isum, d*da, acc); acc = fma(-(float)msum, dmin*da, acc)
//   Q6_K:            isum = Σ_j sc_j Σ_i (wq-32)*q  (16 sub-blocks of 16)
//                    acc = fma((float)isum, d*da, acc)
//   Q8_K:            acc = fma((float)isum, dw*da, acc)
// (ggml's scalar path does the same integer work and rounds the multiply and
// add separately; we fuse them so that SIMD lanes can reproduce it exactly.)
#pragma once
#include <cstdint>

#include "core/dtype.h"
#include "core/tensor.h"
#include "kernels/act_format.h"

namespace ms::ref {

// ActFormat, act_format(), act_block() and ActRow: kernels/act_format.h.
using ops::act_block;
using ops::act_format;
using ops::ActFormat;
using ops::ActRow;


// The scales of one activation block of format f (Q8_32 or Q8_256) whose
// largest magnitude is amax: q = round-half-even(x * id), value = q * d.
struct ActScale {
  float d, id;
};
ActScale act_scale(ActFormat f, float amax);

// Quantizes one activation row (cols a multiple of the block). `sum` (Q8_32) or
// `bsum` (Q8_256) receive the block sums.
void quantize_act_row(ActFormat f, const float* x, int64_t cols, int8_t* qs, float* d,
                      int32_t* sum, int16_t* bsum);

// Dot product of one stored weight row (wtype quantized) with a quantized
// activation row, as specified above.
float vec_dot(DType wtype, const void* wrow, const ActRow& a, int64_t cols);

// Y[i][r] = dot(W row r, quantize(X row i)) for quantized W.
void matmul_q(const MatView& W, const float* X, int64_t ldx, int64_t n, float* Y, int64_t ldy);

// Converts one row of n elements of any type except I32 to float32
// (bit-exact to the format definition, the same float operations as ggml).
void dequantize_row(DType t, const void* src, float* dst, int64_t n);

// Quantizes one row to t (n a multiple of the block size). Legacy types follow
// llama.cpp's reference quantizers exactly; Q4_K/Q5_K/Q6_K search the block
// scales/mins to minimise a weighted squared error (see quantize_kquant_ref.cpp).
// Float types (F32/F16/BF16) are converted with round-to-nearest-even.
void quantize_row(DType t, const float* src, void* dst, int64_t n);

// K-quant quantizers (also used by quantize_row).
void quantize_row_q4_K(const float* x, void* dst, int64_t n);
void quantize_row_q5_K(const float* x, void* dst, int64_t n);
void quantize_row_q6_K(const float* x, void* dst, int64_t n);

// Decodes the 6-bit scale and min of sub-block j (0..7) from Q4_K/Q5_K scales[12].
inline void kquant_scale_min(int j, const uint8_t* s, uint8_t* sc, uint8_t* m) {
  if (j < 4) {
    *sc = s[j] & 63;
    *m = s[j + 4] & 63;
  } else {
    *sc = uint8_t((s[j + 4] & 0xF) | ((s[j - 4] >> 6) << 4));
    *m = uint8_t((s[j + 4] >> 4) | ((s[j] >> 6) << 4));
  }
}
// Packs 8 six-bit scales and mins into scales[12] (inverse of kquant_scale_min).
void kquant_pack_scales(const uint8_t* sc, const uint8_t* m, uint8_t* s);

}  // namespace ms::ref
