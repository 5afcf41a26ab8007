// Every count and size a model file states is bounded (format/model_limits.h)
// before anything is computed from it: crafted GGUF files whose products
// wrap around 64 bits, huge contexts, absurd expert counts and non-finite
// floats are refused with Error(BadInput) naming the file and the field,
// and so are the same values in a Hugging Face config.json.
#include <gtest/gtest.h>

#include <cmath>

#include "crafted/crafted_gguf.h"
#include "format/hf_config.h"
#include "format/model_desc.h"
#include "format/model_limits.h"
#include "gguf_test_util.h"

namespace ms {
namespace {

TEST(ModelBounds, TinyCraftedBaseLoads) {
  const std::string path = test::temp_path("ok.gguf");
  crafted::write_tiny_gguf(path, crafted::tiny_meta());
  const ModelDesc d = load_model_desc(path);
  EXPECT_EQ(d.cfg.num_heads, 2);
  EXPECT_EQ(d.cfg.head_dim, 4);
  EXPECT_EQ(d.cfg.num_experts, 2);
}

TEST(ModelBounds, CraftedGgufRefused) {
  for (const crafted::Case& c : crafted::cases()) {
    SCOPED_TRACE(c.name);
    const std::string path = test::temp_path(std::string("bad-") + c.name + ".gguf");
    crafted::write_tiny_gguf(path, crafted::apply(c));
    test::expect_bad_input([&] { load_model_desc(path); }, path + ": ");
    test::expect_bad_input([&] { load_model_desc(path); }, c.message);
  }
}

// The wrap itself: the crafted shapes match the wrapped product exactly, so
// only the bound on the factors can refuse the file.
TEST(ModelBounds, WrappedProductIsWhatTheTensorsHold) {
  const crafted::Case c = crafted::cases().at(0);
  const crafted::Meta m = crafted::apply(c);
  const uint64_t wrapped = m.u64.at("attention.head_count") * m.u64.at("attention.key_length");
  EXPECT_EQ(wrapped, 8u);
}

std::string hf_config(const std::string& extra) {
  return R"({"architectures": ["MixtralForCausalLM"], "vocab_size": 32, "hidden_size": 8,
             "intermediate_size": 16, "num_hidden_layers": 1, "num_attention_heads": 2,
             "num_key_value_heads": 1, "num_local_experts": 2, "num_experts_per_tok": 1)" +
         extra + "}";
}

TEST(ModelBounds, HfConfigBaseParses) {
  const ModelConfig c = parse_hf_config(hf_config(""), "config.json");
  EXPECT_EQ(c.head_dim, 4);
}

TEST(ModelBounds, HfConfigRefused) {
  const struct { const char* extra; const char* message; } bad[] = {
      {R"(, "head_dim": 4611686018427387906)", "head_dim"},
      {R"(, "max_position_embeddings": 4611686018427387904)", "max_position_embeddings"},
      {R"(, "max_position_embeddings": 18446744073709551615)", "too large"},
      {R"(, "sliding_window": 1099511627776)", "sliding_window"},
      {R"(, "rope_theta": 1e400)", "1e400"},
      {R"(, "rope_theta": 1e300)", "rope_theta"},
      {R"(, "rms_norm_eps": -1e-5)", "rms_norm_eps"},
      {R"(, "bos_token_id": 4294967297)", "bos_token_id"},
      {R"(, "eos_token_id": [99])", "eos_token_id"},
      {R"(, "num_key_value_heads": 3)", "num_key_value_heads"},
  };
  for (const auto& b : bad) {
    SCOPED_TRACE(b.extra);
    // A duplicate key in JSON keeps the last value: the extra field overrides.
    test::expect_bad_input([&] { parse_hf_config(hf_config(b.extra), "cfg.json"); }, "cfg.json: ");
    test::expect_bad_input([&] { parse_hf_config(hf_config(b.extra), "cfg.json"); }, b.message);
  }
  // Huge counts given directly.
  ModelConfig c = parse_hf_config(hf_config(""), "config.json");
  c.num_heads = int64_t(1) << 40;
  test::expect_bad_input([&] { validate_config(c, "x"); }, "num_attention_heads");
  c = parse_hf_config(hf_config(""), "config.json");
  c.num_experts = model_limits::kMaxExperts + 1;
  test::expect_bad_input([&] { validate_config(c, "x"); }, "num_local_experts");
  c = parse_hf_config(hf_config(""), "config.json");
  c.experts_per_tok = 3;
  test::expect_bad_input([&] { validate_config(c, "x"); }, "num_experts_per_tok");
}

// The limits admit Mixtral-8x7B itself.
TEST(ModelBounds, Mixtral8x7BFits) {
  ModelConfig c;
  c.architecture = "MixtralForCausalLM";
  c.vocab_size = 32000;
  c.hidden_size = 4096;
  c.intermediate_size = 14336;
  c.num_layers = 32;
  c.num_heads = 32;
  c.num_kv_heads = 8;
  c.head_dim = 128;
  c.num_experts = 8;
  c.experts_per_tok = 2;
  c.rope_theta = 1e6;
  c.max_position_embeddings = 32768;
  EXPECT_NO_THROW(validate_config(c, "mixtral"));
}

}  // namespace
}  // namespace ms
