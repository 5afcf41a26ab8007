#include "kernels/attention.h"

#include <algorithm>
#include <cmath>
#include <vector>

#include "core/dtype.h"

namespace ms::ops {

void rope_inv_freq(double theta, int64_t head_dim, float* inv_freq) {
  // As HF computes it: in float32, 1 / theta ** (2i / head_dim).
  for (int64_t i = 0; i < head_dim / 2; ++i) {
    const float expo = float(2 * i) / float(head_dim);
    inv_freq[i] = 1.0f / std::pow(float(theta), expo);
  }
}

void rope(float* x, int64_t head_dim, int64_t pos, const float* inv_freq, bool interleaved) {
  const int64_t half = head_dim / 2;
  for (int64_t i = 0; i < half; ++i) {
    const float angle = float(pos) * inv_freq[i];
    const float c = float(std::cos(double(angle)));
    const float s = float(std::sin(double(angle)));
    const int64_t a = interleaved ? 2 * i : i;
    const int64_t b = interleaved ? 2 * i + 1 : i + half;
    const float x0 = x[a], x1 = x[b];
    x[a] = x0 * c - x1 * s;
    x[b] = x1 * c + x0 * s;
  }
}

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
    const int64_t off = kv.offset(table[j / kv.block_size], int32_t(j % kv.block_size)) + kvh * d;
    const float* k = row_f32(kv, kv.k, off, row, tab);
    float s = 0.0f;
    for (int64_t c = 0; c < d; ++c) s += q[c] * k[c];
    s *= scale;
    scores[size_t(j - j0)] = s;
    mx = std::max(mx, s);
  }
  float sum = 0.0f;
  for (int64_t i = 0; i < n; ++i) {
    scores[size_t(i)] = std::exp(scores[size_t(i)] - mx);
    sum += scores[size_t(i)];
  }
  const float inv = 1.0f / sum;
  for (int64_t c = 0; c < d; ++c) out[c] = 0.0f;
  for (int64_t j = j0; j <= j1; ++j) {
    const int64_t off = kv.offset(table[j / kv.block_size], int32_t(j % kv.block_size)) + kvh * d;
    const float* v = row_f32(kv, kv.v, off, row, tab);
    const float p = scores[size_t(j - j0)] * inv;
    for (int64_t c = 0; c < d; ++c) out[c] += p * v[c];
  }
}

}  // namespace

void kv_store(const PagedKv& kv, int32_t block, int32_t slot, const float* k, const float* v) {
  const int64_t off = kv.offset(block, slot), n = kv.n_kv_heads * kv.head_dim;
  if (kv.dtype == KvDType::F32) {
    std::copy_n(k, n, static_cast<float*>(kv.k) + off);
    std::copy_n(v, n, static_cast<float*>(kv.v) + off);
    return;
  }
  uint16_t* hk = static_cast<uint16_t*>(kv.k) + off;
  uint16_t* hv = static_cast<uint16_t*>(kv.v) + off;
  for (int64_t i = 0; i < n; ++i) {
    hk[i] = f32_to_f16(k[i]);
    hv[i] = f32_to_f16(v[i]);
  }
}

void paged_attention(const AttnTask* tasks, int64_t n_tasks, const PagedKv& kv, int64_t n_heads,
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
      const AttnTask& task = tasks[t];
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

}  // namespace ms::ops
