#include "kernels/attention.h"

#include <cmath>
#include <vector>

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

// One query head at one position: out = softmax(q·K / sqrt(d)) V over keys [j0, j1].
void attend_one(const float* q, float* out, const PagedKv& kv, const int32_t* table, int64_t kvh, int64_t j0,
                int64_t j1, float scale, std::vector<float>& scores) {
  const int64_t d = kv.head_dim;
  const int64_t n = j1 - j0 + 1;
  scores.resize(size_t(n));
  float mx = -INFINITY;
  for (int64_t j = j0; j <= j1; ++j) {
    const float* k = kv.k_at(table[j / kv.block_size], int32_t(j % kv.block_size)) + kvh * d;
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
    const float* v = kv.v_at(table[j / kv.block_size], int32_t(j % kv.block_size)) + kvh * d;
    const float p = scores[size_t(j - j0)] * inv;
    for (int64_t c = 0; c < d; ++c) out[c] += p * v[c];
  }
}

}  // namespace

void paged_attention(const AttnTask* tasks, int64_t n_tasks, const PagedKv& kv, int64_t n_heads,
                     int64_t window, ThreadPool& pool) {
  // Flatten (task, token, head) into one index space for the pool.
  std::vector<int64_t> start(size_t(n_tasks) + 1, 0);
  for (int64_t t = 0; t < n_tasks; ++t) start[size_t(t) + 1] = start[size_t(t)] + int64_t(tasks[t].n_tokens) * n_heads;
  const int64_t total = start[size_t(n_tasks)];
  const int64_t group = n_heads / kv.n_kv_heads;
  const float scale = 1.0f / std::sqrt(float(kv.head_dim));
  pool.parallel_for(total, [&](int64_t b, int64_t e, int) {
    std::vector<float> scores;
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
      attend_one(q, out, kv, task.block_table, h / group, j0, pos, scale, scores);
    }
  });
}

}  // namespace ms::ops
