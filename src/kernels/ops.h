// ops.h — the operations the model is built from. Kernels know nothing about
// models: they see matrices, vectors and strides.
//
// Every op has a plain scalar version in kernels/ref (namespace ms::ref, not
// included here: callers see only ops::) that is the numerical specification; the functions here dispatch at run time to
// the fastest implementation the CPU supports (kernels/cpu), and fall back to
// the reference. Tests compare each fast path against ref over awkward shapes.
//
// Numerics: for quantized W, matmul equals ref::vec_dot bit for bit on every
// ISA (integer block sums, then one fma per block per output), so results do
// not depend on the ISA, the batch size n, the row tiling or the number of
// threads. Float W (F32/F16/BF16) is widened exactly and multiplied in f32
// with FMAs: within float rounding of the f32 reference, and also independent
// of the thread count (each output is computed by one thread, same order).
//
// Activation reuse: matmul() quantizes X itself (once per call, in parallel,
// into reused scratch). When several weights share one input — Q, K and V
// projections; an expert's gate and up — call quantize_acts() once and then
// matmul_q() for each weight: the quantized activations are valid for every
// weight type with the same activation format (all legacy types share one,
// all K types another; float types keep a float copy of X).
#pragma once
#include <cstdint>

#include "core/tensor.h"
#include "core/thread_pool.h"
#include "core/aligned.h"
#include "kernels/act_format.h"

namespace ms::ops {

// Y[i][r] = sum_c X[i][c] * W[r][c]  for i < n, r < W.rows.
// X is float32 [n][W.cols] (row stride ldx floats), Y float32 [n][W.rows] (row stride ldy).
// W may be any DType but I32. For quantized W the activations are quantized
// per block to 8 bits as the format is meant to be run (blocks of 32 for the
// legacy formats, 256 for the K formats: kernels/ref/quant_ref.h).
void matmul(const MatView& W, const float* X, int64_t ldx, int64_t n, float* Y, int64_t ldy,
            ThreadPool& pool);

// out[i] = core/argmax.h's greedy_argmax of row i of matmul(W, X) — the same
// token — computed without writing the n x W.rows outputs, for float W where
// the kernels fuse it (AVX-512, 16-bit rows of up to 256 columns, a multiple
// of 16; n >= 8). Returns false, touching nothing, where they do not.
bool matmul_argmax(const MatView& W, const float* X, int64_t ldx, int64_t n, int32_t* out, ThreadPool& pool);

// Activations X [n][cols] prepared for matmuls with weights of one activation
// format (see kernels/ref/quant_ref.h for the quantization). Row i of the
// quantized values starts at qs.data() + i*qs_stride.
struct QuantizedActs {
  ActFormat format = ActFormat::None;
  int64_t n = 0, cols = 0;
  int64_t nblk = 0;       // activation blocks per row (cols/32 or cols/256)
  int64_t qs_stride = 0;  // bytes between rows of qs (a multiple of 64)
  AlignedBuffer<int8_t> qs;     // [n][qs_stride]
  AlignedBuffer<float> d;       // [n][nblk] block scales
  AlignedBuffer<int32_t> sum;   // [n][nblk] Σq per block (Q8_32)
  AlignedBuffer<int16_t> bsum;  // [n][cols/16] Σq per 16 (Q8_256)
  AlignedBuffer<float> x;       // [n][cols] copy of X (float weight types)

