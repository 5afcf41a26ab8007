// attention.cpp — rotary embeddings, KV stores, and paged attention dispatched at
// run time to the AVX-512 / AVX2 kernels (kernels/cpu/attention_*.cpp) or the
// scalar reference (kernels/ref/attention_ref.cpp).
#include "kernels/attention.h"

#include <algorithm>
#include <cmath>
#include <string>
#include <vector>

#include "core/dtype.h"
#include "core/error.h"
#include "core/aligned.h"
#include "kernels/cpu/dispatch.h"
#include "kernels/ops.h"
#include "kernels/ref/attention_ref.h"

namespace ms {

namespace cpu {

int64_t attn_scratch_floats(const AttnItem& a) {
  const int64_t dp = (a.head_dim + 15) / 16 * 16, R = a.nt * a.group;
  const int64_t p_first = a.pos0 + a.t0, p_last = p_first + a.nt - 1;
  const int64_t u0 = a.window > 0 ? std::max<int64_t>(0, p_first - a.window + 1) : 0;
  const int64_t span = (p_last + 1 - u0 / 16 * 16 + 15) / 16 * 16;
  return 2 * R * dp + 2 * 16 * dp + R * span;
}

}  // namespace cpu

namespace ops {

void rope_inv_freq(double theta, int64_t head_dim, float* inv_freq) {
  // As HF computes it: in float32, 1 / theta ** (2i / head_dim).
  for (int64_t i = 0; i < head_dim / 2; ++i) {
    const float expo = float(2 * i) / float(head_dim);
    inv_freq[i] = 1.0f / std::pow(float(theta), expo);
  }
}

void rope_table(int64_t head_dim, int64_t pos, const float* inv_freq, float* cs) {
  const int64_t half = head_dim / 2;
  for (int64_t i = 0; i < half; ++i) {
    const float angle = float(pos) * inv_freq[i];
    cs[i] = float(std::cos(double(angle)));
    cs[half + i] = float(std::sin(double(angle)));
  }
}

void rope_apply(float* x, int64_t head_dim, const float* cs, bool interleaved) {
  const int64_t half = head_dim / 2;
  for (int64_t i = 0; i < half; ++i) {
    const float c = cs[i], s = cs[half + i];
    const int64_t a = interleaved ? 2 * i : i;
    const int64_t b = interleaved ? 2 * i + 1 : i + half;
    const float x0 = x[a], x1 = x[b];
    x[a] = x0 * c - x1 * s;
    x[b] = x1 * c + x0 * s;
  }
}

namespace {

constexpr int64_t kTargetRows = 64;            // query rows per work item (tokens x group)
constexpr int64_t kMaxScoreFloats = 1 << 19;   // cap on an item's score buffer (2 MiB)

}  // namespace

void f32_to_f16_row(const float* x, uint16_t* y, int64_t n) { cpu::kernels().f32_to_f16_row(x, y, n); }

void kv_store(const PagedKv& kv, int32_t block, int32_t slot, const float* k, const float* v) {
  const int64_t d = kv.head_dim;
  for (int64_t h = 0; h < kv.n_kv_heads; ++h) {
    const int64_t off = kv.offset(block, slot, h);
    if (kv.dtype == KvDType::F32) {
      std::copy_n(k + h * d, d, static_cast<float*>(kv.k) + off);
      std::copy_n(v + h * d, d, static_cast<float*>(kv.v) + off);
    } else {
      f32_to_f16_row(k + h * d, static_cast<uint16_t*>(kv.k) + off, d);
      f32_to_f16_row(v + h * d, static_cast<uint16_t*>(kv.v) + off, d);
    }
  }
}

void paged_attention(const AttnTask* tasks, int64_t n_tasks, const PagedKv& kv, int64_t n_heads,
                     int64_t window, ThreadPool& pool) {
  paged_attention(tasks, n_tasks, kv, n_heads, window, pool, AttnImpl::Auto);
}

void paged_attention(const AttnTask* tasks, int64_t n_tasks, const PagedKv& kv, int64_t n_heads,
                     int64_t window, ThreadPool& pool, AttnImpl impl) {
  if (kv.n_kv_heads <= 0 || n_heads % kv.n_kv_heads != 0 || kv.head_dim <= 0 || kv.block_size <= 0)
    throw Error(ErrorKind::Internal, "paged_attention: bad head counts or cache shape");
  const cpu::KernelTable* k = impl == AttnImpl::Auto     ? &cpu::kernels()
                             : impl == AttnImpl::Avx512 ? cpu::kernels_at(cpu::Isa::Avx512)
                             : impl == AttnImpl::Avx2   ? cpu::kernels_at(cpu::Isa::Avx2)
                                                        : cpu::kernels_at(cpu::Isa::Scalar);
  if (!k) throw Error(ErrorKind::Unsupported, "paged_attention: the CPU lacks the requested ISA");
  if (!k->attention) return ref::paged_attention(tasks, n_tasks, kv, n_heads, window, pool);
  const auto attention = k->attention;

  // Work items (task, KV head, block of tokens); results do not depend on the
  // blocking, so it is chosen for speed: ~kTargetRows rows sharing each K/V
  // row, enough items for the threads, a bounded score buffer.
  const int64_t group = n_heads / kv.n_kv_heads;
  int64_t max_ctx = 1, n_rows = 0;
  for (int64_t t = 0; t < n_tasks; ++t) {
    max_ctx = std::max<int64_t>(max_ctx, int64_t(tasks[t].pos0) + tasks[t].n_tokens);
    n_rows += int64_t(tasks[t].n_tokens) * group;
  }
  if (window > 0) max_ctx = std::min(max_ctx, window);
  int64_t tb = std::max<int64_t>(1, kTargetRows / group);
  while (tb > 1 && (n_rows * kv.n_kv_heads / (tb * group) < 4 * pool.size() ||
                    tb * group * (max_ctx + tb + 32) > kMaxScoreFloats))
    tb /= 2;
  struct Item { int64_t task, kvh, t0, nt; };
  std::vector<Item> items;
  for (int64_t t = 0; t < n_tasks; ++t)
    for (int64_t h = 0; h < kv.n_kv_heads; ++h)
      for (int64_t t0 = 0; t0 < tasks[t].n_tokens; t0 += tb)
        items.push_back({t, h, t0, std::min<int64_t>(tb, tasks[t].n_tokens - t0)});

  const float scale = 1.0f / std::sqrt(float(kv.head_dim));
  pool.parallel_for_dynamic(int64_t(items.size()), 1, 4, [&](int64_t b, int64_t e, int) {
    thread_local AlignedBuffer<float> scratch;
    for (int64_t i = b; i < e; ++i) {
      const Item& it = items[size_t(i)];
      const AttnTask& task = tasks[it.task];
      cpu::AttnItem a{kv.k,        kv.v,     kv.dtype == KvDType::F16, kv.block_size, kv.n_kv_heads,
                      kv.head_dim, n_heads,  group,                    it.kvh,        task.block_table,
                      task.q,      task.out, task.pos0,                it.t0,         it.nt,
                      window,      scale,    nullptr};
      scratch.resize(size_t(cpu::attn_scratch_floats(a)));
      a.scratch = scratch.data();
      attention(a);
    }
  });
}

}  // namespace ops
}  // namespace ms
