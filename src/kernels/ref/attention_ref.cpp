// attention_ref.cpp — scalar paged attention (see attention_ref.h).
#include "kernels/ref/attention_ref.h"

#include <algorithm>
#include <cmath>
#include <vector>

#include "core/dtype.h"
#include "kernels/ref/lanes16.h"

namespace ms::ref {

using ops::KvDType;
using ops::PagedKv;

namespace {

// f16 -> f32 for every bit pattern: the attention loop reads f16 keys/values
// from generic (non-F16C) code.
const float* f16_table() {
  static const std::vector<float> t = [] {
    std::vector<float> v(65536);
    for (uint32_t i = 0; i < 65536; ++i) v[i] = f16_to_f32(uint16_t(i));
    return v;
  }();
  return t.data();
}

// Reads row `off` of a cache pool as f32 into dst (or returns it in place).
inline const float* row_f32(const PagedKv& kv, const void* pool, int64_t off, float* dst, const float* tab) {
  if (kv.dtype == KvDType::F32) return static_cast<const float*>(pool) + off;
  const uint16_t* h = static_cast<const uint16_t*>(pool) + off;
  for (int64_t c = 0; c < kv.head_dim; ++c) dst[c] = tab[h[c]];
  return dst;
}

// One query head at one position: out = softmax(q·K / sqrt(d)) V over keys [j0, j1].
void attend_one(const float* q_in, float* out, const PagedKv& kv, const int32_t* table, int64_t kvh, int64_t j0,
                int64_t j1, float scale, std::vector<float>& scores, std::vector<float>& tmp) {
  const int64_t d = kv.head_dim;
  const int64_t n = j1 - j0 + 1;
  const float* tab = kv.dtype == KvDType::F16 ? f16_table() : nullptr;
  scores.resize(size_t(n));
  tmp.resize(size_t(2 * d));
  float* qr = tmp.data();
  float* row = tmp.data() + d;
  const float* q = q_in;
  if (kv.dtype == KvDType::F16) {
    for (int64_t c = 0; c < d; ++c) qr[c] = tab[f32_to_f16(q_in[c])];
    q = qr;
  }
  float mx = -INFINITY;
  for (int64_t j = j0; j <= j1; ++j) {
    const int64_t off = kv.offset(table[j / kv.block_size], int32_t(j % kv.block_size), kvh);
    const float s = dot16(q, row_f32(kv, kv.k, off, row, tab), d) * scale;
    scores[size_t(j - j0)] = s;
    mx = std::max(mx, s);
  }
  // Σ e_j with key j in lane j mod 16, keys in order, then the tree.
  float lanes[16] = {};
  for (int64_t j = j0; j <= j1; ++j) {
    float& e = scores[size_t(j - j0)];
    const float x = e - mx;
    e = exp16(x >= kExpMin ? x : kExpMin);
    lanes[j % 16] += e;
  }
  const float inv = 1.0f / tree16(lanes);
  for (int64_t c = 0; c < d; ++c) out[c] = 0.0f;
  for (int64_t j = j0; j <= j1; ++j) {
    const int64_t off = kv.offset(table[j / kv.block_size], int32_t(j % kv.block_size), kvh);
    const float* v = row_f32(kv, kv.v, off, row, tab);
    const float p = scores[size_t(j - j0)] * inv;
    for (int64_t c = 0; c < d; ++c) out[c] = std::fma(p, v[c], out[c]);
  }
}

}  // namespace

void paged_attention(const ops::AttnTask* tasks, int64_t n_tasks, const PagedKv& kv, int64_t n_heads,
                     int64_t window, ThreadPool& pool) {
  // Flatten (task, token, head) into one index space for the pool.
  std::vector<int64_t> start(size_t(n_tasks) + 1, 0);
  for (int64_t t = 0; t < n_tasks; ++t) start[size_t(t) + 1] = start[size_t(t)] + int64_t(tasks[t].n_tokens) * n_heads;
  const int64_t total = start[size_t(n_tasks)];
  const int64_t group = n_heads / kv.n_kv_heads;
  const float scale = 1.0f / std::sqrt(float(kv.head_dim));
  pool.parallel_for(total, [&](int64_t b, int64_t e, int) {
    std::vector<float> scores, tmp;
    int64_t t = 0;
    for (int64_t idx = b; idx < e; ++idx) {
      while (start[size_t(t) + 1] <= idx) ++t;
      const ops::AttnTask& task = tasks[t];
      const int64_t local = idx - start[size_t(t)];
      const int64_t tok = local / n_heads, h = local % n_heads;
      const int64_t pos = task.pos0 + tok;
      const int64_t j0 = window > 0 ? std::max<int64_t>(0, pos - window + 1) : 0;
      const float* q = task.q + (tok * n_heads + h) * kv.head_dim;
      float* out = task.out + (tok * n_heads + h) * kv.head_dim;
      attend_one(q, out, kv, task.block_table, h / group, j0, pos, scale, scores, tmp);
    }
  });
}

}  // namespace ms::ref
