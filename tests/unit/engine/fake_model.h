// fake_model.h — a ModelRunner that really goes through the paged KV cache.
//
// The fake keeps a "KV cache" of num_blocks * block_size slots holding token
// ids. forward() writes each new token into the slot its block table and
// position designate, and the logits for a position are a deterministic
// function of ALL the tokens read back through the block table for positions
// [0, pos]. So any block-table, prefix-cache, chunking or preemption mistake
// (a wrong block, a block reused while still in use, a stale cached block)
// changes the outputs. Misuse (tables too short, ids out of range, reads of
// never-written slots, two chunks writing one slot) is recorded in errors().
#pragma once
#include <algorithm>
#include <cstdint>
#include <limits>
#include <mutex>
#include <stdexcept>
#include <string>
#include <vector>

#include "core/argmax.h"
#include "engine/engine.h"

namespace ms::test {

inline uint64_t splitmix(uint64_t x) {
  x += 0x9e3779b97f4a7c15ull;
  x = (x ^ (x >> 30)) * 0xbf58476d1ce4e5b9ull;
  x = (x ^ (x >> 27)) * 0x94d049bb133111ebull;
  return x ^ (x >> 31);
}

struct FakeConfig {
  int64_t vocab = 320;
  int64_t max_context = 4096;
  int32_t eos = 2;
  int32_t num_layers = 2;
  int32_t num_experts = 4;
  float eos_bias = -6.0f;      // added to the EOS logit (negative: EOS is rare)
  int32_t eos_after = -1;      // from this position on, EOS gets +20 (if >= 0)
  uint64_t salt = 0;
};

// The logits the fake model gives after the token sequence `seq` (positions 0..n-1).
inline void fake_logits(const FakeConfig& c, const int32_t* seq, int64_t n, float* out) {
  uint64_t h = splitmix(c.salt ^ 0x1234567ull);
  for (int64_t i = 0; i < n; ++i) h = splitmix(h ^ static_cast<uint32_t>(seq[i]));
  for (int64_t v = 0; v < c.vocab; ++v) {
    const uint64_t r = splitmix(h ^ (static_cast<uint64_t>(v) * 0x9e3779b97f4a7c15ull));
    out[v] = static_cast<float>(r >> 40) * (8.0f / 16777216.0f) - 4.0f;  // [-4, 4)
  }
  if (c.eos >= 0 && c.eos < c.vocab) {
    out[c.eos] += c.eos_bias;
    if (c.eos_after >= 0 && n - 1 >= c.eos_after) out[c.eos] += 20.0f;
  }
}

class FakeRunner : public ModelRunner {
 public:
  FakeRunner(FakeConfig cfg, int32_t num_blocks, int32_t block_size)
      : cfg_(cfg), num_blocks_(num_blocks), block_size_(block_size),
        kv_(static_cast<size_t>(num_blocks) * block_size, -1) {}

  int64_t vocab_size() const override { return cfg_.vocab; }
  int64_t max_context() const override { return cfg_.max_context; }
  int32_t eos_id() const override { return cfg_.eos; }
  int64_t num_layers() const override { return cfg_.num_layers; }
  int64_t num_experts() const override { return cfg_.num_experts; }

