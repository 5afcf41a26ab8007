// openai_schema.h — the OpenAI wire format, request side: JSON bodies ->
// native request structs, with every validation rule of the API.
//
// Pure functions, no sockets and no tokenizer: a parser either returns a
// fully validated spec or throws ApiException carrying the HTTP status and
// the OpenAI error object ({"message", "type", "param", "code"}). What needs
// the tokenizer (prompt length vs context) is checked later through
// resolve_max_tokens(), which is pure too.
//
// Conventions: a field that is absent or null means "not given"; integers may
// be written as integral floats (5.0); unknown fields are ignored, as the
// official SDKs send only what the caller set.
#pragma once
#include <cstdint>
#include <exception>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include <nlohmann/json_fwd.hpp>

#include "engine/request.h"
#include "server/structured_spec.h"
#include "tokenizer/chat.h"

namespace ms {

struct ApiError {
  int status = 400;
  std::string message;
  std::string type = "invalid_request_error";
  std::string param;  // empty -> null
  std::string code;   // empty -> null
};

class ApiException : public std::exception {
 public:
  explicit ApiException(ApiError e) : err_(std::move(e)) {}
  ApiException(int status, std::string message, std::string param = "", std::string code = "",
               std::string type = "");
  const char* what() const noexcept override { return err_.message.c_str(); }
  const ApiError& error() const { return err_; }

 private:
  ApiError err_;
};

// The error type OpenAI uses for a status ("invalid_request_error", ...).
const char* error_type_for_status(int status);

// What the validation needs to know about the served model.
struct ModelLimits {
  int64_t vocab_size = 32000;
  int64_t max_context = 4096;
};

// Limits of the API itself.
inline constexpr int kMaxN = 128;               // choices per prompt
inline constexpr int kMaxStopStrings = 16;
inline constexpr int kMaxTopLogprobsChat = 20;  // chat: top_logprobs
inline constexpr int kMaxLogprobsCompletion = 20;
inline constexpr int kMaxPrompts = 256;         // completions: prompts per request
inline constexpr int kMaxJsonDepth = 64;

// One completions prompt: text (BOS + encode(text)) or token ids as given.
struct PromptInput {
  bool is_text = true;
  std::string text;
  std::vector<int32_t> tokens;
};

struct GenerationSpec {
  bool chat = false;
  std::string model;                      // as requested; empty if absent
  std::vector<ChatMessage> messages;      // chat
  std::vector<PromptInput> prompts;       // completions: one or more
  int n = 1;
  std::optional<int32_t> max_tokens;      // absent: resolve_max_tokens() decides
  SamplingParams sampling;                // max_tokens filled by resolve_max_tokens()
  bool stream = false;
  bool include_usage = false;
  bool want_logprobs = false;             // chat: logprobs; completions: logprobs given
  int top_logprobs = 0;
  bool return_tokens_as_token_ids = false;  // logprob tokens as "token_id:N" (vLLM)
  bool return_expert_load = false;        // moeserve: per-layer, per-expert token counts (docs/SERVING.md)
  std::string user;
  StructuredSpec structured;              // response_format, structured_outputs, tools

  // Engine requests this spec turns into.
  size_t num_choices() const { return (chat ? 1 : prompts.size()) * static_cast<size_t>(n); }
};

// Parses an HTTP body as a JSON object. Invalid JSON, invalid UTF-8, nesting
// deeper than kMaxJsonDepth or a non-object -> ApiException 400.
nlohmann::json parse_json_body(std::string_view body);

GenerationSpec parse_chat_request(const nlohmann::json& body, const ModelLimits& lim);
GenerationSpec parse_completion_request(const nlohmann::json& body, const ModelLimits& lim);

// The max_tokens a request runs with once its prompt length is known: the one
// asked for, or (absent) 16 for completions and the rest of the context for
// chat. A prompt that leaves no room, or prompt + max_tokens beyond the
// context, is a 400.
int32_t resolve_max_tokens(const GenerationSpec& spec, size_t prompt_len, const ModelLimits& lim);

// 404 unless `requested` is empty or the served name.
void check_model(const std::string& requested, const std::string& served);

// POST /tokenize: {"prompt": "..."} or {"messages": [...]} (+ "add_special_tokens").
struct TokenizeSpec {
  bool chat = false;
  std::vector<ChatMessage> messages;
  std::string prompt;
  bool add_special_tokens = true;
  std::string model;
};
TokenizeSpec parse_tokenize_request(const nlohmann::json& body);

// POST /detokenize: {"tokens": [...]} -> the ids (each in [0, vocab)).
std::vector<int32_t> parse_detokenize_request(const nlohmann::json& body, const ModelLimits& lim,
                                              std::string* model = nullptr);

// Chat messages as OpenAI sends them (content: string, or array of text parts).
std::vector<ChatMessage> parse_messages(const nlohmann::json& value);

}  // namespace ms
