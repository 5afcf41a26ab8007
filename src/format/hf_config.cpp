#include "format/hf_config.h"

#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>
#include <regex>
#include <set>
#include <sstream>

#include "core/error.h"
#include "core/file_util.h"
#include "format/model_limits.h"
#include "format/safetensors.h"

namespace ms {

namespace fs = std::filesystem;
using json = nlohmann::json;

namespace {

struct Fields {
  const json& j;
  const std::string& path;
  bool has(const char* k) const { return j.contains(k) && !j[k].is_null(); }
  int64_t i64(const char* k) const {
    if (!has(k)) bad_input(path + ": missing field '" + k + "'");
    return i64_or(k, 0);
  }
  int64_t i64_or(const char* k, int64_t dflt) const {
    if (!has(k)) return dflt;
    const json& v = j[k];
    if (!v.is_number_integer()) bad_input(path + ": field '" + k + "' must be an integer");
    if (v.is_number_unsigned() && v.get<uint64_t>() > uint64_t(INT64_MAX))
      bad_input(path + ": field '" + k + "' is too large (" + v.dump() + ")");
    return v.get<int64_t>();
  }
  double f64_or(const char* k, double dflt) const {
    if (!has(k)) return dflt;
    const json& v = j[k];
    if (!v.is_number()) bad_input(path + ": field '" + k + "' must be a number");
    return v.get<double>();
  }
  bool bool_or(const char* k, bool dflt) const {
    if (!has(k)) return dflt;
    if (!j[k].is_boolean()) bad_input(path + ": field '" + k + "' must be true or false");
    return j[k].get<bool>();
  }
  int32_t token_id_or(const char* k, int32_t dflt) const {
    if (!has(k)) return dflt;
    const json& v = j[k];
    const json& id = v.is_array() && !v.empty() ? v[0] : v;
    if (!id.is_number_integer()) bad_input(path + ": field '" + k + "' must be a token id");
    if (id.is_number_unsigned() ? id.get<uint64_t>() > uint64_t(INT32_MAX)
                                : (id.get<int64_t>() < 0 || id.get<int64_t>() > INT32_MAX))
      bad_input(path + ": field '" + k + "' is not a token id (" + id.dump() + ")");
    return int32_t(id.get<int64_t>());
  }
};

}  // namespace

ModelConfig parse_hf_config(const std::string& text, const std::string& path) {
  json j;
  try {
    j = json::parse(text);
  } catch (const std::exception& e) {
    bad_input(path + ": malformed JSON: " + std::string(e.what()));
  }
  if (!j.is_object()) bad_input(path + ": not a JSON object");
  Fields f{j, path};
  ModelConfig c;
  std::string arch;
  if (j.contains("architectures") && j["architectures"].is_array() && !j["architectures"].empty() &&
      j["architectures"][0].is_string())
    arch = j["architectures"][0].get<std::string>();
  else if (j.contains("model_type") && j["model_type"].is_string()) {
    const std::string mt = j["model_type"].get<std::string>();
    arch = mt == "mixtral" ? "MixtralForCausalLM" : mt == "mistral" ? "MistralForCausalLM"
         : mt == "llama" ? "LlamaForCausalLM" : mt;
  }
  static const std::set<std::string> kArchs = {"MixtralForCausalLM", "MistralForCausalLM", "LlamaForCausalLM"};
  if (!kArchs.count(arch))
    bad_input(path + ": unsupported architecture '" + arch +
              "' (supported: MixtralForCausalLM, MistralForCausalLM, LlamaForCausalLM)");
  c.architecture = arch;
  if (f.has("hidden_act") && (!j["hidden_act"].is_string() || j["hidden_act"] != "silu"))
    bad_input(path + ": unsupported hidden_act (only silu)");
  c.vocab_size = f.i64("vocab_size");
  c.hidden_size = f.i64("hidden_size");
  c.intermediate_size = f.i64("intermediate_size");
  c.num_layers = f.i64("num_hidden_layers");
  c.num_heads = f.i64("num_attention_heads");
  c.num_kv_heads = f.i64_or("num_key_value_heads", c.num_heads);
  c.head_dim = f.i64_or("head_dim", c.num_heads > 0 ? c.hidden_size / c.num_heads : 0);
  if (arch == "MixtralForCausalLM") {
    c.num_experts = f.i64("num_local_experts");
    c.experts_per_tok = f.i64("num_experts_per_tok");
  }
  c.rope_theta = f.f64_or("rope_theta", 10000.0);
  if (f.has("rope_scaling")) bad_input(path + ": rope_scaling is not supported");
  c.rms_norm_eps = f.f64_or("rms_norm_eps", 1e-5);
  c.sliding_window = f.i64_or("sliding_window", 0);
  if (f.has("use_sliding_window") && !f.bool_or("use_sliding_window", true)) c.sliding_window = 0;
  c.max_position_embeddings = f.i64_or("max_position_embeddings", 32768);
  c.tie_word_embeddings = f.bool_or("tie_word_embeddings", false);
  c.bos_id = f.token_id_or("bos_token_id", 1);
  c.eos_id = f.token_id_or("eos_token_id", 2);
  validate_config(c, path);
  return c;
}

std::string canonical_hf_name(const std::string& n) {
  static const std::regex layer_re(R"(^model\.layers\.(\d+)\.(.+)\.weight$)");
  static const std::regex expert_re(R"(^(?:block_sparse_moe|mlp)\.experts\.(\d+)\.(w1|w2|w3|gate_proj|up_proj|down_proj)$)");
  if (n == "model.embed_tokens.weight") return "token_embd";
  if (n == "model.norm.weight") return "output_norm";
  if (n == "lm_head.weight") return "output";
  std::smatch m;
  if (!std::regex_match(n, m, layer_re)) return "";
  const std::string blk = "blk." + m[1].str() + ".";
  const std::string rest = m[2].str();
  static const std::pair<const char*, const char*> kMap[] = {
      {"input_layernorm", "attn_norm"},       {"post_attention_layernorm", "ffn_norm"},
      {"self_attn.q_proj", "attn_q"},         {"self_attn.k_proj", "attn_k"},
      {"self_attn.v_proj", "attn_v"},         {"self_attn.o_proj", "attn_output"},
      {"block_sparse_moe.gate", "ffn_gate_inp"}, {"mlp.gate", "ffn_gate_inp"},
      {"mlp.gate_proj", "ffn_gate"},          {"mlp.up_proj", "ffn_up"},
      {"mlp.down_proj", "ffn_down"},
  };
  for (const auto& [hf, c] : kMap)
    if (rest == hf) return blk + c;
  std::smatch e;
  if (std::regex_match(rest, e, expert_re)) {
    const std::string w = e[2].str();
    const char* c = (w == "w1" || w == "gate_proj") ? "ffn_gate" : (w == "w3" || w == "up_proj") ? "ffn_up" : "ffn_down";
    return blk + c + "." + e[1].str();
  }
  return "";
}

ModelDesc load_hf_desc(const std::string& dir) {
  ModelDesc d;
  d.path = dir;
  d.format = "safetensors";
  const fs::path root(dir);
  const std::string cfg_path = (root / "config.json").string();
  if (!fs::exists(cfg_path)) bad_input(dir + ": no config.json (expected a Hugging Face model directory or a .gguf file)");
  d.cfg = parse_hf_config(read_file(cfg_path), cfg_path);

  std::vector<std::string> shards;
  const fs::path single = root / "model.safetensors";
  const fs::path index = root / "model.safetensors.index.json";
  if (fs::exists(index)) {
    json j;
    try {
      j = json::parse(read_file(index.string()));
    } catch (const std::exception& e) {
      bad_input(index.string() + ": malformed JSON: " + e.what());
    }
    if (!j.is_object() || !j.contains("weight_map") || !j["weight_map"].is_object())
      bad_input(index.string() + ": no weight_map object");
    std::set<std::string> files;
    for (auto& [k, v] : j["weight_map"].items()) {
      if (!v.is_string()) bad_input(index.string() + ": weight_map entry '" + k + "' is not a file name");
      const std::string f = v.get<std::string>();
      if (f.find('/') != std::string::npos || f.find("..") != std::string::npos)
        bad_input(index.string() + ": weight_map entry '" + k + "' names a file outside the directory");
      files.insert(f);
    }
    for (const auto& f : files) shards.push_back((root / f).string());
  } else if (fs::exists(single)) {
    shards.push_back(single.string());
  } else {
    bad_input(dir + ": no model.safetensors or model.safetensors.index.json");
  }
  for (const auto& s : shards) {
    SafetensorsFile st = read_safetensors(s);
    d.files.push_back(st.file);
    for (auto& t : st.tensors) {
      std::string c = canonical_hf_name(t.name);
      if (c.empty()) continue;  // rotary caches and the like
      if (d.tensors.count(c)) bad_input(s + ": tensor '" + t.name + "' appears twice");
      t.name = c;
      d.tensors.emplace(c, std::move(t));
    }
  }
  // A missing tokenizer is reported by whoever needs one (token-id-only use works without it).
  if (fs::exists(root / "tokenizer.model")) d.tokenizer_model_path = (root / "tokenizer.model").string();
  const fs::path tc = root / "tokenizer_config.json";
  if (fs::exists(tc)) {
    try {
      json j = json::parse(read_file(tc.string()));
      if (j.is_object() && j.contains("chat_template") && j["chat_template"].is_string())
        d.chat_template = j["chat_template"].get<std::string>();
    } catch (const std::exception&) {
      // informational only
    }
  }
  return d;
}

}  // namespace ms
