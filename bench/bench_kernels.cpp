// bench_kernels.cpp — kernel microbenchmarks (Google Benchmark).
//
//   StreamRead/<threads>          read bandwidth baseline: ops::read_memory over 1 GiB
//                                 (the probe moeserve bench compares decode with)
//   Matvec/<type>/<shape>/<n>     matmul with n activation rows (decode shapes);
//   Matvec/<type>-panel/...       the same on the panel layout (ops::repack_panels; Q8_0, Q4_0, Q4_K, Q5_K, Q6_K)
//   Prefill/<type>-panel/.../<n>  n = 32, 128: an expert's rows of a 128- / 512-token prefill, from memory
//                                 GB/s of weights streamed, tokens/s = n / time
//   Gemm/<type>/<shape>/<n>       large n (prefill): int8 GOP/s (2*rows*cols*n)
//   MixtralLayerPrefill/<type>    one Mixtral-8x7B-shaped layer's matmuls for
//                                 512 tokens (QKVO + 8 experts x 128 tokens)
//   ActQuant, QuantizeRow         activation quantization, load-time quantizers
//   Int8Ports/<case>              throughput of the instructions those kernels issue
//                                 (VPDPBUSD alone, paired with an fma, a conversion,
//                                 a shuffle; broadcast loads): ns per instruction
//   Int8Floor/<tokens>            the AVX-512 panel kernels' arithmetic alone, in
//                                 registers (one thread): ns per block and token
//   Attention/<case>/<kernel>     paged attention of a Mixtral-8x7B layer (32 query
//                                 heads, 8 KV heads, head_dim 128, f16 cache):
//                                 prefill512 = one task of 512 tokens from position 0,
//                                 decode16 = 16 tasks of 1 token at position 511;
//                                 kernel scalar (reference), avx2, avx512
//
// Weights are rotated between enough copies (>= 512 MiB) that every matvec
// reads them from DRAM, as a model with many experts does. Threads: the pool
// size is the benchmark's `threads` argument (default 2 = this machine's cores).
#include <benchmark/benchmark.h>
#include <immintrin.h>

#include <chrono>
#include <cstdlib>
#include <cstring>
#include <map>
#include <memory>
#include <random>
#include <string>
#include <vector>

#include "core/aligned.h"
#include "core/argmax.h"
#include "core/dtype.h"
#include "core/quant.h"
#include "core/thread_pool.h"
#include "kernels/attention.h"
#include "kernels/ops.h"

using namespace ms;

