// sequence.h — the engine's state for one request.
//
// tokens = prompt followed by the generated tokens. The K/V of tokens
// [0, num_computed) lives in `blocks` (block i holds positions
// [i*block_size, (i+1)*block_size)); tokens [num_computed, size) still have to
// be run through the model. A step that computes up to the last token yields
// logits from which the next token is sampled. After a preemption the blocks
// are gone and num_computed is 0: the prompt AND the tokens generated so far
// are recomputed, and only then is a new token sampled, so nothing is emitted
// twice and the sampler's RNG stream is unaffected.
#pragma once
#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "engine/detokenizer.h"
#include "engine/model_runner.h"
#include "engine/request.h"
#include "engine/sampler.h"

namespace ms {

using EventCallback = std::function<void(const StreamEvent&)>;

// An event ready to be delivered (outside any lock) to its callback.
struct Emission {
  std::shared_ptr<EventCallback> callback;
  StreamEvent event;
};

struct Sequence {
  Sequence(uint64_t id, Request&& r, const TokenText& text, int64_t vocab_size);

  uint64_t id;
  std::vector<int32_t> tokens;
  int32_t prompt_len;
  SamplingParams params;
  Sampler sampler;
  Detokenizer detok;
  std::shared_ptr<EventCallback> callback;
  std::shared_ptr<TokenConstraint> constraint;  // null: unconstrained
  std::vector<uint64_t> mask;                   // the constraint's mask for the next sample
  bool mask_ready = false;                      // `mask` is current (filled while the step ran)

  int32_t num_computed = 0;
  std::vector<int32_t> blocks;
  std::vector<uint64_t> block_hashes;  // chained hashes of the full blocks of `tokens`
  int32_t num_committed = 0;           // leading blocks already in the prefix cache (or checked)
  int32_t cached_tokens = -1;          // prefix-cache hit at the first admission (-1: not yet admitted)
  int32_t num_preemptions = 0;
  Priority priority = Priority::Standard;  // scheduling class (request.h)
  uint64_t admit_order = 0;                // when it was last admitted (orders running_ within a class)
  FinishReason finish = FinishReason::None;
  std::shared_ptr<ExpertLoad> routing;  // when the request records its routing
  int32_t routed_upto = 0;              // tokens [0, routed_upto) are counted in `routing`

  // Its next token is the greedy argmax of the model's logits (plain greedy,
  // no grammar); token_only(): and nothing else reads those logits (no
  // logprobs), so the model may give the token without them
  // (LogitsWanted::Greedy). The scheduler and the engine both ask these.
  bool argmax_samples() const { return sampler.plain_greedy() && !constraint; }
  bool token_only() const { return sampler.token_only() && !constraint; }

  int32_t num_generated() const { return static_cast<int32_t>(tokens.size()) - prompt_len; }
  int32_t remaining() const { return static_cast<int32_t>(tokens.size()) - num_computed; }

  // Takes a sampled token: appends it, runs stop checks and detokenisation,
  // and returns the event for it (finish set when the request is done).
  StreamEvent accept(const SampleResult& r, int32_t eos_id, int64_t max_context);
  // The final event of a request that ends without a new token.
  StreamEvent final_event(FinishReason why, const std::string& error = {});
  // Counts the routing of tokens [pos0, pos0+n) from a step's output, whose
  // rows row0.. are these tokens (positions counted before are skipped).
  void record_routing(const ForwardOutput& out, int64_t row0, int32_t pos0, int32_t n, int64_t n_experts);

 private:
  void fill_counts(StreamEvent& ev) const;
};

}  // namespace ms
