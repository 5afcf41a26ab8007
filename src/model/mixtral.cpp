#include "model/mixtral.h"

#include <string>

#include "core/error.h"

namespace ms {

namespace {
RunShape run_shape(const ModelConfig& c) {
  RunShape s;
  s.hidden = c.hidden_size;
  s.n_heads = c.num_heads;
  s.n_kv_heads = c.num_kv_heads;
  s.head_dim = c.head_dim;
  s.ffn = c.intermediate_size;
  s.n_experts = c.is_moe() ? c.num_experts : 0;
  s.top_k = c.is_moe() ? c.experts_per_tok : 0;
  s.rms_eps = float(c.rms_norm_eps);
  s.rope_theta = c.rope_theta;
  s.rope_interleaved = c.rope_interleaved;
  s.window = c.sliding_window;
  return s;
}
}  // namespace

Mixtral::Mixtral(const ModelDesc& desc, const QuantPlan& plan, Backend& backend)
    : cfg_(desc.cfg), be_(backend), w_(load_weights(desc, plan, be_)), rs_(be_.new_run_state(run_shape(cfg_))) {}

Mixtral::Mixtral(const ModelDesc& desc, const QuantPlan& plan, ThreadPool& pool)
    : cfg_(desc.cfg),
      own_backend_(make_backend("cpu", pool)),
      be_(*own_backend_),
      w_(load_weights(desc, plan, be_)),
      rs_(be_.new_run_state(run_shape(cfg_))) {}

void Mixtral::forward(const std::vector<SeqChunk>& chunks, KvCache& kv, ForwardOutput& out) {
  const int64_t V = cfg_.vocab_size;
  // Validate the step.
  seqs_.clear();
  for (const SeqChunk& c : chunks) {
    if (c.n_tokens <= 0 || c.pos0 < 0) throw Error(ErrorKind::Internal, "forward: empty chunk");
    const int64_t need = (int64_t(c.pos0) + c.n_tokens + kv.block_size() - 1) / kv.block_size();
    if (c.n_blocks < need) throw Error(ErrorKind::Internal, "forward: block table too short");
    for (int32_t i = 0; i < c.n_blocks; ++i)
      if (c.block_table[i] < 0 || c.block_table[i] >= kv.num_blocks())
        throw Error(ErrorKind::Internal, "forward: block id out of range");
  }
  for (const SeqChunk& c : chunks) {
    for (int32_t i = 0; i < c.n_tokens; ++i)
      if (c.tokens[i] < 0 || c.tokens[i] >= V)
        bad_input("token id " + std::to_string(c.tokens[i]) + " outside the vocabulary");
    seqs_.push_back({c.tokens, c.n_tokens, c.pos0, c.block_table});
  }
  if (cfg_.is_moe()) out.expert_tokens.assign(size_t(cfg_.num_layers * cfg_.num_experts), 0);
  else out.expert_tokens.clear();
  out.routing.clear();
  out.routing_layers = out.routing_k = 0;
  if (out.want_routing && cfg_.is_moe()) {
    int64_t T = 0;
    for (const SeqChunk& c : chunks) T += c.n_tokens;
    out.routing_layers = int32_t(cfg_.num_layers);
    out.routing_k = int32_t(cfg_.experts_per_tok);
    out.routing.assign(size_t(T * cfg_.num_layers * cfg_.experts_per_tok), -1);
  }

  RunState& rs = *rs_;
  be_.begin_step(rs, seqs_.data(), int64_t(seqs_.size()));
  be_.embed(rs, w_.tok_embd);
  for (int64_t l = 0; l < cfg_.num_layers; ++l) {
    const LayerWeights& lw = w_.layers[size_t(l)];
    const ops::PagedKv cache = kv.layer(l);
    // Attention block.
    be_.rmsnorm(rs, lw.attn_norm);
    be_.qkv(rs, lw.wq, lw.wk, lw.wv);
    be_.rope_store_kv(rs, cache);
    be_.attention(rs, cache);
    be_.out_proj_add(rs, lw.wo);
    // Feed-forward block: experts chosen per token by the router.
    be_.rmsnorm(rs, lw.ffn_norm);
    if (cfg_.is_moe())
      be_.route_top_k(rs, lw.router, out.expert_tokens.data() + l * cfg_.num_experts,
                      out.routing.empty() ? nullptr : out.routing.data() + l * cfg_.experts_per_tok,
                      cfg_.num_layers * cfg_.experts_per_tok);
    else be_.route_dense(rs);
    be_.experts_add(rs, lw.w1.data(), lw.w3.data(), lw.w2.data());
  }

  // Final norm + lm_head on the rows that want logits, then the rows that
  // want only their greedy token (after them: their logits rows are left
  // unwritten when the backend fuses the argmax into the lm_head).
  std::vector<int64_t> rows;
  int64_t n_scored = 0;  // rows [0, n_scored) get logits; the rest only their greedy token
  out.first_row.assign(chunks.size(), -1);
  for (int pass = 0; pass < 2; ++pass) {
    int64_t t = 0;
    for (size_t ci = 0; ci < chunks.size(); ++ci) {
      const SeqChunk& c = chunks[ci];
      if ((c.logits == LogitsWanted::Greedy) == (pass == 1) && c.logits != LogitsWanted::None) {
        out.first_row[ci] = int32_t(rows.size());
        if (c.logits == LogitsWanted::All)
          for (int32_t i = 0; i < c.n_tokens; ++i) rows.push_back(t + i);
        else rows.push_back(t + c.n_tokens - 1);
      }
      t += c.n_tokens;
    }
    if (pass == 0) n_scored = int64_t(rows.size());
  }
  out.vocab_size = V;
  out.logits.resize(rows.size() * size_t(V));
  out.argmax.clear();
  if (rows.empty()) return;
  const int64_t n_greedy = int64_t(rows.size()) - n_scored;
  if (n_scored > 0) be_.logits(rs, rows.data(), n_scored, w_.output_norm, w_.output, out.logits.data());
  if (out.want_argmax || n_greedy > 0) out.argmax.assign(rows.size(), -1);
  if (out.want_argmax && n_scored > 0) be_.argmax_rows(out.logits.data(), n_scored, V, out.argmax.data());
  if (n_greedy > 0)
    be_.greedy_tokens(rs, rows.data() + n_scored, n_greedy, w_.output_norm, w_.output,
                      out.logits.data() + n_scored * V, out.argmax.data() + n_scored);
}

}  // namespace ms
