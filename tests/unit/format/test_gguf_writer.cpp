// GgufWriter -> GgufFile round trips (every metadata type, tensors of several
// types, alignments), writer misuse, and load_gguf_desc on small hand-made
// models: dense, MoE stacked, MoE one tensor per expert, and broken ones.
#include <gtest/gtest.h>

#include <cmath>
#include <functional>
#include <limits>

#include "format/gguf.h"
#include "format/gguf_writer.h"
#include "gguf_test_util.h"

namespace ms {
namespace {

using test::expect_bad_input;
using test::temp_path;

std::string pattern(size_t n, uint32_t seed) {
  std::string s(n, '\0');
  uint32_t x = seed * 2654435761u + 1;
  for (auto& c : s) {
    x = x * 1664525u + 1013904223u;
    c = char(x >> 24);
  }
  return s;
}

class GgufRoundTrip : public ::testing::TestWithParam<uint32_t> {};

TEST_P(GgufRoundTrip, MetadataAndTensors) {
  const uint32_t align = GetParam();
  const std::string path = temp_path("rt_" + std::to_string(align) + ".gguf");
  GgufWriter w(align);
  w.add_u8("t.u8", 200);
  w.add_i8("t.i8", -100);
  w.add_u16("t.u16", 60000);
  w.add_i16("t.i16", -30000);
  w.add_u32("t.u32", 4000000000u);
  w.add_i32("t.i32", -2000000000);
  w.add_u64("t.u64", uint64_t(1) << 40);
  w.add_i64("t.i64", -(int64_t(1) << 40));
  w.add_u64("t.u64big", std::numeric_limits<uint64_t>::max());
  w.add_f32("t.f32", 1.5f);
  w.add_f64("t.f64", 2.25e-300);
  w.add_bool("t.true", true);
  w.add_bool("t.false", false);
  w.add_str("t.str", "h\xC3\xA9llo");
  w.add_str("t.empty", "");
  w.add_arr_str("t.astr", {"a", "", "\xC3\xBC", std::string(1000, 'x')});
  w.add_arr_f32("t.af32", {1.0f, -2.5f, 3e38f});
  w.add_arr_i32("t.ai32", {-1, 0, 7});
  w.add_arr_u32("t.au32", {1, 4000000000u});
  w.add_arr_i64("t.ai64", {-(int64_t(1) << 50), 5});
  const uint8_t u8s[] = {1, 2, 255};
  w.add_arr_raw("t.au8", GgufType::U8, u8s, 3);
  w.add_arr_i32("t.aempty", {});

  struct T { std::string name; DType t; std::vector<int64_t> shape; std::string data; };
  std::vector<T> ts = {
      {"a.f32", DType::F32, {3, 5}, ""},        {"b.f16", DType::F16, {2, 64}, ""},
      {"c.bf16", DType::BF16, {7}, ""},         {"d.q8_0", DType::Q8_0, {3, 64}, ""},
      {"e.q4_0", DType::Q4_0, {2, 2, 32}, ""}, {"f.q4_k", DType::Q4_K, {1, 256}, ""},
      {"g.q6_k", DType::Q6_K, {2, 1, 1, 256}, ""},
  };
  std::string all;
  for (size_t i = 0; i < ts.size(); ++i) {
    const size_t n = w.add_tensor(ts[i].name, ts[i].t, ts[i].shape);
    ts[i].data = pattern(n, uint32_t(i));
    all += ts[i].data;
  }
  w.open(path);
  for (size_t off = 0; off < all.size(); off += 7) w.write(all.data() + off, std::min<size_t>(7, all.size() - off));
  w.close();

  auto g = GgufFile::open(path);
  EXPECT_EQ(g->version(), 3u);
  EXPECT_EQ(g->alignment(), align);
  EXPECT_EQ(g->get_u32("t.u8"), 200u);
  EXPECT_EQ(g->find("t.u8")->type, GgufType::U8);
  EXPECT_EQ(g->get_i32("t.i8"), -100);
  EXPECT_EQ(g->get_u32("t.u16"), 60000u);
  EXPECT_EQ(g->get_i32("t.i16"), -30000);
  EXPECT_EQ(g->get_u32("t.u32"), 4000000000u);
  EXPECT_EQ(g->get_i64("t.u32"), 4000000000);
  EXPECT_EQ(g->get_i32("t.i32"), -2000000000);
  EXPECT_EQ(g->get_u64("t.u64"), uint64_t(1) << 40);
  EXPECT_EQ(g->get_i64("t.i64"), -(int64_t(1) << 40));
  EXPECT_EQ(g->get_u64("t.u64big"), std::numeric_limits<uint64_t>::max());
  EXPECT_EQ(g->get_f32("t.f32"), 1.5f);
  EXPECT_EQ(g->get_f64("t.f64"), 2.25e-300);
  EXPECT_EQ(g->get_f64("t.i16"), -30000.0);
  EXPECT_TRUE(g->get_bool("t.true"));
  EXPECT_FALSE(g->get_bool("t.false"));
  EXPECT_EQ(g->get_str("t.str"), "h\xC3\xA9llo");
  EXPECT_EQ(g->get_str("t.empty"), "");
  EXPECT_EQ(g->get_str_arr("t.astr"), (std::vector<std::string>{"a", "", "\xC3\xBC", std::string(1000, 'x')}));
  EXPECT_EQ(g->get_f32_arr("t.af32"), (std::vector<float>{1.0f, -2.5f, 3e38f}));
  EXPECT_EQ(g->get_i32_arr("t.ai32"), (std::vector<int32_t>{-1, 0, 7}));
  EXPECT_EQ(g->get_i64_arr("t.au32"), (std::vector<int64_t>{1, 4000000000}));
  EXPECT_EQ(g->get_i64_arr("t.ai64"), (std::vector<int64_t>{-(int64_t(1) << 50), 5}));
  EXPECT_EQ(g->get_i32_arr("t.au8"), (std::vector<int32_t>{1, 2, 255}));
  EXPECT_EQ(g->get_f32_arr("t.ai32"), (std::vector<float>{-1, 0, 7}));
  EXPECT_EQ(g->get_arr_len("t.aempty"), 0u);
  EXPECT_EQ(g->find("t.aempty")->elem, GgufType::I32);
  // Range and type errors name the key.
  expect_bad_input([&] { g->get_u32("t.i8"); }, "'t.i8' is negative");
  expect_bad_input([&] { g->get_u32("t.u64"); }, "does not fit in 32 bits");
  expect_bad_input([&] { g->get_i64("t.u64big"); }, "'t.u64big' is too large");
  expect_bad_input([&] { g->get_i32_arr("t.au32"); }, "does not fit in 32 bits");
  expect_bad_input([&] { g->get_f64("t.str"); }, "expected a number");
  expect_bad_input([&] { g->get_str_arr("t.str"); }, "expected an array");
  // Keys in file order (general.alignment first when not the default).
  std::vector<std::string> keys = g->keys();
  if (align != 32) {
    ASSERT_EQ(keys.front(), "general.alignment");
    keys.erase(keys.begin());
  }
  EXPECT_EQ(keys.front(), "t.u8");
  EXPECT_EQ(keys.back(), "t.aempty");
  // Tensors come back byte-exact, aligned, in declaration order.
  ASSERT_EQ(g->tensors().size(), ts.size());
  for (size_t i = 0; i < ts.size(); ++i) {
    const GgufTensor& t = g->tensors()[i];
    SCOPED_TRACE(t.name);
    EXPECT_EQ(t.name, ts[i].name);
    EXPECT_EQ(t.dtype, ts[i].t);
    EXPECT_EQ(t.shape(), ts[i].shape);
    EXPECT_EQ(t.offset % align, 0u);
    EXPECT_EQ(size_t(t.data - g->mapped()->data()) % align, 0u);
    EXPECT_EQ(std::string(reinterpret_cast<const char*>(t.data), t.nbytes), ts[i].data);
  }
  EXPECT_EQ(g->mapped()->size() % align, 0u);
}

INSTANTIATE_TEST_SUITE_P(Alignments, GgufRoundTrip, ::testing::Values(32u, 64u, 1u, 4096u));

TEST(GgufWriter, EmptyFile) {
  const std::string path = temp_path("empty.gguf");
  GgufWriter w;
  w.open(path);
  w.close();
  auto g = GgufFile::open(path);
  EXPECT_TRUE(g->keys().empty());
  EXPECT_TRUE(g->tensors().empty());
}

TEST(GgufWriter, Misuse) {
  {
    GgufWriter w;
    w.add_u32("k", 1);
    expect_bad_input([&] { w.add_str("k", "x"); }, "added twice");
    w.add_tensor("t", DType::F32, {4});
    expect_bad_input([&] { w.add_tensor("t", DType::F32, {4}); }, "added twice");
    expect_bad_input([&] { w.add_tensor("u", DType::Q8_0, {3, 33}); }, "not a whole number");
    expect_bad_input([&] { w.add_tensor("v", DType::F32, {0, 3}); }, "non-positive");
    expect_bad_input([&] { w.add_tensor("x", DType::F32, {1, 1, 1, 1, 1}); }, "1 to 4 dimensions");
    w.open(temp_path("misuse1.gguf"));
    expect_bad_input([&] { w.add_u32("late", 1); }, "after open()");
    const float v[5] = {};
    expect_bad_input([&] { w.write(v, sizeof(v)); }, "more tensor data");
  }
  {
    GgufWriter w;
    w.add_tensor("t", DType::F32, {4});
    w.open(temp_path("misuse2.gguf"));
    const float v[3] = {};
    w.write(v, sizeof(v));
    expect_bad_input([&] { w.close(); }, "'t' was not written in full (12 of 16 bytes)");
  }
  {
    GgufWriter w;
    expect_bad_input([&] { w.open("/nonexistent-dir/x.gguf"); }, "/nonexistent-dir/x.gguf: cannot create");
  }
}

// ---- load_gguf_desc on small hand-made llama files ----

struct Toy {
  std::string arch = "llama";
  int64_t layers = 2, hidden = 64, heads = 4, kv_heads = 2, ffn = 96, experts = 4, used = 2, vocab = 300;
  bool per_expert = false;  // old Mixtral layout: ffn_gate.E.weight ...
  bool tied = false;
  bool key_length = false;  // write attention.key_length
  int64_t rope_dims = 16;
  std::string skip;                       // tensor not to write
  std::string bad_shape;                  // tensor written with a wrong shape
  std::function<void(GgufWriter&)> meta;  // extra metadata
};

void write_toy(const std::string& path, const Toy& t) {
  GgufWriter w;
  w.add_str("general.architecture", t.arch);
  w.add_u32("llama.block_count", uint32_t(t.layers));
  w.add_u32("llama.context_length", 4096);
  w.add_u32("llama.embedding_length", uint32_t(t.hidden));
  w.add_u32("llama.feed_forward_length", uint32_t(t.ffn));
  w.add_u32("llama.attention.head_count", uint32_t(t.heads));
  w.add_u32("llama.attention.head_count_kv", uint32_t(t.kv_heads));
  if (t.key_length) w.add_u32("llama.attention.key_length", uint32_t(t.hidden / t.heads));
  w.add_u32("llama.rope.dimension_count", uint32_t(t.rope_dims));
  w.add_f32("llama.attention.layer_norm_rms_epsilon", 1e-6f);
  if (t.experts) {
    w.add_u32("llama.expert_count", uint32_t(t.experts));
    w.add_u32("llama.expert_used_count", uint32_t(t.used));
  }
  std::vector<std::string> tokens = {"<unk>", "<s>", "</s>"};
  while (int64_t(tokens.size()) < t.vocab) tokens.push_back("tok" + std::to_string(tokens.size()));
  std::vector<int32_t> types(tokens.size(), 1);
  types[0] = 2;
  types[1] = types[2] = 3;
  std::vector<float> scores(tokens.size());
  for (size_t i = 0; i < scores.size(); ++i) scores[i] = -float(i);
  w.add_str("tokenizer.ggml.model", "llama");
  w.add_arr_str("tokenizer.ggml.tokens", tokens);
  w.add_arr_f32("tokenizer.ggml.scores", scores);
  w.add_arr_i32("tokenizer.ggml.token_type", types);
  w.add_u32("tokenizer.ggml.bos_token_id", 1);
  w.add_u32("tokenizer.ggml.eos_token_id", 2);
  w.add_bool("tokenizer.ggml.add_bos_token", false);
  if (t.meta) t.meta(w);
  const int64_t hd = t.hidden / t.heads, H = t.hidden, F = t.ffn, E = t.experts;
  size_t total = 0;
  auto add = [&](const std::string& name, DType dt, std::vector<int64_t> shape) {
    if (name == t.skip) return;
    if (name == t.bad_shape) shape.back() += 32;
    total += w.add_tensor(name + ".weight", dt, shape);
  };
  add("token_embd", DType::Q8_0, {t.vocab, H});
  for (int64_t l = 0; l < t.layers; ++l) {
    const std::string b = "blk." + std::to_string(l) + ".";
    add(b + "attn_norm", DType::F32, {H});
    add(b + "attn_q", DType::F16, {t.heads * hd, H});
    add(b + "attn_k", DType::F16, {t.kv_heads * hd, H});
    add(b + "attn_v", DType::F16, {t.kv_heads * hd, H});
    add(b + "attn_output", (t.heads * hd) % 32 ? DType::F16 : DType::Q4_0, {H, t.heads * hd});
    add(b + "ffn_norm", DType::F32, {H});
    if (!E) {
      add(b + "ffn_gate", DType::BF16, {F, H});
      add(b + "ffn_up", DType::BF16, {F, H});
      add(b + "ffn_down", DType::BF16, {H, F});
      continue;
    }
    add(b + "ffn_gate_inp", DType::F32, {E, H});
    if (t.per_expert) {
      for (int64_t e = 0; e < E; ++e) {
        add(b + "ffn_gate." + std::to_string(e), DType::Q8_0, {F, H});
        add(b + "ffn_down." + std::to_string(e), DType::Q8_0, {H, F});
        add(b + "ffn_up." + std::to_string(e), DType::Q8_0, {F, H});
      }
    } else {
      add(b + "ffn_gate_exps", DType::Q8_0, {E, F, H});
      add(b + "ffn_down_exps", DType::Q8_0, {E, H, F});
      add(b + "ffn_up_exps", DType::Q8_0, {E, F, H});
    }
  }
  add("output_norm", DType::F32, {H});
  if (!t.tied) add("output", DType::Q8_0, {t.vocab, H});
  w.open(path);
  const std::string zeros(total, '\0');
  w.write(zeros.data(), zeros.size());
  w.close();
}


ModelDesc load_toy(const Toy& t, const std::string& name) {
  const std::string path = temp_path(name + ".gguf");
  write_toy(path, t);
  return load_gguf_desc(path);
}

TEST(GgufDescToy, MoeStacked) {
  Toy t;
  t.key_length = true;
  const ModelDesc d = load_toy(t, "moe");
  EXPECT_EQ(d.cfg.architecture, "MixtralForCausalLM");
  EXPECT_EQ(d.cfg.num_experts, 4);
  EXPECT_EQ(d.cfg.experts_per_tok, 2);
  EXPECT_EQ(d.cfg.head_dim, 16);
  EXPECT_EQ(d.cfg.vocab_size, 300);
  EXPECT_EQ(d.cfg.max_position_embeddings, 4096);
  EXPECT_EQ(d.cfg.rope_theta, 10000.0);  // default when rope.freq_base is absent
  EXPECT_FLOAT_EQ(float(d.cfg.rms_norm_eps), 1e-6f);
  EXPECT_FALSE(d.cfg.tie_word_embeddings);
  EXPECT_FALSE(d.vocab.add_bos);
  EXPECT_EQ(d.vocab.scores[5], -5.0f);
  EXPECT_EQ(d.get("blk.1.ffn_down_exps").shape, (std::vector<int64_t>{4, 64, 96}));
  EXPECT_EQ(d.get("blk.1.attn_output").dtype, DType::Q4_0);
}

TEST(GgufDescToy, MoePerExpertTensors) {
  Toy t;
  t.per_expert = true;
  const ModelDesc d = load_toy(t, "moe_per_expert");
  EXPECT_TRUE(d.cfg.is_moe());
  EXPECT_EQ(d.get("blk.0.ffn_gate.3").shape, (std::vector<int64_t>{96, 64}));
  EXPECT_EQ(d.get("blk.1.ffn_down.0").shape, (std::vector<int64_t>{64, 96}));
  EXPECT_EQ(d.find("blk.0.ffn_gate_exps"), nullptr);
  t.skip = "blk.1.ffn_up.2";
  expect_bad_input([&] { load_toy(t, "moe_per_expert_missing"); }, "missing tensor 'blk.1.ffn_up.2.weight'");
}

TEST(GgufDescToy, DenseTied) {
  Toy t;
  t.experts = 0;
  t.tied = true;
  t.meta = [](GgufWriter& w) {
    w.add_f32("llama.rope.freq_base", 500000.0f);
    w.add_u32("llama.attention.sliding_window", 4096);
  };
  const ModelDesc d = load_toy(t, "dense");
  EXPECT_EQ(d.cfg.architecture, "LlamaForCausalLM");
  EXPECT_FALSE(d.cfg.is_moe());
  EXPECT_EQ(d.cfg.experts_per_tok, 0);
  EXPECT_TRUE(d.cfg.tie_word_embeddings);
  EXPECT_EQ(d.cfg.rope_theta, 500000.0);
  EXPECT_EQ(d.cfg.sliding_window, 4096);
  EXPECT_EQ(d.find("output"), nullptr);
  EXPECT_EQ(d.get("blk.0.ffn_down").shape, (std::vector<int64_t>{64, 96}));
}

TEST(GgufDescToy, Errors) {
  {
    Toy t;
    t.arch = "gpt2";
    expect_bad_input([&] { load_toy(t, "e_arch"); }, "architecture 'gpt2' is not supported");
  }
  {
    Toy t;
    t.skip = "blk.1.attn_k";
    expect_bad_input([&] { load_toy(t, "e_missing"); }, "missing tensor 'blk.1.attn_k.weight'");
  }
  {
    Toy t;
    t.skip = "token_embd";
    expect_bad_input([&] { load_toy(t, "e_embd"); }, "missing tensor 'token_embd.weight'");
  }
  {
    Toy t;
    t.bad_shape = "blk.0.ffn_up_exps";
    expect_bad_input([&] { load_toy(t, "e_shape"); }, "'blk.0.ffn_up_exps.weight' has shape [4, 96, 96], expected [4, 96, 64]");
  }
  {
    Toy t;
    t.used = 5;
    expect_bad_input([&] { load_toy(t, "e_used"); }, "expert_used_count 5 must be in 1..4");
  }
  {
    Toy t;
    t.rope_dims = 8;
    expect_bad_input([&] { load_toy(t, "e_rope"); }, "partial rotary");
  }
  {
    Toy t;
    t.heads = 3;  // 64 not divisible by 3
    expect_bad_input([&] { load_toy(t, "e_heads"); }, "not divisible by head_count 3");
  }
  {
    Toy t;
    t.meta = [](GgufWriter& w) { w.add_u32("tokenizer.ggml.unknown_token_id", 300); };
    expect_bad_input([&] { load_toy(t, "e_unk"); }, "unknown_token_id 300 is outside the vocabulary of 300");
  }
  {
    Toy t;
    t.meta = [](GgufWriter& w) { w.add_str("llama.rope.freq_base", "1e6"); };
    expect_bad_input([&] { load_toy(t, "e_type"); }, "metadata 'llama.rope.freq_base' has type string, expected a number");
  }
  {
    Toy t;
    t.meta = [](GgufWriter& w) { w.add_i32("llama.attention.sliding_window", -1); };
    expect_bad_input([&] { load_toy(t, "e_sw"); }, "sliding_window is negative");
  }
}

}  // namespace
}  // namespace ms
