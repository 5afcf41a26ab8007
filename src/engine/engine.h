// engine.h — the generation engine: requests in, token streams out.
//
// One engine thread runs the loop  schedule() -> StepPlan -> runner.forward()
// -> update(). Requests join the running batch between steps and leave when
// finished (iteration-level continuous batching); prefill chunks and decode
// tokens share a step. The KV cache is a pool of fixed-size blocks with
// refcounts and prefix hashes (block_pool.h); when it runs dry the newest
// running request is preempted and later recomputed.
//
// Thread-safety: submit()/cancel()/stats() may be called from any thread.
// Callbacks run on the engine thread and must not block.
#pragma once
#include <atomic>
#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <unordered_map>
#include <vector>

#include "model/batch.h"

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

struct Request {
  std::vector<int32_t> prompt;
  SamplingParams sampling;
  std::function<void(const StreamEvent&)> on_event;
  std::shared_ptr<TokenConstraint> constraint = nullptr;  // null: unconstrained (pays nothing)
  bool record_routing = false;      // report the request's ExpertLoad with its final event
};

// The model as the engine sees it. The real one wraps model/Mixtral; tests use fakes.
class ModelRunner {
 public:
  virtual ~ModelRunner() = default;
  virtual int64_t vocab_size() const = 0;
  virtual int64_t max_context() const = 0;
  virtual int32_t eos_id() const = 0;
  virtual int64_t num_layers() const = 0;
  virtual int64_t num_experts() const = 0;
  // Executes one step; block tables index into a pool of `num_blocks` blocks of `block_size`.
  virtual void forward(const std::vector<SeqChunk>& chunks, ForwardOutput& out) = 0;
};

// Token id -> the bytes it stands for in text (SentencePiece "▁" -> ' ',
// byte-fallback pieces -> one raw byte, control tokens -> ""), for incremental
// detokenisation and stop strings.
class TokenText {
 public:
  virtual ~TokenText() = default;
  virtual std::string token_bytes(int32_t id) const = 0;
  // Whether a ' ' that token_bytes(id) starts with is SentencePiece's "▁"
  // word marker, which decoding drops while no text precedes the token. The
  // <unk> surface (" ⁇ ") and byte pieces (<0x20>) keep theirs.
  virtual bool leading_space_is_marker(int32_t id) const { return true; }
};

struct EngineOptions {
  int32_t block_size = 16;
  int32_t num_blocks = 0;           // KV pool size in blocks (from --kv-cache-mb)
  int32_t max_batch = 64;           // max running sequences
  int32_t max_step_tokens = 512;    // token budget per step (prefill chunking)
  int32_t max_queue = 1024;         // waiting requests beyond this are refused
  bool prefix_caching = true;
};

enum class SubmitStatus { Ok, QueueFull, TooLong, Invalid, ShuttingDown };

struct SubmitResult {
  SubmitStatus status = SubmitStatus::Ok;
  uint64_t id = 0;
  std::string message;
};

struct EngineStats {
  int64_t running = 0, waiting = 0;
  int64_t kv_blocks_total = 0, kv_blocks_used = 0;
  int64_t prefix_queries = 0, prefix_hits = 0;   // in tokens
  int64_t preemptions = 0;
  int64_t prompt_tokens = 0, generation_tokens = 0;
  int64_t steps = 0;
  std::vector<int64_t> expert_tokens;           // [layer * n_experts + e], cumulative
};

class Engine {
 public:
  Engine(ModelRunner& runner, const TokenText& text, EngineOptions opts);
  ~Engine();
  Engine(const Engine&) = delete;
  Engine& operator=(const Engine&) = delete;

  void start();                  // launches the engine thread
  void stop();                   // cancels everything, joins the thread
  SubmitResult submit(Request r);
  void cancel(uint64_t id);      // safe for unknown/finished ids
  EngineStats stats() const;

  // Runs requests to completion on the calling thread (no engine thread): for
  // the CLI and tests. Each request's events arrive through its callback.
  void run_to_completion(std::vector<Request> requests);

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

}  // namespace ms
