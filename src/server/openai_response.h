// openai_response.h — the OpenAI wire format, response side.
//
// ResponseBuilder turns the engine's per-token StreamEvents of one API
// request (n choices, possibly several prompts) into either SSE chunks
// (chat.completion.chunk / text_completion, then an optional usage chunk and
// "data: [DONE]") or one final JSON body. Both come out of the same state, so
// a streamed response always adds up to the non-streamed one. Pure: no
// sockets, no engine; token ids become text through a callback.
//
// Choice index for completions with several prompts: prompt_index * n + j.
#pragma once
#include <cstdint>
#include <functional>
#include <string>
#include <string_view>
#include <vector>

#include <nlohmann/json.hpp>

#include "engine/request.h"
#include "server/openai_schema.h"

namespace ms {

// Compact JSON; invalid UTF-8 (a lone byte-fallback token) becomes U+FFFD.
std::string dump_json(const nlohmann::json& j);
nlohmann::json error_json(const ApiError& e);
// "chatcmpl-" / "cmpl-" + 24 random hex digits.
std::string new_request_id(std::string_view prefix);
nlohmann::json usage_json(int64_t prompt_tokens, int64_t completion_tokens, int64_t cached_tokens);
nlohmann::json model_json(const std::string& name, int64_t created, int64_t max_model_len);
const char* finish_reason_string(FinishReason r);  // "stop" | "length" | ...

struct ResponseMeta {
  std::string id;
  int64_t created = 0;
  std::string model;
};

using TokenBytesFn = std::function<std::string(int32_t)>;

class ResponseBuilder {
 public:
  // prompt_lens: token count of each prompt (completions) or of the chat prompt.
  ResponseBuilder(const GenerationSpec& spec, ResponseMeta meta, std::vector<int64_t> prompt_lens,
                  TokenBytesFn token_bytes);

  size_t num_choices() const { return choices_.size(); }
  // Stream start: chat sends the assistant role first, one chunk per choice.
  std::string stream_start() const;
  // One engine event for a choice; returns the SSE text to send now (stream), else "".
  std::string on_event(size_t choice, const StreamEvent& ev);
  bool done() const { return finished_ == choices_.size(); }
  // A choice ended with an engine error or was cancelled.
  bool failed() const { return failed_; }
  const std::string& failure() const { return failure_; }
  // Stream end: usage chunk (stream_options.include_usage) and "data: [DONE]".
  std::string stream_end() const;
  // An error event for a stream that cannot finish, then "data: [DONE]".
  static std::string stream_error(const ApiError& e);
  // The non-streamed body.
  nlohmann::json response() const;

  int64_t prompt_tokens() const;
  int64_t completion_tokens() const;
  int64_t cached_tokens() const;

 private:
  struct TokenEntry {
    int32_t token;
    float logprob;
    std::vector<TokenLogprob> top;
    size_t text_offset;
  };
  struct Choice {
    std::string text;
    FinishReason finish = FinishReason::None;
    int64_t completion_tokens = 0;
    int64_t cached_tokens = 0;
    std::vector<TokenEntry> logprobs;
  };

  std::string token_string(int32_t id) const;
  nlohmann::json chat_logprob_entry(const TokenEntry& t) const;
  nlohmann::json chat_logprobs(const std::vector<TokenEntry>& entries) const;
  nlohmann::json completion_logprobs(const std::vector<TokenEntry>& entries) const;
  nlohmann::json chunk_base() const;
  std::string sse(const nlohmann::json& j) const;

  bool chat_;
  bool stream_;
  bool include_usage_;
  bool want_logprobs_;
  bool token_ids_;
  int n_;
  ResponseMeta meta_;
  std::vector<int64_t> prompt_lens_;
  TokenBytesFn token_bytes_;
  std::vector<Choice> choices_;
  size_t finished_ = 0;
  bool failed_ = false;
  std::string failure_;
};

}  // namespace ms
