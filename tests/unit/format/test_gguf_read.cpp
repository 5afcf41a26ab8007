// Reads the four llama.cpp-made fixture GGUFs of tiny-mixtral-kjv: metadata,
// tensor infos, the ModelDesc built from them, and the tensor bytes against
// the Hugging Face safetensors they were converted from.
#include <gtest/gtest.h>

#include <cmath>
#include <map>
#include <nlohmann/json.hpp>

#include "core/dtype.h"
#include "core/quant.h"
#include "format/gguf.h"
#include "gguf_test_util.h"

namespace ms {
namespace {

using test::fixture;
using test::source;

const char* kQuants[] = {"bf16", "Q8_0", "Q4_0", "Q4_K_M"};
std::string gguf_path(const std::string& q) { return fixture("gguf/tiny-mixtral-kjv." + q + ".gguf"); }

TEST(GgufRead, MetadataOfAllFixtures) {
  const std::map<std::string, uint32_t> file_type = {{"bf16", 32}, {"Q8_0", 7}, {"Q4_0", 2}, {"Q4_K_M", 15}};
  for (const char* q : kQuants) {
    SCOPED_TRACE(q);
    auto g = GgufFile::open(gguf_path(q));
    EXPECT_EQ(g->version(), 3u);
    EXPECT_EQ(g->alignment(), 32u);
    EXPECT_EQ(g->data_offset() % 32, 0u);
    EXPECT_EQ(g->get_str("general.architecture"), "llama");
    EXPECT_EQ(g->get_u32("general.file_type"), file_type.at(q));
    EXPECT_EQ(g->get_u32("llama.block_count"), 4u);
    EXPECT_EQ(g->get_u32("llama.context_length"), 32768u);
    EXPECT_EQ(g->get_u32("llama.embedding_length"), 128u);
    EXPECT_EQ(g->get_u32("llama.feed_forward_length"), 256u);
    EXPECT_EQ(g->get_u32("llama.attention.head_count"), 4u);
    EXPECT_EQ(g->get_u32("llama.attention.head_count_kv"), 2u);
    EXPECT_EQ(g->get_u32("llama.expert_count"), 8u);
    EXPECT_EQ(g->get_u32("llama.expert_used_count"), 2u);
    EXPECT_EQ(g->get_u32("llama.rope.dimension_count"), 32u);
    EXPECT_EQ(g->get_f32("llama.rope.freq_base"), 1e6f);
    EXPECT_EQ(g->get_f32("llama.attention.layer_norm_rms_epsilon"), 1e-5f);
    EXPECT_EQ(g->find("llama.rope.freq_base")->type, GgufType::F32);
    EXPECT_EQ(g->find("llama.block_count")->type, GgufType::U32);
    EXPECT_EQ(g->get_str("tokenizer.ggml.model"), "llama");
    EXPECT_TRUE(g->get_bool("tokenizer.ggml.add_bos_token"));
    EXPECT_FALSE(g->get_bool("tokenizer.ggml.add_eos_token"));
    EXPECT_EQ(g->get_i32("tokenizer.ggml.bos_token_id"), 1);
    EXPECT_EQ(g->get_i32("tokenizer.ggml.eos_token_id"), 2);
    EXPECT_EQ(g->get_arr_len("tokenizer.ggml.tokens"), 32000u);
    const auto tokens = g->get_str_arr("tokenizer.ggml.tokens");
    ASSERT_EQ(tokens.size(), 32000u);
    EXPECT_EQ(tokens[0], "<unk>");
    EXPECT_EQ(tokens[1], "<s>");
    EXPECT_EQ(tokens[2], "</s>");
    EXPECT_EQ(tokens[3], "<0x00>");
    EXPECT_EQ(tokens[258], "<0xFF>");
    EXPECT_EQ(tokens[22557], "\xE2\x96\x81Hello");  // "▁Hello", see the reference tokenizer cases
    const auto types = g->get_i32_arr("tokenizer.ggml.token_type");
    ASSERT_EQ(types.size(), 32000u);
    EXPECT_EQ(types[0], 2);
    EXPECT_EQ(types[1], 3);
    EXPECT_EQ(types[3], 6);
    EXPECT_EQ(types[1000], 1);
    const auto scores = g->get_f32_arr("tokenizer.ggml.scores");
    ASSERT_EQ(scores.size(), 32000u);
    EXPECT_EQ(scores[261], -2.0f);
    EXPECT_EQ(scores[31999], -31740.0f);
    EXPECT_EQ(g->get_str("tokenizer.chat_template").rfind("{{ bos_token }}", 0), 0u);
    // Defaults and type errors.
    EXPECT_EQ(g->get_u32("llama.no_such_key", 7u), 7u);
    EXPECT_EQ(g->get_str("no.such", "x"), "x");
    test::expect_bad_input([&] { g->get_u32("llama.no_such_key"); }, "missing metadata 'llama.no_such_key'");
    test::expect_bad_input([&] { g->get_u32("general.architecture"); }, "expected an integer");
    test::expect_bad_input([&] { g->get_str("llama.block_count"); }, "expected string");
    test::expect_bad_input([&] { g->get_str_arr("tokenizer.ggml.scores"); }, "expected an array of strings");
    test::expect_bad_input([&] { g->get_i32_arr("tokenizer.ggml.scores"); }, "expected an array of integers");
    test::expect_bad_input([&] { g->get_bool("llama.block_count"); }, "expected bool");
  }
}

TEST(GgufRead, TensorInfos) {
  const std::map<std::string, std::vector<DType>> ffn_types = {
      // ffn_gate_exps, ffn_down_exps (layer 0), ffn_down_exps (layer 3), token_embd, attn_k
      {"bf16", {DType::BF16, DType::BF16, DType::BF16, DType::BF16, DType::BF16}},
      {"Q8_0", {DType::Q8_0, DType::Q8_0, DType::Q8_0, DType::Q8_0, DType::Q8_0}},
      {"Q4_0", {DType::Q4_0, DType::Q4_0, DType::Q4_0, DType::Q4_0, DType::Q8_0}},
      {"Q4_K_M", {DType::Q5_0, DType::Q4_K, DType::Q6_K, DType::Q5_0, DType::Q8_0}},
  };
  for (const char* q : kQuants) {
    SCOPED_TRACE(q);
    auto g = GgufFile::open(gguf_path(q));
    ASSERT_EQ(g->tensors().size(), 43u);  // 4 layers x 10 + token_embd, output_norm, output
    const GgufTensor* emb = g->find_tensor("token_embd.weight");
    ASSERT_NE(emb, nullptr);
    EXPECT_EQ(emb->ne, (std::vector<int64_t>{128, 32000}));
    EXPECT_EQ(emb->shape(), (std::vector<int64_t>{32000, 128}));
    const GgufTensor* gate = g->find_tensor("blk.0.ffn_gate_exps.weight");
    ASSERT_NE(gate, nullptr);
    EXPECT_EQ(gate->ne, (std::vector<int64_t>{128, 256, 8}));
    const auto& want = ffn_types.at(q);
    EXPECT_EQ(gate->dtype, want[0]);
    EXPECT_EQ(g->find_tensor("blk.0.ffn_down_exps.weight")->dtype, want[1]);
    EXPECT_EQ(g->find_tensor("blk.3.ffn_down_exps.weight")->dtype, want[2]);
    EXPECT_EQ(emb->dtype, want[3]);
    EXPECT_EQ(g->find_tensor("blk.1.attn_k.weight")->dtype, want[4]);
    EXPECT_EQ(g->find_tensor("blk.2.ffn_gate_inp.weight")->dtype, DType::F32);
    EXPECT_EQ(g->find_tensor("output_norm.weight")->dtype, DType::F32);
    EXPECT_EQ(g->find_tensor("nope"), nullptr);
    // Every tensor lies inside the file, aligned, sized by its type.
    const uint8_t* base = g->mapped()->data();
    for (const GgufTensor& t : g->tensors()) {
      SCOPED_TRACE(t.name);
      int64_t rows = 1;
      for (size_t d = 1; d < t.ne.size(); ++d) rows *= t.ne[d];
      EXPECT_EQ(t.nbytes, row_bytes(t.dtype, t.ne[0]) * size_t(rows));
      EXPECT_EQ(size_t(t.data - base), g->data_offset() + t.offset);
      EXPECT_EQ(size_t(t.data - base) % 32, 0u);
      EXPECT_LE(size_t(t.data - base) + t.nbytes, g->mapped()->size());
      DType d;
      ASSERT_TRUE(ggml_type_to_dtype(t.ggml_type, &d));
      EXPECT_EQ(d, t.dtype);
      EXPECT_EQ(dtype_to_ggml_type(t.dtype), t.ggml_type);
    }
  }
}

TEST(GgufRead, GgmlTypeIds) {
  const std::pair<uint32_t, DType> ids[] = {
      {0, DType::F32},   {1, DType::F16},   {2, DType::Q4_0},  {3, DType::Q4_1},  {6, DType::Q5_0},
      {7, DType::Q5_1},  {8, DType::Q8_0},  {12, DType::Q4_K}, {13, DType::Q5_K}, {14, DType::Q6_K},
      {15, DType::Q8_K}, {26, DType::I32},  {30, DType::BF16}};
  for (auto [id, dt] : ids) {
    DType got;
    ASSERT_TRUE(ggml_type_to_dtype(id, &got)) << id;
    EXPECT_EQ(got, dt) << id;
    EXPECT_EQ(dtype_to_ggml_type(dt), id);
  }
  DType d;
  EXPECT_FALSE(ggml_type_to_dtype(10, &d));  // Q2_K
  EXPECT_FALSE(ggml_type_to_dtype(4, &d));   // removed Q4_2
  EXPECT_FALSE(ggml_type_to_dtype(1000, &d));
  EXPECT_STREQ(ggml_type_name(10), "Q2_K");
  EXPECT_STREQ(ggml_type_name(30), "BF16");
  EXPECT_STREQ(ggml_type_name(1000), "unknown");
}

TEST(GgufDesc, ConfigMatchesHfConfig) {
  const auto hf = nlohmann::json::parse(test::read_file(source("models/tiny-mixtral-kjv/config.json")));
  for (const char* q : kQuants) {
    SCOPED_TRACE(q);
    const ModelDesc d = load_gguf_desc(gguf_path(q));
    const ModelConfig& c = d.cfg;
    EXPECT_EQ(d.format, "gguf");
    EXPECT_EQ(d.path, gguf_path(q));
    EXPECT_EQ(c.architecture, "MixtralForCausalLM");
    EXPECT_EQ(c.vocab_size, hf["vocab_size"].get<int64_t>());
    EXPECT_EQ(c.hidden_size, hf["hidden_size"].get<int64_t>());
    EXPECT_EQ(c.intermediate_size, hf["intermediate_size"].get<int64_t>());
    EXPECT_EQ(c.num_layers, hf["num_hidden_layers"].get<int64_t>());
    EXPECT_EQ(c.num_heads, hf["num_attention_heads"].get<int64_t>());
    EXPECT_EQ(c.num_kv_heads, hf["num_key_value_heads"].get<int64_t>());
    EXPECT_EQ(c.head_dim, 32);
    EXPECT_EQ(c.num_experts, hf["num_local_experts"].get<int64_t>());
    EXPECT_EQ(c.experts_per_tok, hf["num_experts_per_tok"].get<int64_t>());
    EXPECT_EQ(c.rope_theta, hf["rope_theta"].get<double>());
    EXPECT_FLOAT_EQ(float(c.rms_norm_eps), hf["rms_norm_eps"].get<float>());
    EXPECT_EQ(c.max_position_embeddings, hf["max_position_embeddings"].get<int64_t>());
    EXPECT_EQ(c.sliding_window, 0);
    EXPECT_EQ(c.tie_word_embeddings, hf["tie_word_embeddings"].get<bool>());
    EXPECT_EQ(c.bos_id, 1);
    EXPECT_EQ(c.eos_id, 2);
    EXPECT_TRUE(c.rope_interleaved);
    EXPECT_TRUE(c.is_moe());
    // Tensors: canonical names, shapes outermost first.
    EXPECT_EQ(d.tensors.size(), 43u);
    EXPECT_EQ(d.get("token_embd").shape, (std::vector<int64_t>{32000, 128}));
    EXPECT_EQ(d.get("output").shape, (std::vector<int64_t>{32000, 128}));
    EXPECT_EQ(d.get("output_norm").shape, (std::vector<int64_t>{128}));
    EXPECT_EQ(d.get("blk.0.attn_q").shape, (std::vector<int64_t>{128, 128}));
    EXPECT_EQ(d.get("blk.0.attn_k").shape, (std::vector<int64_t>{64, 128}));
    EXPECT_EQ(d.get("blk.3.attn_v").shape, (std::vector<int64_t>{64, 128}));
    EXPECT_EQ(d.get("blk.3.attn_output").shape, (std::vector<int64_t>{128, 128}));
    EXPECT_EQ(d.get("blk.2.ffn_gate_inp").shape, (std::vector<int64_t>{8, 128}));
    EXPECT_EQ(d.get("blk.2.ffn_gate_exps").shape, (std::vector<int64_t>{8, 256, 128}));
    EXPECT_EQ(d.get("blk.2.ffn_up_exps").shape, (std::vector<int64_t>{8, 256, 128}));
    EXPECT_EQ(d.get("blk.2.ffn_down_exps").shape, (std::vector<int64_t>{8, 128, 256}));
    EXPECT_EQ(d.get("blk.1.attn_norm").dtype, DType::F32);
    EXPECT_EQ(d.get("blk.1.attn_norm").file, gguf_path(q));
    EXPECT_EQ(d.find("blk.0.attn_q.weight"), nullptr);
    for (const auto& [name, t] : d.tensors) {
      int64_t rows = t.numel() / t.shape.back();
      EXPECT_EQ(t.nbytes, row_bytes(t.dtype, t.shape.back()) * size_t(rows)) << name;
    }
    ASSERT_EQ(d.files.size(), 1u);
    EXPECT_GE(d.get("output_norm").data, d.files[0]->data());
    // Vocabulary and chat template.
    EXPECT_EQ(d.vocab.model, "llama");
    ASSERT_EQ(d.vocab.tokens.size(), 32000u);
    ASSERT_EQ(d.vocab.scores.size(), 32000u);
    ASSERT_EQ(d.vocab.types.size(), 32000u);
    EXPECT_EQ(d.vocab.tokens[28705], "\xE2\x96\x81");
    EXPECT_EQ(d.vocab.bos_id, 1);
    EXPECT_EQ(d.vocab.eos_id, 2);
    EXPECT_EQ(d.vocab.unk_id, 0);
    EXPECT_TRUE(d.vocab.add_bos);
    const auto tc = nlohmann::json::parse(test::read_file(source("models/tiny-mixtral-kjv/tokenizer_config.json")));
    EXPECT_EQ(d.chat_template, tc["chat_template"].get<std::string>());
  }
}

// ---- tensor bytes against the safetensors the GGUFs were made from ----

class Safetensors {
 public:
  explicit Safetensors(const std::string& dir) : dir_(dir) {
    const auto idx = nlohmann::json::parse(test::read_file(dir + "/model.safetensors.index.json"));
    for (auto& [name, file] : idx["weight_map"].items()) where_[name] = file.get<std::string>();
  }
  // Raw bytes of a tensor (bf16 here).
  std::string bytes(const std::string& name) {
    const std::string& file = where_.at(name);
    auto it = files_.find(file);
    if (it == files_.end()) it = files_.emplace(file, test::read_file(dir_ + "/" + file)).first;
    const std::string& f = it->second;
    uint64_t n;
    std::memcpy(&n, f.data(), 8);
    const auto head = nlohmann::json::parse(f.substr(8, n));
    const auto& t = head.at(name);
    EXPECT_EQ(t["dtype"].get<std::string>(), "BF16");
    const size_t a = t["data_offsets"][0].get<size_t>(), b = t["data_offsets"][1].get<size_t>();
    return f.substr(8 + n + a, b - a);
  }

