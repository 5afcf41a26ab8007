// cpu_backend.cpp — the CPU backend's ops (cpu_backend.h). Baseline code: the
// arithmetic is in the kernels of ops.h / attention.h, chosen at run time.
#include "kernels/cpu/cpu_backend.h"

#include <algorithm>
#include <numeric>

#include "core/argmax.h"
#include "kernels/attention.h"

namespace ms::cpu {

struct CpuBackend::State final : RunState {
  using FVec = std::vector<float, AlignedAllocator<float>>;
  RunShape sh;
  std::vector<float> inv_freq;    // [head_dim/2]
  int64_t T = 0;                  // tokens in the step
  std::vector<StepSeq> seqs;
  std::vector<int32_t> pos;       // [T] position of each token
  std::vector<float> rope_cs;     // [T][head_dim] cos, then sin, of each token's rotation
  FVec x;                         // [T][hidden] residual stream
  FVec h;                         // [T][hidden] normed input of a block
  FVec q;                         // [T][n_heads*head_dim]
  FVec k, v;                      // [T][n_kv_heads*head_dim]
  FVec att;                       // [T][n_heads*head_dim]
  FVec proj;                      // [T][hidden] block output
  FVec router;                    // [T][n_experts]
  FVec xe, g, u, ye;              // expert scratch over an expert group's R routed rows:
                                  // [R][hidden], [R][ffn], [R][ffn], [R][hidden]
  ops::QuantizedActs acts[ops::kActFormats];  // the attention input, per activation format
  // Per expert of a group, kActFormats slots: its tokens' input (gate, up),
  // then its SiLU-gated hidden (down).
  std::vector<ops::QuantizedActs> expert_acts;
  // Routing of the current layer: tokens of each expert and their weights.
  std::vector<std::vector<int64_t>> tok_of;
  std::vector<std::vector<float>> wt_of;
};

namespace {
CpuBackend::State& st(RunState& rs) { return static_cast<CpuBackend::State&>(rs); }
}  // namespace

std::unique_ptr<RunState> CpuBackend::new_run_state(const RunShape& shape) {
  auto s = std::make_unique<State>();
  s->sh = shape;
  s->inv_freq.resize(size_t(shape.head_dim / 2));
  ops::rope_inv_freq(shape.rope_theta, shape.head_dim, s->inv_freq.data());
  return s;
}

void CpuBackend::begin_step(RunState& rs, const StepSeq* seqs, int64_t n_seqs) {
  State& s = st(rs);
  const int64_t D = s.sh.head_dim;
  s.seqs.assign(seqs, seqs + n_seqs);
  s.T = 0;
  for (const StepSeq& c : s.seqs) s.T += c.n_tokens;
  s.pos.resize(size_t(s.T));
  s.rope_cs.resize(size_t(s.T * D));
  int64_t t = 0;
  for (const StepSeq& c : s.seqs)
    for (int32_t i = 0; i < c.n_tokens; ++i, ++t) {
      s.pos[size_t(t)] = c.pos0 + i;
      ops::rope_table(D, s.pos[size_t(t)], s.inv_freq.data(), s.rope_cs.data() + t * D);
    }
}

void CpuBackend::embed(RunState& rs, const MatView& table) {
  State& s = st(rs);
  const int64_t H = s.sh.hidden;
  s.x.resize(size_t(s.T * H));
  int64_t t = 0;
  for (const StepSeq& c : s.seqs)
    for (int32_t i = 0; i < c.n_tokens; ++i, ++t)
      ops::dequantize_row(table.dtype, table.row(c.tokens[i]), s.x.data() + t * H, H);
}

void CpuBackend::rmsnorm(RunState& rs, const float* w) {
  State& s = st(rs);
  const int64_t H = s.sh.hidden;
  s.h.resize(size_t(s.T * H));
  for (int64_t t = 0; t < s.T; ++t) ops::rmsnorm(s.x.data() + t * H, w, H, s.sh.rms_eps, s.h.data() + t * H);
}

namespace {
// One quantization of X per activation format among the weights (they
// usually share one; a Q4_K_M file mixes legacy and K types).
void shared_input(std::initializer_list<CpuBackend::Target> targets, const float* X, int64_t n,
                  ops::QuantizedActs* slots, std::vector<ops::MatTarget>& mt, ThreadPool& pool) {
  bool ready[ops::kActFormats] = {};
  for (const auto& t : targets) {
    const int f = int(ops::act_format(t.w->dtype));
    if (!ready[f]) ops::quantize_acts(t.w->dtype, X, t.w->cols, n, t.w->cols, pool, &slots[f]);
    ready[f] = true;
    mt.push_back({t.w, t.y, t.ldy, &slots[f]});
  }
}
}  // namespace

void CpuBackend::add_shared_input(std::initializer_list<Target> targets, const float* X, int64_t n,
                                  ops::QuantizedActs* slots, std::vector<ops::MatTarget>& mt) {
  shared_input(targets, X, n, slots, mt, pool_);
}

void CpuBackend::add_shared_input_serial(std::initializer_list<Target> targets, const float* X, int64_t n,
                                         ops::QuantizedActs* slots, std::vector<ops::MatTarget>& mt) {
  shared_input(targets, X, n, slots, mt, serial_);
}

void CpuBackend::qkv(RunState& rs, const MatView& wq, const MatView& wk, const MatView& wv) {
  State& s = st(rs);
  const int64_t D = s.sh.head_dim, QD = s.sh.n_heads * D, KD = s.sh.n_kv_heads * D;
  s.q.resize(size_t(s.T * QD));
  s.k.resize(size_t(s.T * KD));
  s.v.resize(size_t(s.T * KD));
  std::vector<ops::MatTarget> mt;
  add_shared_input({{&wq, s.q.data(), QD}, {&wk, s.k.data(), KD}, {&wv, s.v.data(), KD}}, s.h.data(), s.T, s.acts,
                   mt);
  ops::matmul_q_many(mt.data(), int(mt.size()), pool_);
}

void CpuBackend::rope_store_kv(RunState& rs, const ops::PagedKv& cache) {
  State& s = st(rs);
  const int64_t D = s.sh.head_dim, QD = s.sh.n_heads * D, KD = s.sh.n_kv_heads * D;
  int64_t t = 0;
  for (const StepSeq& c : s.seqs) {
    for (int32_t i = 0; i < c.n_tokens; ++i, ++t) {
      const int64_t pos = s.pos[size_t(t)];
      const float* cs = s.rope_cs.data() + t * D;
      for (int64_t h = 0; h < s.sh.n_heads; ++h) ops::rope_apply(s.q.data() + t * QD + h * D, D, cs, s.sh.rope_interleaved);
      for (int64_t h = 0; h < s.sh.n_kv_heads; ++h)
        ops::rope_apply(s.k.data() + t * KD + h * D, D, cs, s.sh.rope_interleaved);
      const int32_t block = c.block_table[pos / cache.block_size];
      const int32_t slot = int32_t(pos % cache.block_size);
      ops::kv_store(cache, block, slot, s.k.data() + t * KD, s.v.data() + t * KD);
    }
  }
}

void CpuBackend::attention(RunState& rs, const ops::PagedKv& cache) {
  State& s = st(rs);
  const int64_t QD = s.sh.n_heads * s.sh.head_dim;
  s.att.resize(size_t(s.T * QD));
  std::vector<ops::AttnTask> tasks;
  tasks.reserve(s.seqs.size());
  int64_t t = 0;
  for (const StepSeq& c : s.seqs) {
    tasks.push_back({s.q.data() + t * QD, s.att.data() + t * QD, c.n_tokens, c.pos0, c.block_table});
    t += c.n_tokens;
  }
  ops::paged_attention(tasks.data(), int64_t(tasks.size()), cache, s.sh.n_heads, s.sh.window, pool_);
}

void CpuBackend::out_proj_add(RunState& rs, const MatView& wo) {
  State& s = st(rs);
  const int64_t H = s.sh.hidden, QD = s.sh.n_heads * s.sh.head_dim;
  s.proj.resize(size_t(s.T * H));
  ops::matmul(wo, s.att.data(), QD, s.T, s.proj.data(), H, pool_);
  for (int64_t i = 0; i < s.T * H; ++i) s.x[size_t(i)] += s.proj[size_t(i)];
}

void CpuBackend::route_dense(RunState& rs) {
  State& s = st(rs);
  s.tok_of.assign(1, {});
  s.wt_of.assign(1, {});
  s.tok_of[0].resize(size_t(s.T));
  std::iota(s.tok_of[0].begin(), s.tok_of[0].end(), 0);
  s.wt_of[0].assign(size_t(s.T), 1.0f);
}

void CpuBackend::route_top_k(RunState& rs, const MatView& router, int64_t* counts, int32_t* routes,
                             int64_t route_stride) {
  State& s = st(rs);
  const int64_t H = s.sh.hidden, E = s.sh.n_experts, K = s.sh.top_k;
  s.tok_of.assign(size_t(E), {});
  s.wt_of.assign(size_t(E), {});
  s.router.resize(size_t(s.T * E));
  ops::matmul(router, s.h.data(), H, s.T, s.router.data(), E, pool_);
  std::vector<int64_t> idx(static_cast<size_t>(E));
  for (int64_t t = 0; t < s.T; ++t) {
    float* p = s.router.data() + t * E;
    ops::softmax(p, E);
    std::iota(idx.begin(), idx.end(), 0);
    // Top-k by probability; equal probabilities keep the lower expert index first.
    std::partial_sort(idx.begin(), idx.begin() + K, idx.end(),
                      [&](int64_t a, int64_t b) { return p[a] > p[b] || (p[a] == p[b] && a < b); });
    float sum = 0.0f;
    for (int64_t k = 0; k < K; ++k) sum += p[idx[size_t(k)]];
    for (int64_t k = 0; k < K; ++k) {
      const int64_t e = idx[size_t(k)];
      s.tok_of[size_t(e)].push_back(t);
      s.wt_of[size_t(e)].push_back(p[e] / sum);
      counts[e] += 1;
      if (routes) routes[t * route_stride + k] = int32_t(e);
    }
  }
}

void CpuBackend::experts_add(RunState& rs, const MatView* w1, const MatView* w3, const MatView* w2) {
  State& s = st(rs);
  const int64_t H = s.sh.hidden, E = int64_t(s.tok_of.size());
  s.proj.resize(size_t(s.T * H));
  std::fill(s.proj.begin(), s.proj.begin() + s.T * H, 0.0f);
  // Each chosen expert runs once over all of its tokens. Experts run in
  // groups of consecutive indices holding up to kGroupRows routed tokens
  // (whole layers up to 512-token steps at top-2), each group as one pass
  // per matmul: one fork-join and one tail for all experts, not one per
  // group of 256 rows (4 or more per layer at 512 tokens before).
  constexpr int64_t kGroupRows = 1024;
  for (int64_t e0 = 0; e0 < E;) {
    int64_t e1 = e0 + 1, rows = int64_t(s.tok_of[size_t(e0)].size());
    while (e1 < E && rows + int64_t(s.tok_of[size_t(e1)].size()) <= kGroupRows)
      rows += int64_t(s.tok_of[size_t(e1++)].size());
    expert_group(s, w1, w3, w2, e0, e1);
    e0 = e1;
  }
  for (int64_t i = 0; i < s.T * H; ++i) s.x[size_t(i)] += s.proj[size_t(i)];
}

void CpuBackend::expert_group(State& s, const MatView* w1, const MatView* w3, const MatView* w2, int64_t e0,
                              int64_t e1) {
  const int64_t H = s.sh.hidden, F = s.sh.ffn;
  constexpr int kActFormats = ops::kActFormats;
  const auto& tok_of = s.tok_of;
  const auto& wt_of = s.wt_of;
  // Expert e's tokens are rows off[e]..off[e+1] of the gathered buffers. One
  // parallel pass for all gate and up matmuls, one for all down matmuls:
  // threads take rows of any expert as they finish, so there is one
  // fork-join per pass rather than three per expert, and no tail per expert.
  std::vector<int64_t> off(static_cast<size_t>(e1 - e0) + 1, 0);
  for (int64_t e = e0; e < e1; ++e) off[size_t(e - e0) + 1] = off[size_t(e - e0)] + int64_t(tok_of[size_t(e)].size());
  const int64_t R = off.back();
  if (R == 0) return;
  s.xe.resize(size_t(R * H));
  s.g.resize(size_t(R * F));
  s.u.resize(size_t(R * F));
  s.ye.resize(size_t(R * H));
  if (s.expert_acts.size() < size_t(kActFormats * (e1 - e0))) s.expert_acts.resize(size_t(kActFormats * (e1 - e0)));
  // Gathering and quantizing the experts' inputs (and below, their hidden
  // states) is one parallel region over the experts, each expert on one
  // thread: one fork-join per layer instead of one per expert and format.
  // Quantization is per row, so the bits are those of one call per expert.
  std::vector<std::vector<ops::MatTarget>> mte(static_cast<size_t>(e1 - e0));
  auto per_expert = [&](auto&& fn) {
    if (R * H < (int64_t(1) << 16))
      fn(int64_t(0), e1 - e0, 0);
    else
      pool_.parallel_for_dynamic(e1 - e0, 1, 1, fn);
  };
  per_expert([&](int64_t i0, int64_t i1, int) {
    for (int64_t i = i0; i < i1; ++i) {
      const int64_t e = e0 + i;
      const auto& toks = tok_of[size_t(e)];
      const int64_t n = int64_t(toks.size()), o = off[size_t(i)];
      if (n == 0) continue;
      float* xe = s.xe.data() + o * H;
      for (int64_t r = 0; r < n; ++r) std::copy_n(s.h.data() + toks[size_t(r)] * H, H, xe + r * H);
      add_shared_input_serial({{&w1[size_t(e)], s.g.data() + o * F, F}, {&w3[size_t(e)], s.u.data() + o * F, F}}, xe,
                              n, &s.expert_acts[size_t(kActFormats * i)], mte[size_t(i)]);
    }
  });
  std::vector<ops::MatTarget> mt;
  for (const auto& v : mte) mt.insert(mt.end(), v.begin(), v.end());
  ops::matmul_q_many(mt.data(), int(mt.size()), pool_);
  // Elementwise over the R x F block, split over the pool (results do not
  // depend on the split).
  pool_.parallel_for(R * F, 4096, [&](int64_t b, int64_t e, int) {
    ops::silu_mul(s.g.data() + b, s.u.data() + b, e - b, s.g.data() + b);
  });
  for (auto& v : mte) v.clear();
  per_expert([&](int64_t i0, int64_t i1, int) {
    for (int64_t i = i0; i < i1; ++i) {
      const int64_t e = e0 + i, n = off[size_t(i) + 1] - off[size_t(i)], o = off[size_t(i)];
      if (n == 0) continue;
      add_shared_input_serial({{&w2[size_t(e)], s.ye.data() + o * H, H}}, s.g.data() + o * F, n,
                              &s.expert_acts[size_t(kActFormats * i)], mte[size_t(i)]);
    }
  });
  mt.clear();
  for (const auto& v : mte) mt.insert(mt.end(), v.begin(), v.end());
  ops::matmul_q_many(mt.data(), int(mt.size()), pool_);
  // Weighted sum into each token's row, experts in index order (the same
  // order whatever the batch and the grouping).
  for (int64_t e = e0; e < e1; ++e) {
    const auto& toks = tok_of[size_t(e)];
    for (size_t i = 0; i < toks.size(); ++i) {
      float* dst = s.proj.data() + toks[i] * H;
      const float* src = s.ye.data() + (off[size_t(e - e0)] + int64_t(i)) * H;
      const float wgt = wt_of[size_t(e)][i];
      for (int64_t c = 0; c < H; ++c) dst[c] += wgt * src[c];
    }
  }
}

void CpuBackend::logits(RunState& rs, const int64_t* rows, int64_t n_rows, const float* norm, const MatView& wout,
                        float* logits) {
  State& s = st(rs);
  final_norm(s, rows, n_rows, norm);
  ops::matmul(wout, s.h.data(), s.sh.hidden, n_rows, logits, wout.rows, pool_);
}

void CpuBackend::greedy_tokens(RunState& rs, const int64_t* rows, int64_t n_rows, const float* norm,
                               const MatView& wout, float* scratch, int32_t* out) {
  State& s = st(rs);
  final_norm(s, rows, n_rows, norm);
  if (ops::matmul_argmax(wout, s.h.data(), s.sh.hidden, n_rows, out, pool_)) return;
  ops::matmul(wout, s.h.data(), s.sh.hidden, n_rows, scratch, wout.rows, pool_);
  argmax_rows(scratch, n_rows, wout.rows, out);
}

void CpuBackend::final_norm(State& s, const int64_t* rows, int64_t n_rows, const float* norm) {
  const int64_t H = s.sh.hidden;
  s.h.resize(size_t(n_rows * H));
  for (int64_t r = 0; r < n_rows; ++r) ops::rmsnorm(s.x.data() + rows[r] * H, norm, H, s.sh.rms_eps, s.h.data() + r * H);
}

void CpuBackend::argmax_rows(const float* logits, int64_t n_rows, int64_t vocab, int32_t* out) {
  // A row is one pass over vocab floats: split by rows, enough of them for
  // the threads to share (a few rows run here, on the caller's thread).
  if (n_rows < 2 * pool_.size()) return Backend::argmax_rows(logits, n_rows, vocab, out);
  pool_.parallel_for(n_rows, 1, [&](int64_t r0, int64_t r1, int) {
    for (int64_t r = r0; r < r1; ++r) out[r] = greedy_argmax(logits + r * vocab, vocab);
  });
}

}  // namespace ms::cpu
