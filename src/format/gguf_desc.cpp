// gguf_desc.cpp — ModelDesc from a llama-architecture GGUF file.
//
// llama.cpp writes Llama, Mistral and Mixtral all as architecture "llama";
// Mixtral is recognised by llama.expert_count. The converter permutes the rows
// of attn_q/attn_k so that rotary pairs are adjacent, hence rope_interleaved.
#include <string>

#include "core/error.h"
#include "format/gguf.h"
#include "format/model_limits.h"

namespace ms {

namespace {

std::string strip_weight(const std::string& name) {
  static const std::string kSuffix = ".weight";
  if (name.size() > kSuffix.size() && name.compare(name.size() - kSuffix.size(), kSuffix.size(), kSuffix) == 0)
    return name.substr(0, name.size() - kSuffix.size());
  return name;
}

std::string shape_str(const std::vector<int64_t>& s) {
  std::string out = "[";
  for (size_t i = 0; i < s.size(); ++i) out += (i ? ", " : "") + std::to_string(s[i]);
  return out + "]";
}

int64_t positive(const GgufFile& g, const std::string& key, int64_t v) {
  if (v <= 0) bad_input(g.path() + ": metadata '" + key + "' must be positive (got " + std::to_string(v) + ")");
  return v;
}

void read_config(const GgufFile& g, const std::string& arch, ModelConfig& c) {
  const std::string p = arch + ".";
  c.hidden_size = positive(g, p + "embedding_length", g.get_i64(p + "embedding_length"));
  c.num_layers = positive(g, p + "block_count", g.get_i64(p + "block_count"));
  c.intermediate_size = positive(g, p + "feed_forward_length", g.get_i64(p + "feed_forward_length"));
  c.num_heads = positive(g, p + "attention.head_count", g.get_i64(p + "attention.head_count"));
  c.num_kv_heads = positive(g, p + "attention.head_count_kv", g.get_i64(p + "attention.head_count_kv", c.num_heads));
  if (g.has(p + "attention.key_length")) {
    c.head_dim = positive(g, p + "attention.key_length", g.get_i64(p + "attention.key_length"));
  } else {
    if (c.hidden_size % c.num_heads != 0)
      bad_input(g.path() + ": embedding_length " + std::to_string(c.hidden_size) + " is not divisible by head_count " +
                std::to_string(c.num_heads));
    c.head_dim = c.hidden_size / c.num_heads;
  }
  if (g.has(p + "attention.value_length") && g.get_i64(p + "attention.value_length") != c.head_dim)
    bad_input(g.path() + ": attention.value_length differs from key_length, which is not supported");
  if (c.num_heads % c.num_kv_heads != 0)
    bad_input(g.path() + ": head_count " + std::to_string(c.num_heads) + " is not a multiple of head_count_kv " +
              std::to_string(c.num_kv_heads));
  if (c.head_dim % 2 != 0) bad_input(g.path() + ": head dimension " + std::to_string(c.head_dim) + " is odd");
  if (g.has(p + "rope.dimension_count") && g.get_i64(p + "rope.dimension_count") != c.head_dim)
    bad_input(g.path() + ": rope.dimension_count " + std::to_string(g.get_i64(p + "rope.dimension_count")) +
              " differs from the head dimension " + std::to_string(c.head_dim) + " (partial rotary is not supported)");
  c.rope_theta = g.get_f64(p + "rope.freq_base", 10000.0);
  if (!(c.rope_theta > 0)) bad_input(g.path() + ": rope.freq_base must be positive");
  c.rms_norm_eps = g.get_f64(p + "attention.layer_norm_rms_epsilon", 1e-5);
  if (!(c.rms_norm_eps >= 0)) bad_input(g.path() + ": attention.layer_norm_rms_epsilon must not be negative");
  c.max_position_embeddings = positive(g, p + "context_length", g.get_i64(p + "context_length", 32768));
  c.sliding_window = g.get_i64(p + "attention.sliding_window", 0);
  if (c.sliding_window < 0) bad_input(g.path() + ": attention.sliding_window is negative");
  if (g.has(p + "rope.scaling.type") && g.get_str(p + "rope.scaling.type") != "none")
    bad_input(g.path() + ": rope scaling '" + g.get_str(p + "rope.scaling.type") + "' is not supported");

  c.num_experts = g.get_i64(p + "expert_count", 0);
  c.experts_per_tok = g.get_i64(p + "expert_used_count", 0);
  if (c.num_experts < 0 || c.experts_per_tok < 0) bad_input(g.path() + ": negative expert count");
  if (c.num_experts > 0) {
    if (c.experts_per_tok < 1 || c.experts_per_tok > c.num_experts)
      bad_input(g.path() + ": expert_used_count " + std::to_string(c.experts_per_tok) + " must be in 1.." +
                std::to_string(c.num_experts));
  } else {
    c.num_experts = 0;
    c.experts_per_tok = 0;
  }
  c.architecture = c.num_experts > 0 ? "MixtralForCausalLM" : "LlamaForCausalLM";
  c.rope_interleaved = true;
}

void read_vocab(const GgufFile& g, ModelDesc& d) {
  EmbeddedVocab& v = d.vocab;
  v.model = g.get_str("tokenizer.ggml.model", "");
  if (g.has("tokenizer.ggml.tokens")) {
    v.tokens = g.get_str_arr("tokenizer.ggml.tokens");
    const size_t n = v.tokens.size();
    if (g.has("tokenizer.ggml.scores")) {
      v.scores = g.get_f32_arr("tokenizer.ggml.scores");
      if (v.scores.size() != n)
        bad_input(g.path() + ": tokenizer.ggml.scores has " + std::to_string(v.scores.size()) + " entries, tokens " +
                  std::to_string(n));
    } else {
      v.scores.assign(n, 0.0f);
    }
    if (g.has("tokenizer.ggml.token_type")) {
      v.types = g.get_i32_arr("tokenizer.ggml.token_type");
      if (v.types.size() != n)
        bad_input(g.path() + ": tokenizer.ggml.token_type has " + std::to_string(v.types.size()) +
                  " entries, tokens " + std::to_string(n));
    } else {
      v.types.assign(n, 1);
    }
  }
  v.bos_id = g.get_i32("tokenizer.ggml.bos_token_id", 1);
  v.eos_id = g.get_i32("tokenizer.ggml.eos_token_id", 2);
  v.unk_id = g.get_i32("tokenizer.ggml.unknown_token_id", 0);
  v.add_bos = g.get_bool("tokenizer.ggml.add_bos_token", true);
  if (!v.tokens.empty()) {
    const int64_t n = int64_t(v.tokens.size());
    auto check = [&](const char* what, int32_t id) {
      if (id < 0 || id >= n)
        bad_input(g.path() + ": tokenizer.ggml." + what + " " + std::to_string(id) + " is outside the vocabulary of " +
                  std::to_string(n));
    };
    check("bos_token_id", v.bos_id);
    check("eos_token_id", v.eos_id);
    check("unknown_token_id", v.unk_id);
  }
  d.chat_template = g.get_str("tokenizer.chat_template", "");
}

// Checks one tensor's presence and shape against the config.
void expect(const ModelDesc& d, const std::string& name, const std::vector<int64_t>& shape) {
  const TensorInfo* t = d.find(name);
  if (!t) bad_input(d.path + ": missing tensor '" + name + ".weight'");
  if (t->shape != shape)
    bad_input(d.path + ": tensor '" + name + ".weight' has shape " + shape_str(t->shape) + ", expected " +
              shape_str(shape) + " from the metadata");
}

void check_tensors(const ModelDesc& d) {
  const ModelConfig& c = d.cfg;
  const int64_t H = c.hidden_size, F = c.intermediate_size, E = c.num_experts;
  const int64_t q = c.num_heads * c.head_dim, kv = c.num_kv_heads * c.head_dim;
  expect(d, "token_embd", {c.vocab_size, H});
  expect(d, "output_norm", {H});
  if (!c.tie_word_embeddings) expect(d, "output", {c.vocab_size, H});
  for (int64_t l = 0; l < c.num_layers; ++l) {
    const std::string b = "blk." + std::to_string(l) + ".";
    expect(d, b + "attn_norm", {H});
    expect(d, b + "attn_q", {q, H});
    expect(d, b + "attn_k", {kv, H});
    expect(d, b + "attn_v", {kv, H});
    expect(d, b + "attn_output", {H, q});
    expect(d, b + "ffn_norm", {H});
    if (!c.is_moe()) {
      expect(d, b + "ffn_gate", {F, H});
      expect(d, b + "ffn_up", {F, H});
      expect(d, b + "ffn_down", {H, F});
      continue;
    }
    expect(d, b + "ffn_gate_inp", {E, H});
    if (d.find(b + "ffn_gate_exps") || !d.find(b + "ffn_gate.0")) {  // stacked (current llama.cpp)
      expect(d, b + "ffn_gate_exps", {E, F, H});
      expect(d, b + "ffn_up_exps", {E, F, H});
      expect(d, b + "ffn_down_exps", {E, H, F});
    } else {  // one tensor per expert (older Mixtral conversions)
      for (int64_t e = 0; e < E; ++e) {
        const std::string s = "." + std::to_string(e);
        expect(d, b + "ffn_gate" + s, {F, H});
        expect(d, b + "ffn_up" + s, {F, H});
        expect(d, b + "ffn_down" + s, {H, F});
      }
    }
  }
}

}  // namespace

ModelDesc load_gguf_desc(const std::string& path) {
  std::unique_ptr<GgufFile> g = GgufFile::open(path);
  const std::string arch = g->get_str("general.architecture");
  if (arch != "llama")
    bad_input(path + ": architecture '" + arch + "' is not supported (only 'llama': Llama, Mistral, Mixtral)");

  ModelDesc d;
  d.path = path;
  d.format = "gguf";
  d.files.push_back(g->mapped());
  read_config(*g, arch, d.cfg);
  read_vocab(*g, d);

  for (const GgufTensor& t : g->tensors()) {
    TensorInfo ti;
    ti.name = strip_weight(t.name);
    ti.dtype = t.dtype;
    ti.shape = t.shape();
    ti.data = t.data;
    ti.nbytes = t.nbytes;
    ti.file = path;
    if (!d.tensors.emplace(ti.name, ti).second)
      bad_input(path + ": tensor name '" + ti.name + "' appears twice (with and without .weight)");
  }

  ModelConfig& c = d.cfg;
  const TensorInfo* emb = d.find("token_embd");
  if (!emb) bad_input(path + ": missing tensor 'token_embd.weight'");
  if (!d.vocab.tokens.empty())
    c.vocab_size = int64_t(d.vocab.tokens.size());
  else if (g->has(arch + ".vocab_size"))
    c.vocab_size = positive(*g, arch + ".vocab_size", g->get_i64(arch + ".vocab_size"));
  else
    c.vocab_size = emb->shape.at(0);
  c.tie_word_embeddings = d.find("output") == nullptr;
  c.bos_id = d.vocab.bos_id;
  c.eos_id = d.vocab.eos_id;
  // Bounds and overflow-checked products before any shape is computed from them.
  validate_config(c, path);
  check_tensors(d);
  return d;
}

}  // namespace ms
