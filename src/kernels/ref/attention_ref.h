// attention_ref.h — scalar reference for ops::paged_attention: the numerical
// specification the SIMD kernels (kernels/cpu/attention_*.cpp) are tested
// against. Per (token, query head): with F16 keys the query is rounded to f16;
// s_j = (Σ_c q[c]·k_j[c], summed sequentially in f32) · (1/sqrt(head_dim));
// p_j = exp(s_j - max) / Σ exp(s_i - max); out = Σ_j p_j·v_j in key order.
#pragma once
#include <cstdint>

#include "core/thread_pool.h"
#include "kernels/attention.h"

namespace ms::ref {

// Same contract as ops::paged_attention (kernels/attention.h).
void paged_attention(const ops::AttnTask* tasks, int64_t n_tasks, const ops::PagedKv& kv, int64_t n_heads,
                     int64_t window, ThreadPool& pool);

}  // namespace ms::ref
