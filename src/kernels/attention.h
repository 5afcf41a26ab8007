// attention.h — rotary embeddings and attention over a paged KV cache.
//
// Paged layout (one layer): K and V are pools (f32 or f16)
//   [num_blocks][n_kv_heads][block_size][head_dim]
// and a sequence's position p lives in block block_table[p / block_size],
// slot p % block_size. Within a block each KV head's rows are contiguous
// (block_size * head_dim elements: 4 KiB for Mixtral's f16 cache and blocks
// of 16): attention reads one head's rows at a time, and with heads
// interleaved per slot that was 256 bytes every 2 KiB (what this layout and
// the kernels' prefetch each gained: docs/PERFORMANCE.md).
#pragma once
#include <cstdint>

#include "core/thread_pool.h"

namespace ms::ops {

// Rotary position embedding of one head vector x[head_dim] at position pos.
// interleaved=false: HF rotate-half (pairs i, i + head_dim/2);
// interleaved=true: adjacent pairs (2i, 2i+1), llama.cpp's layout.
// inv_freq[i] = theta^(-2i/head_dim) as computed by rope_inv_freq.
// A position's rotation depends only on pos, so a forward pass computes its
// table once per token (rope_table) and applies it to every head of every
// layer (rope_apply).
void rope_inv_freq(double theta, int64_t head_dim, float* inv_freq /*[head_dim/2]*/);
void rope_table(int64_t head_dim, int64_t pos, const float* inv_freq, float* cs /*[head_dim]: cos, then sin*/);
void rope_apply(float* x, int64_t head_dim, const float* cs /*[head_dim] from rope_table*/, bool interleaved);

// Element type of the cache. F16 halves its memory and is what llama.cpp
// keeps by default; with it the query is rounded to f16 too, so q·k is the
// product of two f16 vectors accumulated in f32, as ggml computes it.
enum class KvDType : uint8_t { F32, F16 };

struct PagedKv {
  void* k = nullptr;  // [num_blocks][n_kv_heads][block_size][head_dim] of dtype
  void* v = nullptr;
  KvDType dtype = KvDType::F32;
  int32_t block_size = 0;
  int64_t n_kv_heads = 0;
  int64_t head_dim = 0;
  // Element offset of the row of KV head `head` at (block, slot).
  int64_t offset(int32_t block, int32_t slot, int64_t head) const {
    return ((int64_t(block) * n_kv_heads + head) * block_size + slot) * head_dim;
  }
};

// y[i] = f32_to_f16(x[i]) (round to nearest even), with F16C where the CPU has it.
void f32_to_f16_row(const float* x, uint16_t* y, int64_t n);

// Stores one token's keys and values (each [n_kv_heads * head_dim] f32) at (block, slot).
void kv_store(const PagedKv& kv, int32_t block, int32_t slot, const float* k, const float* v);

// Causal attention for n_tokens query rows of one sequence at positions
// pos0..pos0+n_tokens-1, whose keys/values (positions 0..pos0+n_tokens-1) are
// already in the paged cache. q: [n_tokens][n_heads][head_dim], out likewise.
// Query head h uses KV head h / (n_heads / n_kv_heads) (GQA). window > 0
// restricts keys to i - window < j <= i. Scale 1/sqrt(head_dim), softmax in f32.
struct AttnTask {
  const float* q;
  float* out;
  int32_t n_tokens;
  int32_t pos0;
  const int32_t* block_table;
};
//
// Runs the fastest kernel the CPU supports (AVX-512 or AVX2, else the scalar
// reference ref::paged_attention in kernels/ref/attention_ref.h); the SIMD
// kernels equal the reference bit for bit (its sums and exp are written in
// their order, ref/lanes16.h). Whatever the kernel, each (token, head) output is computed
// the same way whether its token is alone (decode) or inside a prefill chunk,
// and whatever other tasks share the call or the number of threads.
void paged_attention(const AttnTask* tasks, int64_t n_tasks, const PagedKv& kv, int64_t n_heads,
                     int64_t window, ThreadPool& pool);

// The same with an explicit kernel (tests, benchmarks). Auto: the fastest
// available, capped by MOESERVE_ISA like ops::isa_name(). A SIMD kernel the CPU
// lacks throws Error(Unsupported).
enum class AttnImpl : uint8_t { Auto, Scalar, Avx2, Avx512 };
void paged_attention(const AttnTask* tasks, int64_t n_tasks, const PagedKv& kv, int64_t n_heads,
                     int64_t window, ThreadPool& pool, AttnImpl impl);

}  // namespace ms::ops
