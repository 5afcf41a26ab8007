// Hugging Face directories: config parsing, name mapping, and every kind of
// bad input (missing/truncated/corrupt files, malformed JSON or headers,
// missing or misshaped tensors, unsupported dtypes or architectures) gives an
// Error that names the file, never a crash.
#include <gtest/gtest.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>

#include "core/error.h"
#include "format/hf_config.h"
#include "format/model_desc.h"
#include "format/safetensors.h"

namespace ms {
namespace {

namespace fs = std::filesystem;
using json = nlohmann::json;

const std::string kModel = std::string(MOESERVE_SOURCE_DIR) + "/models/tiny-mixtral-kjv";

std::string slurp(const std::string& p) {
  std::ifstream in(p, std::ios::binary);
  return std::string(std::istreambuf_iterator<char>(in), {});
}
void spit(const std::string& p, const std::string& s) { std::ofstream(p, std::ios::binary) << s; }

// Expects Error(BadInput) whose message contains `needle`.
template <typename F>
void expect_bad(F&& f, const std::string& needle) {
  try {
    f();
    ADD_FAILURE() << "no error; expected one mentioning '" << needle << "'";
  } catch (const Error& e) {
    EXPECT_EQ(e.kind(), ErrorKind::BadInput) << e.what();
    EXPECT_NE(std::string(e.what()).find(needle), std::string::npos) << e.what();
    EXPECT_EQ(std::string(e.what()).find('\n'), std::string::npos) << "one line: " << e.what();
  }
}

class TempDir : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = ::testing::TempDir() + "/mshf_" + std::to_string(getpid()) + "_" +
           ::testing::UnitTest::GetInstance()->current_test_info()->name();
    fs::create_directories(dir_);
  }
  void TearDown() override { fs::remove_all(dir_); }
  // A copy of the bundled model we can damage.
  void copy_model() {
    for (const auto& e : fs::directory_iterator(kModel)) fs::copy_file(e.path(), dir_ + "/" + e.path().filename().string());
  }
  std::string dir_;
};

TEST(HfConfig, BundledModel) {
  const ModelDesc d = load_model_desc(kModel);
  EXPECT_EQ(d.cfg.architecture, "MixtralForCausalLM");
  EXPECT_EQ(d.cfg.hidden_size, 128);
  EXPECT_EQ(d.cfg.num_layers, 4);
  EXPECT_EQ(d.cfg.num_heads, 4);
  EXPECT_EQ(d.cfg.num_kv_heads, 2);
  EXPECT_EQ(d.cfg.head_dim, 32);
  EXPECT_EQ(d.cfg.num_experts, 8);
  EXPECT_EQ(d.cfg.experts_per_tok, 2);
  EXPECT_EQ(d.cfg.sliding_window, 0);
  EXPECT_DOUBLE_EQ(d.cfg.rope_theta, 1e6);
  EXPECT_EQ(d.tensors.size(), 127u);
  EXPECT_EQ(d.get("blk.3.ffn_down.7").shape, (std::vector<int64_t>{128, 256}));
  EXPECT_EQ(d.get("blk.0.ffn_gate_inp").dtype, DType::BF16);
  EXPECT_FALSE(d.tokenizer_model_path.empty());
}

TEST(HfConfig, NameMapping) {
  EXPECT_EQ(canonical_hf_name("model.layers.12.self_attn.o_proj.weight"), "blk.12.attn_output");
  EXPECT_EQ(canonical_hf_name("model.layers.0.block_sparse_moe.experts.5.w3.weight"), "blk.0.ffn_up.5");
  EXPECT_EQ(canonical_hf_name("model.layers.1.mlp.down_proj.weight"), "blk.1.ffn_down");
  EXPECT_EQ(canonical_hf_name("lm_head.weight"), "output");
  EXPECT_EQ(canonical_hf_name("model.layers.0.self_attn.rotary_emb.inv_freq"), "");
}

TEST(HfConfig, FieldsAndDefaults) {
  json j = json::parse(slurp(kModel + "/config.json"));
  j["head_dim"] = 64;
  j["sliding_window"] = 4096;
  j.erase("num_key_value_heads");
  ModelConfig c = parse_hf_config(j.dump(), "cfg");
  EXPECT_EQ(c.head_dim, 64);
  EXPECT_EQ(c.sliding_window, 4096);
  EXPECT_EQ(c.num_kv_heads, 4);
  j["architectures"] = {"MistralForCausalLM"};
  c = parse_hf_config(j.dump(), "cfg");
  EXPECT_FALSE(c.is_moe());
}

