// request.h — what a caller of the engine hands in and gets back: sampling
// parameters, the request, and the stream of events it produces. Shared by
// the engine, the server and the CLI; engine.h is the engine itself.
#pragma once
#include <cstdint>
#include <functional>
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
};

struct Request {
  std::vector<int32_t> prompt;
  SamplingParams sampling;
  std::function<void(const StreamEvent&)> on_event;
};

}  // namespace ms
