#include "model/mixtral.h"

#include <algorithm>
#include <numeric>

#include "core/error.h"
#include "kernels/attention.h"
#include "kernels/ops.h"

namespace ms {

Mixtral::Mixtral(const ModelDesc& desc, const QuantPlan& plan, ThreadPool& pool)
    : cfg_(desc.cfg), pool_(pool), w_(load_weights(desc, plan, pool)) {
  inv_freq_.resize(size_t(cfg_.head_dim / 2));
  ops::rope_inv_freq(cfg_.rope_theta, cfg_.head_dim, inv_freq_.data());
}

void Mixtral::forward(const std::vector<SeqChunk>& chunks, KvCache& kv, ForwardOutput& out) {
  const int64_t H = cfg_.hidden_size, V = cfg_.vocab_size;
  // Validate the step and lay out its tokens.
  T_ = 0;
  for (const SeqChunk& c : chunks) {
    if (c.n_tokens <= 0 || c.pos0 < 0) throw Error(ErrorKind::Internal, "forward: empty chunk");
    const int64_t need = (int64_t(c.pos0) + c.n_tokens + kv.block_size() - 1) / kv.block_size();
    if (c.n_blocks < need) throw Error(ErrorKind::Internal, "forward: block table too short");
    for (int32_t i = 0; i < c.n_blocks; ++i)
      if (c.block_table[i] < 0 || c.block_table[i] >= kv.num_blocks())
        throw Error(ErrorKind::Internal, "forward: block id out of range");
    T_ += c.n_tokens;
  }
  pos_.resize(size_t(T_));
  x_.resize(size_t(T_ * H));
  rope_cs_.resize(size_t(T_ * cfg_.head_dim));
  int64_t t = 0;
  for (const SeqChunk& c : chunks) {
    for (int32_t i = 0; i < c.n_tokens; ++i, ++t) {
      const int32_t tok = c.tokens[i];
      if (tok < 0 || tok >= V) bad_input("token id " + std::to_string(tok) + " outside the vocabulary");
      pos_[size_t(t)] = c.pos0 + i;
      ops::rope_table(cfg_.head_dim, pos_[size_t(t)], inv_freq_.data(), rope_cs_.data() + t * cfg_.head_dim);
      ops::dequantize_row(w_.tok_embd.dtype, w_.tok_embd.row(tok), x_.data() + t * H, H);
    }
  }
  if (cfg_.is_moe()) out.expert_tokens.assign(size_t(cfg_.num_layers * cfg_.num_experts), 0);
  else out.expert_tokens.clear();

  for (int64_t l = 0; l < cfg_.num_layers; ++l) {
    attention_block(l, chunks, kv);
    ffn_block(l, out);
  }

  // Final norm + lm_head on the rows that want logits.
  std::vector<int64_t> rows;
  out.first_row.assign(chunks.size(), -1);
  t = 0;
  for (size_t ci = 0; ci < chunks.size(); ++ci) {
    const SeqChunk& c = chunks[ci];
    if (c.logits == LogitsWanted::All) {
      out.first_row[ci] = int32_t(rows.size());
      for (int32_t i = 0; i < c.n_tokens; ++i) rows.push_back(t + i);
    } else if (c.logits == LogitsWanted::Last) {
      out.first_row[ci] = int32_t(rows.size());
      rows.push_back(t + c.n_tokens - 1);
    }
    t += c.n_tokens;
  }
  out.vocab_size = V;
  out.logits.resize(rows.size() * size_t(V));
  if (rows.empty()) return;
  h_.resize(rows.size() * size_t(H));
  for (size_t r = 0; r < rows.size(); ++r)
    ops::rmsnorm(x_.data() + rows[r] * H, w_.output_norm.data(), H, float(cfg_.rms_norm_eps), h_.data() + r * H);
  ops::matmul(w_.output, h_.data(), H, int64_t(rows.size()), out.logits.data(), V, pool_);
}

void Mixtral::add_shared_input(std::initializer_list<Target> targets, const float* X, int64_t n,
                               ops::QuantizedActs* slots, std::vector<ops::MatTarget>& mt) {
  // One quantization of X per activation format among the weights (they
  // usually share one; a Q4_K_M file mixes legacy and K types).
  bool ready[kActFormats] = {};
  for (const Target& t : targets) {
    const int f = int(ops::act_format(t.w->dtype));
    if (!ready[f]) ops::quantize_acts(t.w->dtype, X, t.w->cols, n, t.w->cols, pool_, &slots[f]);
    ready[f] = true;
    mt.push_back({t.w, t.y, t.ldy, &slots[f]});
  }
}

void Mixtral::attention_block(int64_t l, const std::vector<SeqChunk>& chunks, KvCache& kv) {
  const LayerWeights& lw = w_.layers[size_t(l)];
  const int64_t H = cfg_.hidden_size, D = cfg_.head_dim;
  const int64_t QD = cfg_.num_heads * D, KD = cfg_.num_kv_heads * D;
  const float eps = float(cfg_.rms_norm_eps);
  h_.resize(size_t(T_ * H));
  q_.resize(size_t(T_ * QD));
  k_.resize(size_t(T_ * KD));
  v_.resize(size_t(T_ * KD));
  att_.resize(size_t(T_ * QD));
  proj_.resize(size_t(T_ * H));
  for (int64_t t = 0; t < T_; ++t) ops::rmsnorm(x_.data() + t * H, lw.attn_norm.data(), H, eps, h_.data() + t * H);
  std::vector<ops::MatTarget> mt;
  add_shared_input({{&lw.wq, q_.data(), QD}, {&lw.wk, k_.data(), KD}, {&lw.wv, v_.data(), KD}}, h_.data(), T_, acts_, mt);
  ops::matmul_q_many(mt.data(), int(mt.size()), pool_);

  // Rotary embeddings, then store K/V of the new tokens in the paged cache.
  const ops::PagedKv cache = kv.layer(l);
  int64_t t = 0;
  std::vector<ops::AttnTask> tasks;
  tasks.reserve(chunks.size());
  for (const SeqChunk& c : chunks) {
    tasks.push_back({q_.data() + t * QD, att_.data() + t * QD, c.n_tokens, c.pos0, c.block_table});
    for (int32_t i = 0; i < c.n_tokens; ++i, ++t) {
      const int64_t pos = pos_[size_t(t)];
      const float* cs = rope_cs_.data() + t * D;
      for (int64_t h = 0; h < cfg_.num_heads; ++h) ops::rope_apply(q_.data() + t * QD + h * D, D, cs, cfg_.rope_interleaved);
      for (int64_t h = 0; h < cfg_.num_kv_heads; ++h) ops::rope_apply(k_.data() + t * KD + h * D, D, cs, cfg_.rope_interleaved);
      const int32_t block = c.block_table[pos / kv.block_size()];
      const int32_t slot = int32_t(pos % kv.block_size());
      ops::kv_store(cache, block, slot, k_.data() + t * KD, v_.data() + t * KD);
    }
  }
  ops::paged_attention(tasks.data(), int64_t(tasks.size()), cache, cfg_.num_heads, cfg_.sliding_window, pool_);
  ops::matmul(lw.wo, att_.data(), QD, T_, proj_.data(), H, pool_);
  for (int64_t i = 0; i < T_ * H; ++i) x_[size_t(i)] += proj_[size_t(i)];
}

void Mixtral::ffn_block(int64_t l, ForwardOutput& out) {
  const LayerWeights& lw = w_.layers[size_t(l)];
  const int64_t H = cfg_.hidden_size;
  const float eps = float(cfg_.rms_norm_eps);
  for (int64_t t = 0; t < T_; ++t) ops::rmsnorm(x_.data() + t * H, lw.ffn_norm.data(), H, eps, h_.data() + t * H);
  std::fill(proj_.begin(), proj_.begin() + T_ * H, 0.0f);

  // Routing: which tokens go to which expert, with what weight.
  const int64_t E = cfg_.is_moe() ? cfg_.num_experts : 1;
  std::vector<std::vector<int64_t>> tok_of(static_cast<size_t>(E));
  std::vector<std::vector<float>> wt_of(static_cast<size_t>(E));
  if (!cfg_.is_moe()) {
    tok_of[0].resize(size_t(T_));
    std::iota(tok_of[0].begin(), tok_of[0].end(), 0);
    wt_of[0].assign(size_t(T_), 1.0f);
  } else {
    const int64_t K = cfg_.experts_per_tok;
    router_.resize(size_t(T_ * E));
    ops::matmul(lw.router, h_.data(), H, T_, router_.data(), E, pool_);
    std::vector<int64_t> idx(static_cast<size_t>(E));
    for (int64_t t = 0; t < T_; ++t) {
      float* p = router_.data() + t * E;
      ops::softmax(p, E);
      std::iota(idx.begin(), idx.end(), 0);
      // Top-k by probability; equal probabilities keep the lower expert index first.
      std::partial_sort(idx.begin(), idx.begin() + K, idx.end(),
                        [&](int64_t a, int64_t b) { return p[a] > p[b] || (p[a] == p[b] && a < b); });
      float sum = 0.0f;
      for (int64_t k = 0; k < K; ++k) sum += p[idx[size_t(k)]];
      for (int64_t k = 0; k < K; ++k) {
        const int64_t e = idx[size_t(k)];
        tok_of[size_t(e)].push_back(t);
        wt_of[size_t(e)].push_back(p[e] / sum);
        out.expert_tokens[size_t(l * E + e)] += 1;
      }
    }
  }

  // Each chosen expert runs once over all of its tokens. Experts run in
  // groups of consecutive indices holding up to kGroupRows routed tokens
  // (whole layers at decode batch sizes), each group as one pass per matmul.
  constexpr int64_t kGroupRows = 256;
  for (int64_t e0 = 0; e0 < E;) {
    int64_t e1 = e0 + 1, rows = int64_t(tok_of[size_t(e0)].size());
    while (e1 < E && rows + int64_t(tok_of[size_t(e1)].size()) <= kGroupRows) rows += int64_t(tok_of[size_t(e1++)].size());
    expert_group(lw, e0, e1, tok_of, wt_of);
    e0 = e1;
  }
  for (int64_t i = 0; i < T_ * H; ++i) x_[size_t(i)] += proj_[size_t(i)];
}

void Mixtral::expert_group(const LayerWeights& lw, int64_t e0, int64_t e1,
                           const std::vector<std::vector<int64_t>>& tok_of,
                           const std::vector<std::vector<float>>& wt_of) {
  const int64_t H = cfg_.hidden_size, F = cfg_.intermediate_size;
  // Expert e's tokens are rows off[e]..off[e+1] of the gathered buffers. One
  // parallel pass for all gate and up matmuls, one for all down matmuls:
  // threads take rows of any expert as they finish, so there is one
  // fork-join per pass rather than three per expert, and no tail per expert.
  std::vector<int64_t> off(static_cast<size_t>(e1 - e0) + 1, 0);
  for (int64_t e = e0; e < e1; ++e) off[size_t(e - e0) + 1] = off[size_t(e - e0)] + int64_t(tok_of[size_t(e)].size());
  const int64_t R = off.back();
  if (R == 0) return;
  xe_.resize(size_t(R * H));
  g_.resize(size_t(R * F));
  u_.resize(size_t(R * F));
  ye_.resize(size_t(R * H));
  if (expert_acts_.size() < size_t(kActFormats * (e1 - e0))) expert_acts_.resize(size_t(kActFormats * (e1 - e0)));
  std::vector<ops::MatTarget> mt;
  for (int64_t e = e0; e < e1; ++e) {
    const auto& toks = tok_of[size_t(e)];
    const int64_t n = int64_t(toks.size()), o = off[size_t(e - e0)];
    if (n == 0) continue;
    float* xe = xe_.data() + o * H;
    for (int64_t i = 0; i < n; ++i) std::copy_n(h_.data() + toks[size_t(i)] * H, H, xe + i * H);
    add_shared_input({{&lw.w1[size_t(e)], g_.data() + o * F, F}, {&lw.w3[size_t(e)], u_.data() + o * F, F}}, xe, n,
                     &expert_acts_[size_t(kActFormats * (e - e0))], mt);
  }
  ops::matmul_q_many(mt.data(), int(mt.size()), pool_);
  // Elementwise over the R x F block, split over the pool (results do not
  // depend on the split).
  pool_.parallel_for(R * F, 4096, [&](int64_t b, int64_t e, int) {
    ops::silu_mul(g_.data() + b, u_.data() + b, e - b, g_.data() + b);
  });
  mt.clear();
  for (int64_t e = e0; e < e1; ++e) {
    const int64_t n = off[size_t(e - e0) + 1] - off[size_t(e - e0)], o = off[size_t(e - e0)];
    if (n == 0) continue;
    add_shared_input({{&lw.w2[size_t(e)], ye_.data() + o * H, H}}, g_.data() + o * F, n,
                     &expert_acts_[size_t(kActFormats * (e - e0))], mt);
  }
  ops::matmul_q_many(mt.data(), int(mt.size()), pool_);
  // Weighted sum into each token's row, experts in index order (the same
  // order whatever the batch and the grouping).
  for (int64_t e = e0; e < e1; ++e) {
    const auto& toks = tok_of[size_t(e)];
    for (size_t i = 0; i < toks.size(); ++i) {
      float* dst = proj_.data() + toks[i] * H;
      const float* src = ye_.data() + (off[size_t(e - e0)] + int64_t(i)) * H;
      const float wgt = wt_of[size_t(e)][i];
      for (int64_t c = 0; c < H; ++c) dst[c] += wgt * src[c];
    }
  }
}

}  // namespace ms