  void forward(const std::vector<SeqChunk>& chunks, ForwardOutput& out) override {
    std::lock_guard<std::mutex> lk(mu_);
    ++steps_;
    if (throw_on_step_ == steps_) throw std::runtime_error("injected failure");
    out.vocab_size = cfg_.vocab;
    out.logits.clear();
    out.argmax.clear();
    out.first_row.assign(chunks.size(), -1);
    out.expert_tokens.assign(static_cast<size_t>(cfg_.num_layers) * cfg_.num_experts, 0);
    // Routing (top-1, as expert_tokens): token t goes to expert (t + l) % E in layer l.
    out.routing.clear();
    out.routing_layers = out.want_routing ? cfg_.num_layers : 0;
    out.routing_k = out.want_routing ? 1 : 0;
    int64_t step_tokens = 0;
    bool has_prefill = false, has_decode = false;
    std::vector<int64_t> written;
    for (size_t k = 0; k < chunks.size(); ++k) {
      const SeqChunk& c = chunks[k];
      step_tokens += c.n_tokens;
      (c.n_tokens == 1 ? has_decode : has_prefill) = true;
      if (!c.tokens || c.n_tokens <= 0 || c.pos0 < 0 || !c.block_table) {
        error("malformed chunk");
        continue;
      }
      if (static_cast<int64_t>(c.n_blocks) * block_size_ < c.pos0 + c.n_tokens) {
        error("block table too short");
        continue;
      }
      bool bad = false;
      for (int32_t i = 0; i < c.n_blocks; ++i)
        if (c.block_table[i] < 0 || c.block_table[i] >= num_blocks_) bad = true;
      if (bad) {
        error("block id out of range");
        continue;
      }
      for (int32_t t = 0; t < c.n_tokens; ++t) {
        const int64_t s = slot(c, c.pos0 + t);
        written.push_back(s);
        kv_[s] = c.tokens[t];
        for (int32_t l = 0; l < cfg_.num_layers; ++l) {
          out.expert_tokens[static_cast<size_t>(l) * cfg_.num_experts + (c.tokens[t] + l) % cfg_.num_experts] += 1;
          if (out.want_routing) out.routing.push_back((c.tokens[t] + l) % cfg_.num_experts);
        }
      }
      if (c.logits == LogitsWanted::None) continue;
      const int64_t n = c.pos0 + c.n_tokens;
      std::vector<int32_t> seq(n);
      for (int64_t p = 0; p < n; ++p) {
        seq[p] = kv_[slot(c, p)];
        if (seq[p] < 0) error("read of a never-written KV slot");
      }
      out.first_row[k] = static_cast<int32_t>(out.logits.size() / cfg_.vocab);
      out.logits.resize(out.logits.size() + cfg_.vocab);
      float* row = out.logits.data() + out.logits.size() - cfg_.vocab;
      fake_logits(cfg_, seq.data(), n, row);
      if (c.logits == LogitsWanted::Greedy) {
        // As a model that skips the logits of token-only rows: the token,
        // and a row of NaN that any sampler reading it would trip over.
        out.argmax.resize(out.logits.size() / cfg_.vocab, -1);
        out.argmax.back() = greedy_argmax(row, cfg_.vocab);
        std::fill(row, row + cfg_.vocab, std::numeric_limits<float>::quiet_NaN());
        ++greedy_rows_;
      }
    }
    if (!out.argmax.empty()) out.argmax.resize(out.logits.size() / cfg_.vocab, -1);
    std::sort(written.begin(), written.end());
    if (std::adjacent_find(written.begin(), written.end()) != written.end()) error("two chunks wrote one KV slot");
    max_step_tokens_ = std::max(max_step_tokens_, step_tokens);
    max_chunks_ = std::max<int64_t>(max_chunks_, static_cast<int64_t>(chunks.size()));
    if (has_prefill && has_decode) ++mixed_steps_;
    total_tokens_ += step_tokens;
  }

  std::vector<std::string> errors() const {
    std::lock_guard<std::mutex> lk(mu_);
    return errors_;
  }
  int64_t steps() const {
    std::lock_guard<std::mutex> lk(mu_);
    return steps_;
  }
  // Rows asked for as LogitsWanted::Greedy (token only).
  int64_t greedy_rows() const {
    std::lock_guard<std::mutex> lk(mu_);
    return greedy_rows_;
  }
  int64_t max_step_tokens() const {
    std::lock_guard<std::mutex> lk(mu_);
    return max_step_tokens_;
  }
  int64_t max_chunks() const {
    std::lock_guard<std::mutex> lk(mu_);
    return max_chunks_;
  }
  int64_t mixed_steps() const {
    std::lock_guard<std::mutex> lk(mu_);
    return mixed_steps_;
  }
  int64_t total_tokens() const {
    std::lock_guard<std::mutex> lk(mu_);
    return total_tokens_;
  }
  void throw_on_step(int64_t s) { throw_on_step_ = s; }
  const FakeConfig& config() const { return cfg_; }

 private:
  int64_t slot(const SeqChunk& c, int64_t pos) const {
    return static_cast<int64_t>(c.block_table[pos / block_size_]) * block_size_ + pos % block_size_;
  }
  void error(const std::string& e) {
    if (errors_.size() < 20) errors_.push_back(e);
  }

  FakeConfig cfg_;
  int32_t num_blocks_, block_size_;
  std::vector<int32_t> kv_;
  mutable std::mutex mu_;
  std::vector<std::string> errors_;
  int64_t steps_ = 0, max_step_tokens_ = 0, max_chunks_ = 0, mixed_steps_ = 0, total_tokens_ = 0, greedy_rows_ = 0;
  int64_t throw_on_step_ = -1;
};

// Token texts for engine tests: 0..2 control (""), 3..258 the bytes 0..255
// (byte fallback), then words " w<id>".
class FakeText : public TokenText {
 public:
  std::string token_bytes(int32_t id) const override {
    if (id < 3) return "";
    if (id < 259) return std::string(1, static_cast<char>(id - 3));
    return " w" + std::to_string(id);
  }
};

// A vocabulary of words only (no raw bytes), for tests that compare text.
class WordText : public TokenText {
 public:
  std::string token_bytes(int32_t id) const override {
    if (id < 3) return "";
    return " w" + std::to_string(id);
  }
};

}  // namespace ms::test