 private:
  std::string dir_;
  std::map<std::string, std::string> where_;
  std::map<std::string, std::string> files_;
};

std::string tensor_bytes(const TensorInfo& t) { return std::string(reinterpret_cast<const char*>(t.data), t.nbytes); }

std::vector<float> bf16_as_f32(const std::string& b) {
  std::vector<float> out(b.size() / 2);
  for (size_t i = 0; i < out.size(); ++i) {
    uint16_t h;
    std::memcpy(&h, b.data() + 2 * i, 2);
    out[i] = bf16_to_f32(h);
  }
  return out;
}

std::vector<float> f32_values(const TensorInfo& t) {
  std::vector<float> out(t.nbytes / 4);
  std::memcpy(out.data(), t.data, t.nbytes);
  return out;
}

TEST(GgufDesc, Bf16TensorsEqualSafetensors) {
  Safetensors st(source("models/tiny-mixtral-kjv"));
  const ModelDesc d = load_gguf_desc(gguf_path("bf16"));
  EXPECT_EQ(tensor_bytes(d.get("token_embd")), st.bytes("model.embed_tokens.weight"));
  EXPECT_EQ(tensor_bytes(d.get("output")), st.bytes("lm_head.weight"));
  EXPECT_EQ(f32_values(d.get("output_norm")), bf16_as_f32(st.bytes("model.norm.weight")));
  const int64_t hd = d.cfg.head_dim, hidden = d.cfg.hidden_size, F = d.cfg.intermediate_size;
  for (int l = 0; l < 4; ++l) {
    SCOPED_TRACE(l);
    const std::string b = "blk." + std::to_string(l) + ".", hf = "model.layers." + std::to_string(l) + ".";
    EXPECT_EQ(tensor_bytes(d.get(b + "attn_v")), st.bytes(hf + "self_attn.v_proj.weight"));
    EXPECT_EQ(tensor_bytes(d.get(b + "attn_output")), st.bytes(hf + "self_attn.o_proj.weight"));
    EXPECT_EQ(f32_values(d.get(b + "attn_norm")), bf16_as_f32(st.bytes(hf + "input_layernorm.weight")));
    EXPECT_EQ(f32_values(d.get(b + "ffn_norm")), bf16_as_f32(st.bytes(hf + "post_attention_layernorm.weight")));
    EXPECT_EQ(f32_values(d.get(b + "ffn_gate_inp")), bf16_as_f32(st.bytes(hf + "block_sparse_moe.gate.weight")));
    // Stacked experts: expert e is the e-th [rows, cols] slab.
    const std::pair<const char*, const char*> exps[] = {
        {"ffn_gate_exps", "w1"}, {"ffn_down_exps", "w2"}, {"ffn_up_exps", "w3"}};
    for (auto [g, w] : exps) {
      const std::string all = tensor_bytes(d.get(b + g));
      const size_t per = all.size() / 8;
      ASSERT_EQ(per, size_t(F * hidden * 2));
      for (int e = 0; e < 8; ++e)
        EXPECT_EQ(all.substr(e * per, per),
                  st.bytes(hf + "block_sparse_moe.experts." + std::to_string(e) + "." + w + ".weight"))
            << g << " expert " << e;
    }
    // attn_q / attn_k rows are permuted per head: GGUF row h*hd + 2j + k holds
    // HF row h*hd + k*hd/2 + j (rotary pairs made adjacent).
    const std::pair<const char*, const char*> qk[] = {{"attn_q", "q_proj"}, {"attn_k", "k_proj"}};
    for (auto [g, p] : qk) {
      const std::string ours = tensor_bytes(d.get(b + g));
      const std::string theirs = st.bytes(hf + "self_attn." + p + ".weight");
      ASSERT_EQ(ours.size(), theirs.size());
      const size_t row = size_t(hidden) * 2;
      const int64_t rows = int64_t(ours.size() / row);
      EXPECT_NE(ours, theirs);
      for (int64_t r = 0; r < rows; ++r) {
        const int64_t h = r / hd, i = r % hd, j = i / 2, k = i % 2;
        const int64_t src = h * hd + k * (hd / 2) + j;
        ASSERT_EQ(ours.substr(size_t(r) * row, row), theirs.substr(size_t(src) * row, row)) << g << " row " << r;
      }
    }
  }
}

TEST(GgufDesc, Q8_0DataMatchesBf16) {
  // Dequantize a few Q8_0 rows by hand; each value is within 0.6 * d of the
  // bf16 original (rounding to the nearest step d, plus d stored as f16).
  const ModelDesc q8 = load_gguf_desc(gguf_path("Q8_0"));
  const ModelDesc bf = load_gguf_desc(gguf_path("bf16"));
  for (const char* name : {"token_embd", "blk.1.ffn_down_exps", "blk.3.attn_q"}) {
    SCOPED_TRACE(name);
    const TensorInfo& a = q8.get(name);
    const TensorInfo& b = bf.get(name);
    ASSERT_EQ(a.dtype, DType::Q8_0);
    ASSERT_EQ(a.shape, b.shape);
    const int64_t cols = a.shape.back(), rows = a.numel() / cols;
    for (int64_t r : {int64_t(0), rows / 2, rows - 1}) {
      const auto* blocks = reinterpret_cast<const BlockQ8_0*>(a.data + row_bytes(DType::Q8_0, cols) * size_t(r));
      const auto* ref = reinterpret_cast<const uint16_t*>(b.data) + r * cols;
      for (int64_t c = 0; c < cols; ++c) {
        const BlockQ8_0& blk = blocks[c / QK];
        const float dd = f16_to_f32(blk.d);
        const float v = dd * float(blk.qs[c % QK]);
        ASSERT_NEAR(v, bf16_to_f32(ref[c]), 0.6f * dd + 1e-7f) << "row " << r << " col " << c;
      }
    }
  }
}

}  // namespace
}  // namespace ms