namespace {

int bench_threads() {
  const char* e = std::getenv("MOESERVE_BENCH_THREADS");
  return e ? std::atoi(e) : 2;
}

ThreadPool& pool() {
  static ThreadPool p(bench_threads());
  return p;
}

struct Buffer {
  uint8_t* p = nullptr;
  size_t n = 0;
  // Huge pages, as the model's weights and KV cache get (core/aligned.h).
  explicit Buffer(size_t bytes) : p(static_cast<uint8_t*>(alloc_aligned(bytes))), n(bytes) {}
  ~Buffer() { std::free(p); }
};

// Random quant bytes with sane f16/f32 scale fields (speed does not depend on values).
void fill_weights(DType t, uint8_t* p, size_t bytes, uint64_t seed) {
  std::mt19937_64 g(seed);
  for (size_t i = 0; i + 8 <= bytes; i += 8) {
    const uint64_t v = g();
    std::memcpy(p + i, &v, 8);
  }
  if (!is_quantized(t)) {
    const uint16_t h = t == DType::BF16 ? 0x3C00 : 0x2C00;  // finite small values
    if (t != DType::F32)
      for (size_t i = 0; i + 2 <= bytes; i += 2) {
        uint16_t v;
        std::memcpy(&v, p + i, 2);
        v = uint16_t((v & 0x83FF) | (h & 0x7C00));
        std::memcpy(p + i, &v, 2);
      }
    else
      for (size_t i = 0; i + 4 <= bytes; i += 4) {
        const float f = float(int8_t(p[i])) / 64.0f;
        std::memcpy(p + i, &f, 4);
      }
    return;
  }
  const size_t bb = block_bytes(t);
  const uint16_t d = 0x1C00;
  for (size_t o = 0; o + bb <= bytes; o += bb) {
    switch (t) {
      case DType::Q6_K: std::memcpy(p + o + 208, &d, 2); break;
      case DType::Q4_1: case DType::Q5_1: case DType::Q4_K: case DType::Q5_K:
        std::memcpy(p + o, &d, 2);
        std::memcpy(p + o + 2, &d, 2);
        break;
      default: std::memcpy(p + o, &d, 2); break;
    }
  }
}

// Enough copies of a rows x cols matrix to exceed the caches.
struct WeightSet {
  std::vector<std::unique_ptr<Buffer>> bufs;
  std::vector<MatView> mats;
  size_t bytes_each = 0;
  // panel: convert each copy to the kernels' panel layout (ops::repack_panels).
  WeightSet(DType t, int64_t rows, int64_t cols, size_t min_total = size_t(512) << 20, bool panel = false) {
    bytes_each = row_bytes(t, cols) * size_t(rows);
    const size_t copies = std::max<size_t>(2, (min_total + bytes_each - 1) / bytes_each);
    for (size_t c = 0; c < copies; ++c) {
      bufs.push_back(std::make_unique<Buffer>(bytes_each));
      fill_weights(t, bufs.back()->p, bytes_each, c + 1);
      mats.push_back(make_mat(t, rows, cols, bufs.back()->p));
      if (panel) {
        auto rp = std::make_unique<Buffer>(ops::repacked_bytes(t, rows, cols));
        mats.back() = ops::repack_panels(mats.back(), rp->p, pool());
        bufs.back() = std::move(rp);
      }
    }
  }
};

// 64-byte aligned, as the model's run state is (a 512-bit load of an
// unaligned row splits a cache line and halves what the float kernels reach).
using FVec = std::vector<float, AlignedAllocator<float>>;
FVec activations(int64_t n, int64_t cols) {
  std::mt19937_64 g(42);
  std::normal_distribution<float> d;
  FVec x(size_t(n * cols));
  for (auto& v : x) v = d(g);
  return x;
}

const DType kTypes[] = {DType::Q8_0, DType::Q4_0, DType::Q4_K, DType::BF16, DType::F16, DType::Q6_K,
                        DType::Q5_K, DType::Q5_0, DType::Q5_1, DType::Q4_1, DType::F32};

// ---------------------------------------------------------------- stream read
// The read probe `moeserve bench` compares decode with (ops::read_memory).
void BM_StreamRead(benchmark::State& state) {
  const int threads = int(state.range(0));
  static Buffer buf(size_t(1) << 30);
  static bool init = false;
  if (!init) {
    std::memset(buf.p, 1, buf.n);
    init = true;
  }
  ThreadPool p(threads);
  for (auto _ : state) benchmark::DoNotOptimize(ops::read_memory(buf.p, buf.n, p));
  state.SetBytesProcessed(int64_t(state.iterations()) * int64_t(buf.n));
}

// ---------------------------------------------------------------- int8 floor
// What one block (16 rows x 32 weights) and token costs the AVX-512 panel
// kernels in arithmetic alone: 8 VPDPBUSD with the activation bytes
// broadcast from memory, then the reference's float update (convert,
// multiply the scales, fma), for C tokens at a time, with the weights in
// registers and no memory traffic (counter ns_per_bt). This is the kernels'
// instruction mix, not the machine's limit: Int8Ports below gives that.
// (GCC 12's AVX-512 headers trip -Wuninitialized, as in the kernel files.)
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wuninitialized"
#if !defined(__clang__)
#pragma GCC diagnostic ignored "-Wmaybe-uninitialized"
#endif
template <int C>
__attribute__((target("avx512f,avx512bw,avx512vnni"))) double int8_floor_ns(int64_t reps) {
  alignas(64) static int8_t act[64 * 32 * 8];
  alignas(64) static float scl[64 * 8];
  __m512i w[8];
  for (int j = 0; j < 8; ++j) w[j] = _mm512_set1_epi32(0x01010101 * (j + 1));
  __m512 acc[C];
  for (int c = 0; c < C; ++c) acc[c] = _mm512_setzero_ps();
  const __m512 dw = _mm512_set1_ps(1.0f);
  const auto t0 = std::chrono::steady_clock::now();
  for (int64_t i = 0; i < reps; ++i) {
    const int8_t* a = act + (i & 63) * 32 * 8;
#pragma GCC unroll 8
    for (int c = 0; c < C; ++c) {
      __m512i s = _mm512_set1_epi32(c);
#pragma GCC unroll 8
      for (int j = 0; j < 8; ++j)
        asm("vpdpbusd %2%{1to16%}, %1, %0" : "+v"(s) : "v"(w[j]), "m"(*reinterpret_cast<const int32_t*>(a + 32 * c + 4 * j)));
      acc[c] = _mm512_fmadd_ps(_mm512_cvtepi32_ps(s), _mm512_mul_ps(dw, _mm512_set1_ps(scl[(i & 63) * 8 + c])), acc[c]);
    }
  }
  const double ns = std::chrono::duration<double, std::nano>(std::chrono::steady_clock::now() - t0).count();
  float sink = 0;
  for (int c = 0; c < C; ++c) sink += _mm512_reduce_add_ps(acc[c]);
  benchmark::DoNotOptimize(sink);
  return ns / double(reps * C);
}
#pragma GCC diagnostic pop

void BM_Int8Floor(benchmark::State& state) {
  if (std::string(ops::isa_name()) != "avx512") {
    state.SkipWithError("needs AVX-512 VNNI");
    return;
  }
  const int64_t C = state.range(0), reps = 1 << 20;
  double ns = 0;
  for (auto _ : state) ns = C == 4 ? int8_floor_ns<4>(reps) : int8_floor_ns<8>(reps);
  state.counters["ns_per_bt"] = ns;
}

// ---------------------------------------------------------------- int8 ports
// Throughput of the instructions the panel kernels issue per block and token,
// each in a loop of 12 independent chains in registers (one thread; counter
// ns_per_op = ns per instruction, or per pair for the pairs):
//   0 dp       VPDPBUSD zmm (the kernels' integer multiply-add)
//   1 dp+fma   a VPDPBUSD and an independent VFMADD231PS: if a pair costs as
//              much as two VPDPBUSD, the two share execution ports
//   2 dp+cvt   a VPDPBUSD and a VCVTDQ2PS (the float update's conversion)
//   3 dp+shuf  a VPDPBUSD and a VPSHUFD zmm (an in-register broadcast)
//   4 bcast    VPBROADCASTD zmm from memory (as each VPDPBUSD's activation
//              operand is loaded)
// Per block and token the kernels issue 8 VPDPBUSD, a multiply and an fma
// (the reference's update, kernels/ref/quant_ref.h), a conversion, and
// about 11 vector loads; docs/PERFORMANCE.md turns these into a bound.
#define MS_PAIRS(M) M(0, 12) M(1, 13) M(2, 14) M(3, 15) M(4, 16) M(5, 17) M(6, 18) M(7, 19) M(8, 20) M(9, 21) M(10, 22) M(11, 23)
#define MS_DP(a, b) "vpdpbusd %%zmm30, %%zmm31, %%zmm" #a "\n\t"
#define MS_DP_FMA(a, b) MS_DP(a, b) "vfmadd231ps %%zmm30, %%zmm31, %%zmm" #b "\n\t"
#define MS_DP_CVT(a, b) MS_DP(a, b) "vcvtdq2ps %%zmm30, %%zmm" #b "\n\t"
#define MS_DP_SHUF(a, b) MS_DP(a, b) "vpshufd $0x55, %%zmm30, %%zmm" #b "\n\t"
#define MS_BCAST(a, b) "vpbroadcastd " #a "*4(%[p]), %%zmm" #a "\n\t"
#define MS_ZERO(a, b) "vpxord %%zmm" #a ", %%zmm" #a ", %%zmm" #a "\n\tvpxord %%zmm" #b ", %%zmm" #b ", %%zmm" #b "\n\t"
#define MS_PORT_LOOP(BODY)                                                                                        \
  asm volatile(MS_PAIRS(MS_ZERO) "mov $0x3f800000, %%eax\n\tvpbroadcastd %%eax, %%zmm31\n\t"                    \
               "vpxord %%zmm30, %%zmm30, %%zmm30\n\t"                                                             \
               "1:\n\t" MS_PAIRS(BODY) "dec %[n]\n\tjnz 1b\n\t"                                                  \
               : [n] "+r"(n)                                                                                    \
               : [p] "r"(mem)                                                                                   \
               : "eax", "cc", "memory", "xmm0", "xmm1", "xmm2", "xmm3", "xmm4", "xmm5", "xmm6", "xmm7", "xmm8",   \
                 "xmm9", "xmm10", "xmm11", "xmm12", "xmm13", "xmm14", "xmm15", "xmm16", "xmm17", "xmm18", "xmm19", \
                 "xmm20", "xmm21", "xmm22", "xmm23", "xmm30", "xmm31")

__attribute__((target("avx512f,avx512bw,avx512vnni"))) double int8_port_ns(int which, int64_t reps) {
  alignas(64) static int32_t mem[16] = {};
  int64_t n = reps;
  const auto t0 = std::chrono::steady_clock::now();
  switch (which) {
    case 0: MS_PORT_LOOP(MS_DP); break;
    case 1: MS_PORT_LOOP(MS_DP_FMA); break;
    case 2: MS_PORT_LOOP(MS_DP_CVT); break;
    case 3: MS_PORT_LOOP(MS_DP_SHUF); break;
    default: MS_PORT_LOOP(MS_BCAST); break;
  }
  const double ns = std::chrono::duration<double, std::nano>(std::chrono::steady_clock::now() - t0).count();
  return ns / double(reps * 12);
}
#undef MS_PORT_LOOP
#undef MS_ZERO
#undef MS_BCAST
#undef MS_DP_SHUF
#undef MS_DP_CVT
#undef MS_DP_FMA
#undef MS_DP
#undef MS_PAIRS

void BM_Int8Ports(benchmark::State& state) {
  if (std::string(ops::isa_name()) != "avx512") {
    state.SkipWithError("needs AVX-512 VNNI");
    return;
  }
  double ns = 0;
  for (auto _ : state) ns = int8_port_ns(int(state.range(0)), 1 << 22);
  state.counters["ns_per_op"] = ns;
}

// ---------------------------------------------------------------- matvec / gemm
void run_matmul(benchmark::State& state, DType t, int64_t rows, int64_t cols, int64_t n, bool gemm, bool panel = false) {
  static std::map<std::string, std::unique_ptr<WeightSet>> cache;
  const std::string key = std::string(dtype_name(t)) + std::to_string(rows) + "x" + std::to_string(cols) + (panel ? "p" : "");
  if (!cache.count(key)) {
    cache.clear();  // keep memory bounded
    cache[key] = std::make_unique<WeightSet>(t, rows, cols, gemm ? size_t(1) : size_t(512) << 20, panel);
  }
  WeightSet& ws = *cache[key];
  const auto X = activations(n, cols);
  std::vector<float> Y(size_t(n * rows));
  const ops::QuantizedActs A = ops::quantize_acts(t, X.data(), cols, n, cols, pool());
  size_t k = 0;
  for (auto _ : state) {
    ops::matmul_q(ws.mats[k], A, Y.data(), rows, pool());
    k = (k + 1) % ws.mats.size();
    benchmark::ClobberMemory();
  }
  const double it = double(state.iterations());
  state.counters["GB/s"] = benchmark::Counter(it * double(ws.bytes_each) / 1e9, benchmark::Counter::kIsRate);
  state.counters["tok/s"] = benchmark::Counter(it * double(n), benchmark::Counter::kIsRate);
  state.counters["GOP/s"] = benchmark::Counter(it * 2.0 * double(rows) * double(cols) * double(n) / 1e9,
                                               benchmark::Counter::kIsRate);
}

// The greedy tokens of an lm_head, as a token-only decode step gets them:
// ops::matmul_argmax where the kernels fuse it (no logits written), else the
// logits then core/argmax.h per row — and, for comparison, always that way.
void run_lm_head_greedy(benchmark::State& state, int64_t rows, int64_t cols, int64_t n, bool fused) {
  WeightSet ws(DType::BF16, rows, cols, 1);
  const auto X = activations(n, cols);
  std::vector<float> Y(size_t(n * rows));
  std::vector<int32_t> tok(static_cast<size_t>(n));
  for (auto _ : state) {
    if (!fused || !ops::matmul_argmax(ws.mats[0], X.data(), cols, n, tok.data(), pool())) {
      ops::matmul(ws.mats[0], X.data(), cols, n, Y.data(), rows, pool());
      for (int64_t i = 0; i < n; ++i) tok[size_t(i)] = greedy_argmax(Y.data() + i * rows, rows);
    }
    benchmark::DoNotOptimize(tok.data());
  }
  state.counters["tok/s"] = benchmark::Counter(double(state.iterations()) * double(n), benchmark::Counter::kIsRate);
}

void register_all() {
  const std::pair<int64_t, int64_t> shapes[] = {{14336, 4096}, {4096, 14336}};
  for (DType t : kTypes)
    for (auto [rows, cols] : shapes)
      for (int64_t n : {1, 4, 16}) {
        const std::string name = std::string("Matvec/") + dtype_name(t) + "/" + std::to_string(rows) + "x" +
                                 std::to_string(cols) + "/" + std::to_string(n);
        benchmark::RegisterBenchmark(name.c_str(), [=, rows = rows, cols = cols](benchmark::State& s) { run_matmul(s, t, rows, cols, n, false); })
            ->Unit(benchmark::kMicrosecond)
            ->UseRealTime()
            ->MinTime(0.3);
      }
  // The panel layout the model uses for Q8_0 / Q4_0 / Q4_K / Q5_K / Q6_K on AVX-512 machines.
  for (DType t : {DType::Q8_0, DType::Q4_0, DType::Q4_K, DType::Q5_K, DType::Q6_K}) {
    if (!ops::can_repack(t)) continue;
    for (auto [rows, cols] : shapes)
      for (int64_t n : {1, 2, 4, 8, 16, 32, 128, 512}) {
        // 32 and 128: an expert's share of a 128- and a 512-token prefill (top-2 of 8), from memory.
        const char* kind = n == 512 ? "Gemm/" : n > 16 ? "Prefill/" : "Matvec/";
        const std::string name = std::string(kind) + dtype_name(t) + "-panel/" +
                                 std::to_string(rows) + "x" + std::to_string(cols) + "/" + std::to_string(n);
        benchmark::RegisterBenchmark(name.c_str(), [=, rows = rows, cols = cols](benchmark::State& s) { run_matmul(s, t, rows, cols, n, n == 512, true); })
            ->Unit(benchmark::kMicrosecond)
            ->UseRealTime()
            ->MinTime(0.3);
      }
  }
  // A tiny model's lm_head (the bundled model: 32000 x 128, BF16) at decode
  // batches up to 200 (ai_query_batch's 200 rows): compute-bound from ~16 rows.
  for (int64_t n : {16, 64, 200})
    for (bool fused : {false, true}) {
      const std::string name = std::string("LmHeadGreedy/") + (fused ? "fused" : "logits+argmax") + "/32000x128/" +
                               std::to_string(n);
      benchmark::RegisterBenchmark(name.c_str(), [=](benchmark::State& s) { run_lm_head_greedy(s, 32000, 128, n, fused); })
          ->Unit(benchmark::kMicrosecond)
          ->UseRealTime()
          ->MinTime(0.3);
    }
  for (int64_t n : {1, 16, 31, 32, 64, 200}) {
    const std::string name = "LmHead/BF16/32000x128/" + std::to_string(n);
    benchmark::RegisterBenchmark(name.c_str(), [=](benchmark::State& s) { run_matmul(s, DType::BF16, 32000, 128, n, true); })
        ->Unit(benchmark::kMicrosecond)
        ->UseRealTime()
        ->MinTime(0.3);
  }
  for (DType t : kTypes)
    for (auto [rows, cols] : shapes) {
      const int64_t n = 512;
      const std::string name = std::string("Gemm/") + dtype_name(t) + "/" + std::to_string(rows) + "x" +
                               std::to_string(cols) + "/" + std::to_string(n);
      benchmark::RegisterBenchmark(name.c_str(), [=, rows = rows, cols = cols](benchmark::State& s) { run_matmul(s, t, rows, cols, n, true); })
          ->Unit(benchmark::kMillisecond)
          ->UseRealTime()
          ->MinTime(0.5);
    }
}

// One Mixtral-8x7B layer's matmuls for a 512-token prefill: Q (4096x4096),
// K, V (1024x4096), O (4096x4096) on all tokens; each of 8 experts runs gate and
// up (14336x4096) and down (4096x14336) on 128 tokens (top-2 of 8, balanced).
void BM_MixtralLayerPrefill(benchmark::State& state, DType t) {
  const int64_t H = 4096, F = 14336, T = 512, E = 8, TE = T * 2 / E;
  Buffer wq(row_bytes(t, H) * H), wk(row_bytes(t, H) * 1024), wo(row_bytes(t, H) * H);
  std::vector<std::unique_ptr<Buffer>> gate, up, down;
  for (int e = 0; e < E; ++e) {
    gate.push_back(std::make_unique<Buffer>(row_bytes(t, H) * F));
    up.push_back(std::make_unique<Buffer>(row_bytes(t, H) * F));
    down.push_back(std::make_unique<Buffer>(row_bytes(t, F) * H));
    fill_weights(t, gate.back()->p, gate.back()->n, 10 + e);
    fill_weights(t, up.back()->p, up.back()->n, 20 + e);
    fill_weights(t, down.back()->p, down.back()->n, 30 + e);
  }
  fill_weights(t, wq.p, wq.n, 1);
  fill_weights(t, wk.p, wk.n, 2);
  fill_weights(t, wo.p, wo.n, 3);
  const auto X = activations(T, H);
  const auto Xf = activations(TE, F);
  std::vector<float> Y(size_t(T * F));
  for (auto _ : state) {
    ops::QuantizedActs A = ops::quantize_acts(t, X.data(), H, T, H, pool());
    ops::matmul_q(make_mat(t, H, H, wq.p), A, Y.data(), H, pool());
    ops::matmul_q(make_mat(t, 1024, H, wk.p), A, Y.data(), 1024, pool());
    ops::matmul_q(make_mat(t, 1024, H, wk.p), A, Y.data(), 1024, pool());
    ops::matmul_q(make_mat(t, H, H, wo.p), A, Y.data(), H, pool());
    for (int e = 0; e < E; ++e) {
      ops::QuantizedActs Ae = ops::quantize_acts(t, X.data() + e * TE * H, H, TE, H, pool());
      ops::matmul_q(make_mat(t, F, H, gate[e]->p), Ae, Y.data(), F, pool());
      ops::matmul_q(make_mat(t, F, H, up[e]->p), Ae, Y.data(), F, pool());
      ops::matmul(make_mat(t, H, F, down[e]->p), Xf.data(), F, TE, Y.data(), H, pool());
    }
    benchmark::ClobberMemory();
  }
  const double ops_per_layer = 2.0 * T * (2.0 * H * H + 2.0 * 1024 * H) + 2.0 * E * TE * (3.0 * H * F);
  state.counters["GOP/s"] = benchmark::Counter(double(state.iterations()) * ops_per_layer / 1e9, benchmark::Counter::kIsRate);
  // Prefill throughput of a 4-layer model of this shape (matmuls only).
  state.counters["tok/s_4layers"] = benchmark::Counter(double(state.iterations()) * T / 4.0, benchmark::Counter::kIsRate);
}

void BM_ActQuant(benchmark::State& state, DType t) {
  const int64_t n = state.range(0), cols = 4096;
  const auto X = activations(n, cols);
  ops::QuantizedActs A;
  for (auto _ : state) ops::quantize_acts(t, X.data(), cols, n, cols, pool(), &A);
  state.SetItemsProcessed(int64_t(state.iterations()) * n * cols);
}

void BM_QuantizeRow(benchmark::State& state, DType t) {
  const int64_t cols = 4096;
  const auto X = activations(1, cols);
  std::vector<uint8_t> q(row_bytes(t, cols));
  for (auto _ : state) {
    ops::quantize_row(t, X.data(), q.data(), cols);
    benchmark::DoNotOptimize(q.data());
  }
  state.SetItemsProcessed(int64_t(state.iterations()) * cols);
}

// ---------------------------------------------------------------- attention
void BM_Attention(benchmark::State& state, bool prefill, ops::AttnImpl impl) {
  const int64_t heads = 32, kv_heads = 8, dim = 128, ctx = 512;
  const int32_t bs = 16, blocks_per_seq = int32_t(ctx / bs);
  const int n_seq = prefill ? 1 : 16, n_tok = prefill ? int(ctx) : 1;
  const size_t elems = size_t(n_seq) * size_t(blocks_per_seq) * bs * kv_heads * dim;  // [blocks][kv_heads][bs][dim]
  Buffer kb(elems * 2), vb(elems * 2);  // huge pages, as the model's KV cache
  uint16_t* k = reinterpret_cast<uint16_t*>(kb.p);
  uint16_t* v = reinterpret_cast<uint16_t*>(vb.p);
  std::mt19937 g(7);
  std::normal_distribution<float> nd;
  for (size_t i = 0; i < elems; ++i) k[i] = f32_to_f16(nd(g)), v[i] = f32_to_f16(nd(g));
  const ops::PagedKv kv{k, v, ops::KvDType::F16, bs, kv_heads, dim};
  std::vector<std::vector<int32_t>> tables(static_cast<size_t>(n_seq), std::vector<int32_t>(static_cast<size_t>(blocks_per_seq)));
  for (int s = 0; s < n_seq; ++s)
    for (int32_t b = 0; b < blocks_per_seq; ++b) tables[size_t(s)][size_t(b)] = s * blocks_per_seq + b;
  const auto q = activations(int64_t(n_seq) * n_tok, heads * dim);  // [seq][tok][heads][dim]
  std::vector<float> out(q.size());
  std::vector<ops::AttnTask> tasks;
  for (int s = 0; s < n_seq; ++s) {
    const size_t at = size_t(s) * size_t(n_tok * heads * dim);
    tasks.push_back({q.data() + at, out.data() + at, n_tok, prefill ? 0 : int32_t(ctx - 1), tables[size_t(s)].data()});
  }
  try {
    ops::paged_attention(tasks.data(), int64_t(tasks.size()), kv, heads, 0, pool(), impl);
  } catch (const std::exception& e) {
    state.SkipWithError(e.what());
    return;
  }
  for (auto _ : state) {
    ops::paged_attention(tasks.data(), int64_t(tasks.size()), kv, heads, 0, pool(), impl);
    benchmark::ClobberMemory();
  }
  state.counters["tok/s"] = benchmark::Counter(double(state.iterations()) * n_seq * n_tok, benchmark::Counter::kIsRate);
}

}  // namespace

