// crafted_gguf.h — tiny llama/Mixtral GGUF files with attacker-chosen metadata.
//
// write_tiny_gguf() writes a one-layer Mixtral (hidden 8, 2 heads of 4, one
// KV head, FFN 16, 2 experts top-1, vocab 32, F32 weights, no tokenizer)
// whose metadata values can be overridden by anything, including values
// whose products wrap around 64 bits. The tensor shapes are computed from
// the metadata with the same wrapping arithmetic, as an attacker would make
// them, so that a reader that multiplies without overflow checks sees shapes
// that match. Used by the bounds tests, the crafted-file CLI test
// (tests/crafted/make_crafted.cpp) and the fuzzers' seed corpora.
#pragma once
#include <cmath>
#include <cstring>
#include <cstdint>
#include <map>
#include <random>
#include <string>
#include <vector>

#include "format/gguf_writer.h"

namespace ms::crafted {

struct Meta {
  std::map<std::string, uint64_t> u64;  // llama.* integer keys (stored as uint64)
  std::map<std::string, double> f32;    // llama.* float keys (stored as float32)
};

inline Meta tiny_meta() {
  Meta m;
  m.u64 = {{"block_count", 1},          {"context_length", 64},   {"embedding_length", 8},
           {"feed_forward_length", 16}, {"attention.head_count", 2}, {"attention.head_count_kv", 1},
           {"attention.key_length", 4}, {"expert_count", 2},      {"expert_used_count", 1},
           {"vocab_size", 32}};
  m.f32 = {{"rope.freq_base", 10000.0}, {"attention.layer_norm_rms_epsilon", 1e-5}};
  return m;
}

// A shape dimension as a wrapping reader would compute it, kept small enough
// to write: values past `cap` (absurd counts nothing could hold) become 1.
inline int64_t dim(uint64_t v, uint64_t cap = 1 << 12) { return v == 0 || v > cap ? 1 : int64_t(v); }

// Weights of type `wt` (norms and router stay F32); quantized blocks are
// random bytes, so scales may be anything, NaN included, as in a hostile file.
inline void write_tiny_gguf(const std::string& path, const Meta& m, uint32_t seed = 1, DType wt = DType::F32) {
  auto u = [&](const char* k) { return m.u64.at(k); };
  const uint64_t H = u("embedding_length"), F = u("feed_forward_length"), E = u("expert_count");
  const uint64_t q = u("attention.head_count") * u("attention.key_length");      // may wrap
  const uint64_t kv = u("attention.head_count_kv") * u("attention.key_length");  // may wrap
  const uint64_t V = u("vocab_size"), L = u("block_count");
  GgufWriter w;
  w.add_str("general.architecture", "llama");
  for (const auto& [k, v] : m.u64) w.add_u64("llama." + k, v);
  for (const auto& [k, v] : m.f32) w.add_f32("llama." + k, float(v));
  if (V <= 4096) {  // a SentencePiece vocabulary: <unk> <s> </s>, then "▁a", "a", "▁b", ...
    std::vector<std::string> tokens = {"<unk>", "<s>", "</s>"};
    std::vector<int32_t> types = {2, 3, 3};
    for (uint64_t i = 3; i < V; ++i) {
      const std::string letter(1, char('a' + (i - 3) / 2 % 26));
      const uint64_t round = (i - 3) / 52;
      tokens.push_back(((i - 3) % 2 == 0 ? "\xe2\x96\x81" : "") + letter + (round ? std::to_string(round) : ""));
      types.push_back(1);
    }
    tokens.resize(V);
    types.resize(V);
    std::vector<float> scores(V);
    for (uint64_t i = 0; i < V; ++i) scores[i] = -float(i);
    w.add_str("tokenizer.ggml.model", "llama");
    w.add_arr_str("tokenizer.ggml.tokens", tokens);
    w.add_arr_f32("tokenizer.ggml.scores", scores);
    w.add_arr_i32("tokenizer.ggml.token_type", types);
  }
  std::vector<std::pair<std::string, std::vector<int64_t>>> specs = {
      {"token_embd.weight", {dim(V), dim(H)}}, {"output_norm.weight", {dim(H)}}, {"output.weight", {dim(V), dim(H)}}};
  for (uint64_t l = 0; l < std::min<uint64_t>(L, 2); ++l) {
    const std::string b = "blk." + std::to_string(l) + ".";
    specs.push_back({b + "attn_norm.weight", {dim(H)}});
    specs.push_back({b + "attn_q.weight", {dim(q), dim(H)}});
    specs.push_back({b + "attn_k.weight", {dim(kv), dim(H)}});
    specs.push_back({b + "attn_v.weight", {dim(kv), dim(H)}});
    specs.push_back({b + "attn_output.weight", {dim(H), dim(q)}});
    specs.push_back({b + "ffn_norm.weight", {dim(H)}});
    specs.push_back({b + "ffn_gate_inp.weight", {dim(E, 64), dim(H)}});
    specs.push_back({b + "ffn_gate_exps.weight", {dim(E, 64), dim(F), dim(H)}});
    specs.push_back({b + "ffn_up_exps.weight", {dim(E, 64), dim(F), dim(H)}});
    specs.push_back({b + "ffn_down_exps.weight", {dim(E, 64), dim(H), dim(F)}});
  }
  std::mt19937 rng(seed);
  std::normal_distribution<float> nd(0.0f, 0.5f);
  std::vector<std::pair<bool, size_t>> sizes;  // (float, bytes) per tensor, padded as the writer pads
  for (const auto& [name, shape] : specs) {
    const bool f32 = wt == DType::F32 || shape.size() == 1 || name.find("gate_inp") != std::string::npos;
    sizes.push_back({f32, w.add_tensor(name, f32 ? DType::F32 : wt, shape)});
  }
  w.open(path);
  for (const auto& [f32, n] : sizes) {
    std::string bytes(n, '\0');
    if (f32) {
      for (size_t i = 0; i + 4 <= n; i += 4) {
        const float x = nd(rng);
        std::memcpy(&bytes[i], &x, 4);
      }
    } else {
      for (char& c : bytes) c = char(rng());
    }
    w.write(bytes.data(), bytes.size());
  }
  w.close();
}

// The crafted variants the bounds must refuse, each with a part of the
// expected one-line message.
struct Case {
  const char* name;
  std::map<std::string, uint64_t> u64;
  std::map<std::string, double> f32;
  const char* message;
};

inline std::vector<Case> cases() {
  const uint64_t p62 = uint64_t(1) << 62;
  return {
      // head_count * key_length wraps to 8, the q width of the tensors.
      {"heads_wrap", {{"attention.head_count", p62 + 2}}, {}, "head_count"},
      {"kv_heads_wrap", {{"attention.head_count", p62 + 1}, {"attention.head_count_kv", p62 + 1}}, {}, "head_count"},
      {"key_length_wrap", {{"attention.head_count", 4}, {"attention.head_count_kv", 4}, {"attention.key_length", p62 + 2}},
       {}, "key_length"},
      {"huge_context", {{"context_length", p62}}, {}, "context_length"},
      {"context_2e40", {{"context_length", uint64_t(1) << 40}}, {}, "context_length"},
      {"absurd_experts", {{"expert_count", uint64_t(1) << 40}}, {}, "expert_count"},
      {"absurd_top_k", {{"expert_count", 2}, {"expert_used_count", p62}}, {}, "expert_used_count"},
      {"huge_layers", {{"block_count", uint64_t(1) << 40}}, {}, "block_count"},
      {"huge_vocab", {{"vocab_size", uint64_t(1) << 40}}, {}, "vocab_size"},
      {"huge_hidden", {{"embedding_length", p62}}, {}, "embedding_length"},
      {"huge_ffn", {{"feed_forward_length", p62}}, {}, "feed_forward_length"},
      {"huge_window", {{"attention.sliding_window", p62}}, {}, "sliding_window"},
      {"negative_heads", {{"attention.head_count", ~uint64_t(0)}}, {}, "head_count"},
      {"rope_inf", {}, {{"rope.freq_base", INFINITY}}, "freq_base"},
      {"rope_nan", {}, {{"rope.freq_base", NAN}}, "freq_base"},
      {"eps_inf", {}, {{"attention.layer_norm_rms_epsilon", INFINITY}}, "rms_norm_eps"},
  };
}

inline Meta apply(const Case& c) {
  Meta m = tiny_meta();
  for (const auto& [k, v] : c.u64) m.u64[k] = v;
  for (const auto& [k, v] : c.f32) m.f32[k] = v;
  return m;
}

}  // namespace ms::crafted
