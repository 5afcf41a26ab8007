// batch.h — what one forward step of the model takes and gives back.
//
// A step is a list of chunks, one per sequence: a run of new tokens at
// positions pos0 .. pos0+n_tokens-1 (a prefill chunk, or one decode token).
// The KV cache is paged: a sequence's keys/values live in fixed-size blocks
// of a shared pool, and block_table[i] is the pool block holding positions
// [i*block_size, (i+1)*block_size). The table must cover pos0+n_tokens
// positions; the step writes the new tokens' K/V into it, then attends over
// positions [0, pos0+n_tokens) (causal, plus the sliding window if any).
#pragma once
#include <cstdint>
#include <vector>

namespace ms {

// Which rows of a chunk the caller wants scored. Greedy: only the greedy token
// of its last row (ForwardOutput::argmax), for a sequence that samples plainly
// greedy without logprobs: its logits row is reserved but may be left
// unwritten (a model may skip the lm_head's outputs and fuse the argmax).
enum class LogitsWanted : uint8_t { None, Last, All, Greedy };

struct SeqChunk {
  const int32_t* tokens = nullptr;
  int32_t n_tokens = 0;
  int32_t pos0 = 0;
  const int32_t* block_table = nullptr;
  int32_t n_blocks = 0;
  LogitsWanted logits = LogitsWanted::Last;
};

struct ForwardOutput {
  int64_t vocab_size = 0;
  std::vector<float> logits;           // [rows][vocab_size], rows in chunk order
  std::vector<int32_t> first_row;      // per chunk: index of its first logits row, -1 if none
  std::vector<int64_t> expert_tokens;  // [layer * n_experts + e]: tokens routed this step

  // Optional per-token routing, for callers that report it (set want_routing
  // before the step; models without routing leave routing empty). For token
  // row t of the step (chunks in order, all their tokens) and layer l, the
  // routing_k experts it went to, most probable first:
  //   routing[(t * routing_layers + l) * routing_k + j]
  bool want_routing = false;
  int32_t routing_layers = 0;
  int32_t routing_k = 0;
  std::vector<int32_t> routing;

  // Optional: per logits row, its greedy token (core/argmax.h), computed with
  // the logits on the backend's threads when want_argmax is set before the
  // step; empty otherwise. The sampler takes it for plain greedy rows instead
  // of a serial pass over each row (200 rows x 32000 logits: ~13% of a step
  // on the engine thread of a 2-core machine, the other core idle). A step
  // with Greedy chunks fills it whatever want_argmax says (-1 for rows whose
  // token was not asked for: the sampler then finds it in the logits).
  bool want_argmax = false;
  std::vector<int32_t> argmax;

  const float* row(int64_t r) const { return logits.data() + r * vocab_size; }
};

}  // namespace ms