  ActRow row(int64_t i) const {
    return {qs.data() + i * qs_stride, d.data() + i * nblk,
            format == ActFormat::Q8_32 ? sum.data() + i * nblk : nullptr,
            format == ActFormat::Q8_256 ? bsum.data() + i * (cols / 16) : nullptr};
  }
  const float* xrow(int64_t i) const { return x.data() + i * cols; }
};

// Prepares X (row stride ldx) for weights of type wtype with `cols` columns.
// Reuses out's buffers. Rows are quantized in parallel on the pool.
void quantize_acts(DType wtype, const float* X, int64_t ldx, int64_t n, int64_t cols, ThreadPool& pool,
                   QuantizedActs* out);
QuantizedActs quantize_acts(DType wtype, const float* X, int64_t ldx, int64_t n, int64_t cols,
                            ThreadPool& pool);
// Y[i][r] = dot(W row r, activation row i) for i < A.n. A must have been made
// for a weight type of W's activation format and A.cols == W.cols (else Error).
void matmul_q(const MatView& W, const QuantizedActs& A, float* Y, int64_t ldy, ThreadPool& pool);
// Several matmul_q as one parallel pass: one fork-join instead of one per
// weight, so the threads' tails do not add up. Each Y as matmul_q computes it.
// Targets may share activations (Q, K and V; an expert's gate and up) or
// each have their own (every expert of a layer over its own tokens: a
// grouped GEMM). Threads take the next rows of any target as they finish, so
// there is one fork-join per pass and no tail per weight.
struct MatTarget {
  const MatView* w;
  float* y;
  int64_t ldy;
  const QuantizedActs* a;  // required (else Error)
};
void matmul_q_many(const MatTarget* targets, int count, ThreadPool& pool);

// Panel layout. The AVX-512 kernels read a quantized matrix 16 rows at a time
// with one row per vector lane (the AVX2 ones 8 rows: each 64-byte vector of
// the layout is two 8-row halves), so in the file's row-major layout they must
// transpose every block on the fly, from 16 separate row streams. For Q8_0,
// Q4_0, Q4_K, Q5_K and Q6_K, repack_panels() stores the matrix once, at load, the way the kernels
// consume it: panel P (rows 16P..16P+15; the last panel repeats its last row)
// is, for Q8_0 / Q4_0, groups of 8 blocks, [8 blocks of vectors][8 blocks of
// 16 f16 scales] (kernels/panel_layout.h), where a block's vectors are (Q8_0)
// 8 x 64 bytes, vector j lane r = qs[4j..4j+3] of row r plus 128, as u8; or
// (Q4_0) 4 x 64 bytes, lane r = qs bytes 4j..4j+3 of row r as stored. Q4_K
// panels are [nb super-blocks][2304 bytes]: the quants as
// [4][8] vectors, lane r of vector (c, j) = qs bytes 32c+4j..+3 of row r, then
// the first 16 header bytes (d, dmin, scales) as 4 vectors of one u32 per row;
// Q5_K panels are [nb][2816 bytes], the same with the 32 qh bytes per row as
// 8 vectors (lane r of vector j = qh bytes 4j..4j+3 of row r) before the header;
// Q6_K panels are [nb][3392 bytes]: per half h the transposes of ql bytes
// 64h.., 64h+32.. and qh bytes 128+32h.., then 5 header words per row (at
// bytes 192..206: scales, d), 1% more than stored.
// The same bytes as the original (rows padded to 16), read as
// one sequential stream, with the arithmetic unchanged: results stay bit for
// bit those of ref::vec_dot.
//
// Whether this machine's kernels use the panel layout for type t
// (MOESERVE_REPACK=0 in the environment turns it off).
bool can_repack(DType t);
// Bytes of the panel layout of a [rows][cols] matrix of type t.
size_t repacked_bytes(DType t, int64_t rows, int64_t cols);
// Writes src (row-major, stored type) to dst in the panel layout and returns
// the view of it (panel16 = true). dst: repacked_bytes(), 64-byte aligned.
MatView repack_panels(const MatView& src, uint8_t* dst, ThreadPool& pool);

// Reads every byte of [p, p + bytes) with all threads of the pool and returns
// a checksum: the memory-bandwidth probe that `moeserve bench` compares
// decode speed with (the same threads reading the same kind of memory).
uint64_t read_memory(const void* p, size_t bytes, ThreadPool& pool);

// The int8 dot-product peak of this machine in G multiply-adds per second:
// every thread of the pool runs independent chains of the instruction the
// quantized kernels multiply with (VPDPBUSD, or the AVX2 pair without VNNI)
// in registers for about `seconds`; best of 3. 0 at the scalar level. The
// compute probe `moeserve bench` compares prefill with, as it compares
// decode with read_memory.
double probe_int8_gmacs(ThreadPool& pool, double seconds = 0.1);

// Name of the kernel set matmul uses on this CPU ("avx512", "avx2" or "scalar";
// at "avx2", the quantized matmuls use AVX-VNNI where the CPU has it).
const char* isa_name();

// How matmul_argmax scores a bf16 lm_head here: "f32" (every output, in
// f32), "bf16-candidates" (VDPBF16PS scores, the few entries that could win
// computed again in f32: the same tokens, where the CPU does twice the
// products a cycle with it), or "none" below AVX-512 (matmul_argmax declines).
const char* argmax_pass_name();

// Converts one row of n elements of type t to float32. Bit-exact to the format's definition.
void dequantize_row(DType t, const void* src, float* dst, int64_t n);
// Quantizes one row (n a multiple of the block size) to type t.
void quantize_row(DType t, const float* src, void* dst, int64_t n);

// out[i] = x[i] / sqrt(mean(x^2) + eps) * w[i]
void rmsnorm(const float* x, const float* w, int64_t n, float eps, float* out);
// In-place softmax over n values.
void softmax(float* x, int64_t n);
// out[i] = silu(gate[i]) * up[i]
void silu_mul(const float* gate, const float* up, int64_t n, float* out);

}  // namespace ms::ops
