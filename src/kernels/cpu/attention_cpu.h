// attention_cpu.h — interface between kernels/attention.cpp and the SIMD
// paged-attention kernels (attention_avx2.cpp, attention_avx512.cpp). Plain
// struct and free functions only, for the linkage reasons in cpu_kernels.h.
#pragma once
#include <cstdint>

#include "kernels/cpu/page_prefetch.h"

namespace ms::cpu {

// One work item: query tokens [t0, t0 + nt) of one task (at positions
// pos0 + t0 ...) and the `group` query heads kvh*group .. kvh*group+group-1
// that read KV head kvh. Rows of the item: r = (token - t0) * group + g.
struct AttnItem {
  const void* k;  // cache pools [num_blocks][n_kv_heads][block_size][head_dim], f32 or f16
  const void* v;
  bool f16;
  int32_t block_size;
  int64_t n_kv_heads, head_dim, n_heads, group, kvh;
  const int32_t* block_table;
  const float* q;  // the task's queries [n_tokens][n_heads][head_dim]
  float* out;      // the task's output, same shape
  int64_t pos0, t0, nt, window;
  float scale;     // 1/sqrt(head_dim)
  // 64-byte aligned scratch of at least attn_scratch_floats(*this) floats.
  float* scratch;
};

// Scratch an item needs (defined in kernels/attention.cpp, baseline code):
// with dp = head_dim rounded up to 16, R = nt*group rows, and the item's keys
// [U0, U1] (U0 = first token's window start, U1 = last token's position)
// widened to 16-aligned chunks, span = round_up(U1 + 1 - round_down(U0, 16), 16):
//   q[R][dp], O[R][dp], K[16][dp], V[16][dp], S[R][span] floats, in this order.
int64_t attn_scratch_floats(const AttnItem& a);

// Helpers of the SIMD kernels (internal linkage, as in page_prefetch.h).
namespace {

// Element offset of cache row j (key or value j of KV head a.kvh) in a pool.
inline int64_t kv_row_offset(const AttnItem& a, int64_t j) {
  return ((int64_t(a.block_table[j / a.block_size]) * a.n_kv_heads + a.kvh) * a.block_size + j % a.block_size) *
         a.head_dim;
}

// Prefetches cache rows [j0, j1) of the item's KV head in pool into L1. The
// kernels fetch each row kKvAheadKeys keys before they widen it: within a
// block a head's rows are contiguous, but the blocks of a sequence need not
// be, and at decode an item does little arithmetic per key, so without this
// the widening waits on memory. Attention of 16 sequences at 512 keys
// (bench_kernels Attention/decode16, f16 cache, 2 threads) took 1.8-1.9 ms
// without it and 1.3 with it (AVX-512; AVX2 2.0-2.2 and 1.7); 16-32 keys
// ahead were equal, 64-128 no better.
constexpr int64_t kKvAheadKeys = 16;
inline void prefetch_kv_rows(const AttnItem& a, const void* pool, int64_t j0, int64_t j1) {
  const int64_t elem = a.f16 ? 2 : 4;
  for (int64_t j = j0; j < j1; ++j)
    prefetch_lines<false>(static_cast<const uint8_t*>(pool) + kv_row_offset(a, j) * elem, size_t(a.head_dim * elem));
}

}  // namespace

// f32 -> f16 with VCVTPS2PH, round to nearest even: bit-identical to
// ms::f32_to_f16 element by element (the KV cache's stores).
namespace avx512 {
// Any head_dim.
void attention(const AttnItem& a);
void f32_to_f16_row(const float* x, uint16_t* y, int64_t n);
}
namespace avx2 {
// Any head_dim; bit-identical to avx512::attention.
void attention(const AttnItem& a);
void f32_to_f16_row(const float* x, uint16_t* y, int64_t n);
}

}  // namespace ms::cpu
