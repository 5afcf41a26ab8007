#include "format/model_limits.h"

#include <cmath>

#include "core/checked.h"
#include "core/error.h"

namespace ms {

namespace L = model_limits;

void validate_config(const ModelConfig& c, const std::string& origin) {
  auto fail = [&](const std::string& what) { bad_input(origin + ": invalid config: " + what); };
  // Field names are config.json's, with GGUF's llama.* key in parentheses.
  auto range = [&](const char* name, int64_t v, int64_t lo, int64_t hi) {
    if (v < lo || v > hi)
      fail(std::string(name) + " is " + std::to_string(v) + ", must be in " + std::to_string(lo) + ".." +
           std::to_string(hi));
  };
  range("vocab_size (tokenizer.ggml.tokens)", c.vocab_size, 1, L::kMaxVocab);
  range("hidden_size (embedding_length)", c.hidden_size, 1, L::kMaxHidden);
  range("intermediate_size (feed_forward_length)", c.intermediate_size, 1, L::kMaxFfn);
  range("num_hidden_layers (block_count)", c.num_layers, 1, L::kMaxLayers);
  range("num_attention_heads (attention.head_count)", c.num_heads, 1, L::kMaxHeads);
  range("num_key_value_heads (attention.head_count_kv)", c.num_kv_heads, 1, c.num_heads);
  if (c.num_heads % c.num_kv_heads != 0)
    fail("num_attention_heads " + std::to_string(c.num_heads) + " is not a multiple of num_key_value_heads " +
         std::to_string(c.num_kv_heads));
  range("head_dim (attention.key_length)", c.head_dim, 2, L::kMaxHeadDim);
  if (c.head_dim % 2 != 0) fail("head_dim " + std::to_string(c.head_dim) + " is odd");
  // Bounded factors cannot overflow, but the widths have their own limit.
  range("num_attention_heads * head_dim", c.num_heads * c.head_dim, 1, L::kMaxAttnWidth);
  if (c.is_moe()) {
    range("num_local_experts (expert_count)", c.num_experts, 1, L::kMaxExperts);
    range("num_experts_per_tok (expert_used_count)", c.experts_per_tok, 1,
          std::min(c.num_experts, L::kMaxExpertsPerTok));
  } else if (c.num_experts != 0 || c.experts_per_tok != 0) {
    fail("num_experts_per_tok without experts");
  }
  range("max_position_embeddings (context_length)", c.max_position_embeddings, 1, L::kMaxContext);
  range("sliding_window (attention.sliding_window)", c.sliding_window, 0, L::kMaxContext);
  if (!std::isfinite(c.rope_theta) || !(c.rope_theta > 0) || c.rope_theta > L::kMaxRopeTheta)
    fail("rope_theta (rope.freq_base) is " + std::to_string(c.rope_theta) + ", must be in (0, 1e12]");
  if (!std::isfinite(c.rms_norm_eps) || c.rms_norm_eps < 0 || c.rms_norm_eps > L::kMaxRmsEps)
    fail("rms_norm_eps (attention.layer_norm_rms_epsilon) is " + std::to_string(c.rms_norm_eps) +
         ", must be in [0, 1]");
  if (c.bos_id < 0 || c.bos_id >= c.vocab_size)
    fail("bos_token_id " + std::to_string(c.bos_id) + " is outside the vocabulary of " + std::to_string(c.vocab_size));
  if (c.eos_id < 0 || c.eos_id >= c.vocab_size)
    fail("eos_token_id " + std::to_string(c.eos_id) + " is outside the vocabulary of " + std::to_string(c.vocab_size));

  // The largest tensors the model reads, and the sizes the runtime derives
  // (KV bytes per position over all layers, at f32), checked for overflow.
  const int64_t E = std::max<int64_t>(c.num_experts, 1);
  const struct { const char* what; std::optional<int64_t> n; } sizes[] = {
      {"vocab_size * hidden_size", checked_mul(c.vocab_size, c.hidden_size)},
      {"experts * intermediate_size * hidden_size", checked_product({E, c.intermediate_size, c.hidden_size})},
      {"heads * head_dim * hidden_size", checked_product({c.num_heads, c.head_dim, c.hidden_size})},
      {"layers * kv_heads * head_dim * 8 (KV bytes per position)",
       checked_product({c.num_layers, c.num_kv_heads, c.head_dim, 8})},
      {"layers * experts", checked_mul(c.num_layers, E)},
  };
  for (const auto& s : sizes)
    if (!s.n || *s.n > L::kMaxTensorElems) fail(std::string(s.what) + " is too large");
}

}  // namespace ms
