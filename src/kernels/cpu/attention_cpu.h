// attention_cpu.h — interface between kernels/attention.cpp and the SIMD
// paged-attention kernels (attention_avx2.cpp, attention_avx512.cpp). Plain
// struct and free functions only, for the linkage reasons in cpu_kernels.h.
#pragma once
#include <cstdint>

namespace ms::cpu {

// One work item: query tokens [t0, t0 + nt) of one task (at positions
// pos0 + t0 ...) and the `group` query heads kvh*group .. kvh*group+group-1
// that read KV head kvh. Rows of the item: r = (token - t0) * group + g.
struct AttnItem {
  const void* k;  // cache pools [num_blocks][block_size][n_kv_heads][head_dim], f32 or f16
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
