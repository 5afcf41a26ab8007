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
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include <nlohmann/json.hpp>

#include "engine/request.h"
#include "server/openai_schema.h"
#include "server/structured_request.h"

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
  // The [TOOL_CALLS] control token of the vocabulary (-1: v1, text marker).
  void set_tool_calls_token(int32_t id) { tool_calls_token_ = id; }
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
  // Tool calls (chat with tools): Off (no tools), Pending (auto: text held
  // while it may still become the [TOOL_CALLS] marker), Calls (buffered,
  // parsed at the end), Text (plain content).
  enum class ToolState { Off, Pending, Calls, Text };
  struct Choice {
    std::string text;
    ToolState tool = ToolState::Off;
    size_t streamed = 0;          // bytes of `text` sent as content deltas
    bool marker_token = false;    // the [TOOL_CALLS] control token came
    std::vector<ToolCallOut> calls;
    FinishReason finish = FinishReason::None;
    int64_t completion_tokens = 0;
    int64_t cached_tokens = 0;
    std::vector<TokenEntry> logprobs;
    std::shared_ptr<const ExpertLoad> expert_load;  // when asked (return_expert_load)
  };
  nlohmann::json expert_load() const;

  std::string token_string(int32_t id) const;
  nlohmann::json chat_logprob_entry(const TokenEntry& t) const;
  nlohmann::json chat_logprobs(const std::vector<TokenEntry>& entries) const;
  nlohmann::json completion_logprobs(const std::vector<TokenEntry>& entries) const;
  nlohmann::json chunk_base() const;
  std::string sse(const nlohmann::json& j) const;
  std::string content_delta(size_t idx, const std::string& text, const TokenEntry* entry) const;
  // Content to stream for this event under the tool-call rules (may be "").
  std::string tool_filter(Choice& ch, const StreamEvent& ev);
  nlohmann::json tool_calls_json(const std::vector<ToolCallOut>& calls, bool with_index) const;

  bool chat_;
  bool stream_;
  bool include_usage_;
  bool want_logprobs_;
  bool token_ids_;
  bool want_expert_load_;
  int n_;
  ResponseMeta meta_;
  std::vector<int64_t> prompt_lens_;
  TokenBytesFn token_bytes_;
  std::vector<ToolDef> tools_;
  bool tools_forced_ = false;
  int32_t tool_calls_token_ = -1;
  std::vector<Choice> choices_;
  size_t finished_ = 0;
  bool failed_ = false;
  std::string failure_;
};

}  // namespace ms