TEST(HfConfig, BadConfigs) {
  const json base = json::parse(slurp(kModel + "/config.json"));
  expect_bad([&] { parse_hf_config("{not json", "c.json"); }, "c.json: malformed JSON");
  expect_bad([&] { parse_hf_config("[1,2]", "c.json"); }, "not a JSON object");
  json j = base;
  j["architectures"] = {"GPT2LMHeadModel"};
  expect_bad([&] { parse_hf_config(j.dump(), "c.json"); }, "unsupported architecture 'GPT2LMHeadModel'");
  j = base;
  j.erase("hidden_size");
  expect_bad([&] { parse_hf_config(j.dump(), "c.json"); }, "missing field 'hidden_size'");
  j = base;
  j["hidden_size"] = "128";
  expect_bad([&] { parse_hf_config(j.dump(), "c.json"); }, "'hidden_size' must be an integer");
  j = base;
  j["num_key_value_heads"] = 3;
  expect_bad([&] { parse_hf_config(j.dump(), "c.json"); }, "multiple of num_key_value_heads");
  j = base;
  j["num_experts_per_tok"] = 9;
  expect_bad([&] { parse_hf_config(j.dump(), "c.json"); }, "num_experts_per_tok");
  j = base;
  j["hidden_act"] = "gelu";
  expect_bad([&] { parse_hf_config(j.dump(), "c.json"); }, "hidden_act");
  j = base;
  j["vocab_size"] = -5;
  expect_bad([&] { parse_hf_config(j.dump(), "c.json"); }, "vocab_size");
}

TEST_F(TempDir, MissingPieces) {
  expect_bad([&] { load_model_desc(dir_ + "/nope"); }, "no such file or directory");
  expect_bad([&] { load_model_desc(dir_); }, "no config.json");
  copy_model();
  fs::remove(dir_ + "/model-00002-of-00002.safetensors");
  expect_bad([&] { load_model_desc(dir_); }, "model-00002-of-00002.safetensors: cannot open");
  fs::remove(dir_ + "/model.safetensors.index.json");
  expect_bad([&] { load_model_desc(dir_); }, "no model.safetensors");
}

TEST_F(TempDir, TruncatedAndCorruptSafetensors) {
  copy_model();
  const std::string shard = dir_ + "/model-00001-of-00002.safetensors";
  const std::string orig = slurp(shard);
  // Truncated at many points: header length, header, data.
  for (size_t cut : {size_t(0), size_t(4), size_t(8), size_t(100), orig.size() / 2, orig.size() - 1}) {
    spit(shard, orig.substr(0, cut));
    expect_bad([&] { load_model_desc(dir_); }, "model-00001-of-00002.safetensors");
  }
  // Header JSON corrupted.
  std::string bad = orig;
  bad[8] = 'x';  // the header's opening brace
  spit(shard, bad);
  expect_bad([&] { load_model_desc(dir_); }, "malformed safetensors header");
  // Huge header length.
  bad = orig;
  for (int i = 0; i < 8; ++i) bad[size_t(i)] = char(0xff);
  spit(shard, bad);
  expect_bad([&] { load_model_desc(dir_); }, "exceeds file size");
}

// Rewrites the header of a single-file checkpoint through a JSON edit.
void edit_header(const std::string& path, const std::function<void(json&)>& f) {
  const std::string s = slurp(path);
  uint64_t n;
  std::memcpy(&n, s.data(), 8);
  json h = json::parse(s.substr(8, n));
  f(h);
  std::string hs = h.dump();
  const uint64_t m = hs.size();
  spit(path, std::string(reinterpret_cast<const char*>(&m), 8) + hs + s.substr(8 + n));
}

TEST_F(TempDir, BadTensors) {
  const std::string rnd = std::string(MOESERVE_FIXTURES) + "/models/tiny-random-mixtral";
  auto fresh = [&] {
    fs::remove_all(dir_);
    fs::create_directories(dir_);
    for (const auto& e : fs::directory_iterator(rnd)) fs::copy_file(e.path(), dir_ + "/" + e.path().filename().string());
  };
  const std::string f = dir_ + "/model.safetensors";
  fresh();
  edit_header(f, [](json& h) { h["model.norm.weight"]["dtype"] = "I8"; });
  expect_bad([&] { load_model_desc(dir_); }, "unsupported dtype I8");
  fresh();
  edit_header(f, [](json& h) { h["model.norm.weight"]["shape"] = {63}; });
  expect_bad([&] { load_model_desc(dir_); }, "bytes but shape and dtype need");
  fresh();
  edit_header(f, [](json& h) { h["model.norm.weight"]["data_offsets"] = {0, 1u << 30}; });
  expect_bad([&] { load_model_desc(dir_); }, "outside the file");
  fresh();
  edit_header(f, [](json& h) { h["model.norm.weight"].erase("shape"); });
  expect_bad([&] { load_model_desc(dir_); }, "missing shape");
  fresh();
  edit_header(f, [](json& h) { h.erase("model.layers.1.self_attn.k_proj.weight"); });
  const ModelDesc d = load_model_desc(dir_);  // structure is checked when weights are built
  EXPECT_EQ(d.find("blk.1.attn_k"), nullptr);
  expect_bad([&] { d.get("blk.1.attn_k"); }, "missing tensor 'blk.1.attn_k'");
}

}  // namespace
}  // namespace ms
