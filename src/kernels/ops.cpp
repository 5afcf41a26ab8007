// ops.cpp — run-time dispatch from ops.h to the fastest available kernel.
//
// ISA level: avx512 (F/BW/VL/DQ/VNNI + FMA/F16C) > avx2 (AVX2/FMA/F16C) > scalar
// reference, capped by MOESERVE_ISA, chosen once as a table of kernels
// (kernels/cpu/dispatch.h).
// Threading: output rows are cut into chunks, multiples of 32 (the kernels'
// row panel), that the pool's threads claim as they go; every output element
// is computed by one thread in a fixed order, so results do not depend on the
// number of threads or on which thread ran which chunk.
#include "kernels/ops.h"

#include <algorithm>
#include <chrono>
#include <cstring>
#include <limits>
#include <string>
#include <vector>

#include "core/error.h"
#include "kernels/cpu/dispatch.h"
#include "kernels/ref/quant_ref.h"
#include "kernels/ref/ref.h"

namespace ms::ops {

namespace {

const cpu::KernelTable& K() { return cpu::kernels(); }

cpu::WeightsRef wref(const MatView& W) { return {W.dtype, W.rows, W.cols, W.data, W.row_stride, W.panel16}; }

cpu::ActsRef aref(const QuantizedActs& A) {
  auto& M = const_cast<QuantizedActs&>(A);
  return {int(A.format), A.n, A.cols, A.nblk, A.qs_stride, M.qs.data(), M.d.data(), M.sum.data(), M.bsum.data()};
}

// Below this many multiply-adds a call runs on the calling thread only.
constexpr int64_t kMinParallelWork = 1 << 17;
constexpr int64_t kRowGrain = 32;

void check_matmul_args(const MatView& W, int64_t n, int64_t ldy, const char* what) {
  if (W.rows < 0 || W.cols < 0 || n < 0 || ldy < W.rows || (W.rows > 0 && W.cols > 0 && !W.data))
    throw Error(ErrorKind::Internal, std::string(what) + ": bad shapes or strides");
  if (W.dtype == DType::I32)
    throw Error(ErrorKind::Unsupported, std::string(what) + ": weights of type i32 are not supported");
}

void run_rows(ThreadPool& pool, int64_t rows, int64_t work, const ThreadPool::RangeFn& fn) {
  if (work < kMinParallelWork || pool.size() <= 1 || rows <= kRowGrain) {
    fn(0, rows, 0);
    return;
  }
  // Threads claim chunks of about a quarter of their share as they go, so
  // one slowed down (memory contention, preemption) does not stall the rest.
  pool.parallel_for_dynamic(rows, kRowGrain, 4, fn);
}

}  // namespace

uint64_t read_memory(const void* p, size_t bytes, ThreadPool& pool) {
  const auto* base = static_cast<const uint8_t*>(p);
  const int64_t lines = int64_t(bytes / 64);
  std::vector<uint64_t> part(size_t(pool.size()) * 8, 0);  // one cache line per thread
  pool.parallel_for(lines, 1024, [&](int64_t l0, int64_t l1, int t) {
    const uint8_t* q = base + l0 * 64;
    const size_t n = size_t(l1 - l0) * 64;
    part[size_t(t) * 8] += K().read_sum(q, n);
  });
  uint64_t s = 0;
  for (size_t i = 0; i < part.size(); i += 8) s += part[i];
  for (size_t i = size_t(lines) * 64; i < bytes; ++i) s += base[i];
  return s;
}

double probe_int8_gmacs(ThreadPool& pool, double seconds) {
  const auto loop = K().int8_dot_loop;
  if (!loop) return 0.0;
  using Clock = std::chrono::steady_clock;
  // Calibrate the iterations on this thread, then run them on every thread.
  int64_t iters = 1 << 14;
  for (;;) {
    const auto t0 = Clock::now();
    loop(iters);
    const double s = std::chrono::duration<double>(Clock::now() - t0).count();
    if (s > seconds / 8 || iters > (int64_t(1) << 34)) {
      iters = std::max<int64_t>(1, int64_t(double(iters) * seconds / std::max(s, 1e-9)));
      break;
    }
    iters *= 4;
  }
  const int n = pool.size();
  double best = 0.0;
  for (int pass = 0; pass < 3; ++pass) {
    std::vector<uint64_t> macs(size_t(n) * 8, 0);
    const auto t0 = Clock::now();
    pool.parallel_for(n, [&](int64_t i0, int64_t i1, int t) {
      for (int64_t i = i0; i < i1; ++i) macs[size_t(t) * 8] += loop(iters);
    });
    const double s = std::chrono::duration<double>(Clock::now() - t0).count();
    uint64_t total = 0;
    for (size_t i = 0; i < macs.size(); i += 8) total += macs[i];
    best = std::max(best, double(total) / s / 1e9);
  }
  return best;
}

const char* isa_name() { return K().name; }

const char* argmax_pass_name() {
  if (!K().matmul_f_argmax) return "none";
  return cpu::avx512::argmax_pass() == cpu::avx512::ArgmaxPass::Bf16Candidates ? "bf16-candidates" : "f32";
}

void quantize_acts(DType wtype, const float* X, int64_t ldx, int64_t n, int64_t cols, ThreadPool& pool,
                   QuantizedActs* out) {
  if (n < 0 || cols < 0 || (n > 0 && (!X || ldx < cols)))
    throw Error(ErrorKind::Internal, "quantize_acts: bad shapes or strides");
  if (wtype == DType::I32) throw Error(ErrorKind::Unsupported, "quantize_acts: weights of type i32 are not supported");
  QuantizedActs& A = *out;
  A.format = ref::act_format(wtype);
  A.n = n;
  A.cols = cols;
  if (A.format == ref::ActFormat::None) {
    A.nblk = 0;
    A.qs_stride = 0;
    A.x.resize(size_t(n * cols));
    for (int64_t i = 0; i < n; ++i) std::memcpy(A.x.data() + i * cols, X + i * ldx, size_t(cols) * 4);
    return;
  }
  const int64_t B = ref::act_block(A.format);
  if (cols % B != 0)
    throw Error(ErrorKind::BadInput, "quantize_acts: " + std::to_string(cols) + " columns is not a multiple of " +
                                         std::to_string(B) + " (needed by " + dtype_name(wtype) + ")");
  A.nblk = cols / B;
  A.qs_stride = (cols + 63) / 64 * 64 + 64;  // +64: rows do not alias in the low 12 address bits
  A.qs.resize(size_t(n * A.qs_stride));
  A.d.resize(size_t(n * A.nblk));
  A.sum.resize(size_t(n * A.nblk));
  A.bsum.resize(size_t(n * (cols / 16)));
  const cpu::ActsRef R = aref(A);
  const auto quantize = K().quantize_acts;
  auto body = [&](int64_t i0, int64_t i1, int) { quantize(X, ldx, i0, i1, R); };
  if (n * cols < kMinParallelWork || pool.size() <= 1 || n < 2)
    body(0, n, 0);
  else
    pool.parallel_for(n, body);
}

QuantizedActs quantize_acts(DType wtype, const float* X, int64_t ldx, int64_t n, int64_t cols, ThreadPool& pool) {
  QuantizedActs A;
  quantize_acts(wtype, X, ldx, n, cols, pool, &A);
  return A;
}

namespace {

void check_q(const MatView& W, const QuantizedActs& A, int64_t ldy) {
  check_matmul_args(W, A.n, ldy, "matmul_q");
  if (A.cols != W.cols || A.format != ref::act_format(W.dtype))
    throw Error(ErrorKind::Internal, std::string("matmul_q: activations were prepared for another weight type/shape (") +
                                         dtype_name(W.dtype) + ")");
  if (W.panel16 && !K().panels)
    throw Error(ErrorKind::Internal, std::string("matmul_q: a panel-layout ") + dtype_name(W.dtype) +
                                         " matrix needs the AVX2 or AVX-512 kernels");
}

// Rows [r0, r1) of W times A, on the calling thread (W.cols > 0).
void q_rows(const MatView& W, const QuantizedActs& A, float* Y, int64_t ldy, int64_t r0, int64_t r1) {
  const cpu::KernelTable& k = K();
  const cpu::WeightsRef R = wref(W);
  if (A.format == ref::ActFormat::None) return k.matmul_f(R, A.x.data(), A.cols, A.n, r0, r1, Y, ldy);
  const cpu::ActsRef AR = aref(A);
  // A type without a quantized kernel at this level runs the reference.
  if (k.has_q(W.dtype)) return k.matmul_q(R, AR, r0, r1, Y, ldy);
  return cpu::kernels_at(cpu::Isa::Scalar)->matmul_q(R, AR, r0, r1, Y, ldy);
}

void zero_rows(const MatView& W, const QuantizedActs& A, float* Y, int64_t ldy) {
  for (int64_t i = 0; i < A.n; ++i) std::fill(Y + i * ldy, Y + i * ldy + W.rows, 0.0f);
}

}  // namespace

void matmul_q(const MatView& W, const QuantizedActs& A, float* Y, int64_t ldy, ThreadPool& pool) {
  const MatTarget t{&W, Y, ldy, &A};
  matmul_q_many(&t, 1, pool);
}

void matmul_q_many(const MatTarget* targets, int count, ThreadPool& pool) {
  // One virtual row space: target k's rows start at off[k], a multiple of
  // the row grain, so no chunk of the pool splits a 32-row group.
  std::vector<int64_t> off(static_cast<size_t>(count) + 1, 0);
  int64_t work = 0;
  for (int k = 0; k < count; ++k) {
    const MatTarget& t = targets[k];
    if (!t.a) throw Error(ErrorKind::Internal, "matmul_q_many: a target without activations");
    const MatView& W = *t.w;
    const QuantizedActs& A = *t.a;
    check_q(W, A, t.ldy);
    if (A.n > 0 && W.rows > 0 && W.cols == 0) zero_rows(W, A, t.y, t.ldy);
    const int64_t rows = (A.n == 0 || W.cols == 0) ? 0 : W.rows;
    off[size_t(k) + 1] = off[size_t(k)] + (rows + kRowGrain - 1) / kRowGrain * kRowGrain;
    work += rows * W.cols * A.n;
  }
  const int64_t total = off[size_t(count)];
  if (total == 0) return;
  auto body = [&](int64_t r0, int64_t r1, int) {
    for (int k = 0; k < count; ++k) {
      const MatTarget& t = targets[k];
      const int64_t b = std::max(r0, off[size_t(k)]) - off[size_t(k)];
      const int64_t e = std::min({r1 - off[size_t(k)], t.w->rows, off[size_t(k) + 1] - off[size_t(k)]});
      if (b < e) q_rows(*t.w, *t.a, t.y, t.ldy, b, e);
    }
  };
  if (work < kMinParallelWork || pool.size() <= 1 || total <= kRowGrain) return body(0, total, 0);
  pool.parallel_for_dynamic(total, kRowGrain, 4, body);
}

void matmul(const MatView& W, const float* X, int64_t ldx, int64_t n, float* Y, int64_t ldy, ThreadPool& pool) {
  check_matmul_args(W, n, ldy, "matmul");
  if (n == 0 || W.rows == 0) return;
  if (!is_quantized(W.dtype)) {
    if (n > 0 && (!X || ldx < W.cols)) throw Error(ErrorKind::Internal, "matmul: bad activation stride");
    const cpu::WeightsRef R = wref(W);
    const auto matmul_f = K().matmul_f;
    run_rows(pool, W.rows, W.rows * W.cols * n,
             [&](int64_t r0, int64_t r1, int) { matmul_f(R, X, ldx, n, r0, r1, Y, ldy); });
    return;
  }
  thread_local QuantizedActs scratch;
  quantize_acts(W.dtype, X, ldx, n, W.cols, pool, &scratch);
  matmul_q(W, scratch, Y, ldy, pool);
}

bool matmul_argmax(const MatView& W, const float* X, int64_t ldx, int64_t n, int32_t* out, ThreadPool& pool) {
  const auto fused = K().matmul_f_argmax;
  if (!fused || is_quantized(W.dtype) || n < 8 || W.rows == 0) return false;
  if (!X || ldx < W.cols) throw Error(ErrorKind::Internal, "matmul_argmax: bad activation stride");
  const cpu::WeightsRef R = wref(W);
  if (!fused(R, X, ldx, n, 0, 0, nullptr, nullptr)) return false;  // an empty range: is the shape handled?
  // Each thread merges the ranges it takes into its own (value, index) per
  // row; the threads' results are merged the same way (order-independent).
  const size_t threads = size_t(pool.size());
  std::vector<float> best_v(threads * size_t(n), -std::numeric_limits<float>::infinity());
  std::vector<int32_t> best_i(threads * size_t(n), 0);
  run_rows(pool, W.rows, W.rows * W.cols * n, [&](int64_t r0, int64_t r1, int t) {
    fused(R, X, ldx, n, r0, r1, best_v.data() + size_t(t) * size_t(n), best_i.data() + size_t(t) * size_t(n));
  });
  for (int64_t i = 0; i < n; ++i) {
    float v = best_v[size_t(i)];
    int32_t idx = best_i[size_t(i)];
    for (size_t t = 1; t < threads; ++t) {
      const float tv = best_v[t * size_t(n) + size_t(i)];
      const int32_t ti = best_i[t * size_t(n) + size_t(i)];
      if (cpu::argmax_beats(tv, ti, v, idx)) {
        v = tv;
        idx = ti;
      }
    }
    out[i] = v > -std::numeric_limits<float>::infinity() ? idx : 0;  // greedy_argmax's 0 when nothing is above -inf
  }
  return true;
}

void dequantize_row(DType t, const void* src, float* dst, int64_t n) { ref::dequantize_row(t, src, dst, n); }

void quantize_row(DType t, const float* src, void* dst, int64_t n) { ref::quantize_row(t, src, dst, n); }

void rmsnorm(const float* x, const float* w, int64_t n, float eps, float* out) { ref::rmsnorm(x, w, n, eps, out); }
void softmax(float* x, int64_t n) { ref::softmax(x, n); }
void silu_mul(const float* gate, const float* up, int64_t n, float* out) { K().silu_mul(gate, up, n, out); }

}  // namespace ms::ops
