// request.h — what a caller of the engine hands in and gets back: sampling
// parameters, the request, and the stream of events it produces. Shared by
// the engine, the server and the CLI; engine.h is the engine itself.
#pragma once
#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <unordered_map>
#include <vector>

namespace ms {

struct SamplingParams {
  float temperature = 1.0f;    // 0 = greedy
  float top_p = 1.0f;          // (0, 1]
  int32_t top_k = 0;           // 0 = off
  float min_p = 0.0f;          // [0, 1]
  float presence_penalty = 0.0f;
  float frequency_penalty = 0.0f;
  float repetition_penalty = 1.0f;  // > 0; applied to tokens in prompt and output (HF/CTRL rule)
  bool has_seed = false;
  uint64_t seed = 0;
  int32_t max_tokens = 16;
  std::vector<std::string> stop;         // stop strings (not included in the output)
  std::vector<int32_t> stop_token_ids;
  bool ignore_eos = false;
  int32_t logprobs = -1;                 // -1: none; k >= 0: chosen token's logprob + top-k
  std::unordered_map<int32_t, float> logit_bias;
};

enum class FinishReason { None, Stop, Length, Cancelled, Error };
const char* finish_reason_name(FinishReason r);  // "stop", "length", "cancelled", "error"

struct TokenLogprob {
  int32_t token;
  float logprob;
};

// A request's expert routing (Request::record_routing): how many tokens each
// expert of each layer took, prompt and completion apart, and the experts of
// each completion token. A token counts once, in the step that runs it through
// the model: every prompt token (a recording request does not reuse cached
// prefix blocks, so none is skipped) and every generated token but the last
// (sampled, never run). So sum(prompt) = layers * top_k * prompt_tokens, and
// likewise for the completion. Empty (layers 0) for a model without routing.
struct ExpertLoad {
  static constexpr int32_t kMaxRoutedTokens = 8192;  // completion_routes kept for at most this many tokens
  int32_t layers = 0, experts = 0, top_k = 0;
  int32_t prompt_tokens = 0, completion_tokens = 0;  // tokens counted in each
  std::vector<int64_t> prompt;             // [layer * experts + e]
  std::vector<int64_t> completion;         // [layer * experts + e]
  std::vector<int32_t> completion_routes;  // [token][layer][top_k], most probable expert first
};

// One event per generated token (text may be empty while a UTF-8 character is
// incomplete or a stop string might be starting), plus the final event with
// finish != None (which may carry the last token or none: token == -1).
struct StreamEvent {
  int32_t token = -1;
  std::string text;                 // new text, always whole UTF-8 characters
  float logprob = 0.0f;
  std::vector<TokenLogprob> top_logprobs;
  FinishReason finish = FinishReason::None;
  std::string error;                // when finish == Error
  int32_t prompt_tokens = 0;
  int32_t completion_tokens = 0;
  int32_t cached_tokens = 0;        // prompt tokens served from the prefix cache
  std::shared_ptr<const ExpertLoad> expert_load;  // on the final event of a recording request
};

// A per-sequence constraint on the tokens it may generate (structured
// outputs: JSON Schema, regex, grammar). The engine asks for the mask before
// each sample and reports the token taken; it never looks inside. Called on
// the engine thread only (one sequence's constraint from one thread at a time).
class TokenConstraint {
 public:
  virtual ~TokenConstraint() = default;
  // Sets mask bit t (word t/64, bit t%64) for every token allowed next,
  // EOS included exactly when is_complete(). `mask` has (vocab+63)/64 words.
  virtual void allowed(uint64_t* mask) = 0;
  // Takes the sampled token (always one the mask allowed).
  virtual void advance(int32_t token) = 0;
  virtual bool is_complete() const = 0;
};

// Scheduling class of a request (the scheduler's priority classes). Lower
// value = served first: waiting Provisioned requests are admitted before
// Standard ones, Standard before Batch, and a short KV pool or step budget
// preempts the lowest class first. Provisioned: traffic within a key's
// reserved tokens/s; Standard: online best effort; Batch: Batch API and
// offline batch lines, which use only what online traffic leaves.
enum class Priority : uint8_t { Provisioned = 0, Standard = 1, Batch = 2 };
constexpr int kNumPriorities = 3;
const char* priority_name(Priority p);  // "provisioned", "standard", "batch"

struct Request {
  std::vector<int32_t> prompt;
  SamplingParams sampling;
  std::function<void(const StreamEvent&)> on_event;
  std::shared_ptr<TokenConstraint> constraint = nullptr;  // null: unconstrained (pays nothing)
  bool record_routing = false;      // report the request's ExpertLoad with its final event
  Priority priority = Priority::Standard;
};

}  // namespace ms
