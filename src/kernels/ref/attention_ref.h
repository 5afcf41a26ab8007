// attention_ref.h — scalar reference for ops::paged_attention: the numerical
// specification the SIMD kernels (kernels/cpu/attention_*.cpp) equal bit for
// bit. Per (token, query head): with F16 keys the query is rounded to f16;
// s_j = (q · k_j in the 16-lane order of ref/lanes16.h) · (1/sqrt(head_dim));
// e_j = exp16(max(s_j - max, -104)); Σe with key j in lane j mod 16 (keys in
// order) and the tree; p_j = e_j · (1/Σe); out = Σ_j p_j·v_j by FMAs in key
// order from 0.
#pragma once
#include <cstdint>

#include "core/thread_pool.h"
#include "kernels/attention.h"

namespace ms::ref {

// Same contract as ops::paged_attention (kernels/attention.h).
void paged_attention(const ops::AttnTask* tasks, int64_t n_tasks, const ops::PagedKv& kv, int64_t n_heads,
                     int64_t window, ThreadPool& pool);

}  // namespace ms::ref