BENCHMARK(BM_StreamRead)->Arg(1)->Arg(2)->Unit(benchmark::kMillisecond)->UseRealTime()->MinTime(1.0);
BENCHMARK(BM_Int8Floor)->Arg(4)->Arg(8)->Unit(benchmark::kMillisecond)->UseRealTime();
BENCHMARK(BM_Int8Ports)->DenseRange(0, 4)->Unit(benchmark::kMillisecond)->UseRealTime();
BENCHMARK_CAPTURE(BM_MixtralLayerPrefill, q8_0, DType::Q8_0)->Unit(benchmark::kMillisecond)->UseRealTime()->MinTime(2.0);
BENCHMARK_CAPTURE(BM_MixtralLayerPrefill, q4_0, DType::Q4_0)->Unit(benchmark::kMillisecond)->UseRealTime()->MinTime(2.0);
BENCHMARK_CAPTURE(BM_MixtralLayerPrefill, q4_k, DType::Q4_K)->Unit(benchmark::kMillisecond)->UseRealTime()->MinTime(2.0);
BENCHMARK_CAPTURE(BM_Attention, prefill512/scalar, true, ops::AttnImpl::Scalar)->Unit(benchmark::kMillisecond)->UseRealTime()->MinTime(0.5);
BENCHMARK_CAPTURE(BM_Attention, prefill512/avx2, true, ops::AttnImpl::Avx2)->Unit(benchmark::kMillisecond)->UseRealTime()->MinTime(0.5);
BENCHMARK_CAPTURE(BM_Attention, prefill512/avx512, true, ops::AttnImpl::Avx512)->Unit(benchmark::kMillisecond)->UseRealTime()->MinTime(0.5);
BENCHMARK_CAPTURE(BM_Attention, decode16/scalar, false, ops::AttnImpl::Scalar)->Unit(benchmark::kMicrosecond)->UseRealTime()->MinTime(0.5);
BENCHMARK_CAPTURE(BM_Attention, decode16/avx2, false, ops::AttnImpl::Avx2)->Unit(benchmark::kMicrosecond)->UseRealTime()->MinTime(0.5);
BENCHMARK_CAPTURE(BM_Attention, decode16/avx512, false, ops::AttnImpl::Avx512)->Unit(benchmark::kMicrosecond)->UseRealTime()->MinTime(0.5);
BENCHMARK_CAPTURE(BM_ActQuant, q8_32, DType::Q8_0)->Arg(1)->Arg(512);
BENCHMARK_CAPTURE(BM_ActQuant, q8_256, DType::Q4_K)->Arg(1)->Arg(512);
BENCHMARK_CAPTURE(BM_QuantizeRow, q8_0, DType::Q8_0);
BENCHMARK_CAPTURE(BM_QuantizeRow, q4_0, DType::Q4_0);
BENCHMARK_CAPTURE(BM_QuantizeRow, q4_k, DType::Q4_K);
BENCHMARK_CAPTURE(BM_QuantizeRow, q6_k, DType::Q6_K);

int main(int argc, char** argv) {
  register_all();
  benchmark::Initialize(&argc, argv);
  if (benchmark::ReportUnrecognizedArguments(argc, argv)) return 1;
  benchmark::RunSpecifiedBenchmarks();
  benchmark::Shutdown();
  return 0;
}
