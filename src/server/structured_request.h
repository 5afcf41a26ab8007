// structured_request.h — structured outputs and tool calling at the API edge.
//
// Parsing: response_format ({"type": "text" | "json_object" | "json_schema"}),
// vLLM's structured_outputs ({"choice" | "regex" | "json" | "grammar"}),
// tools / tool_choice / parallel_tool_calls -> GenerationSpec::structured.
// Constraints: StructuredRuntime (one per server) compiles the grammar a
// request needs once per distinct text (bounded LRU, --grammar-cache) over the
// tokenizer's vocabulary and hands each engine request its own
// TokenConstraint. Tool calls: prompts in mistral-common's layout
// (tokenizer/chat.h) and the model's "[TOOL_CALLS] [...]" output parsed back
// into OpenAI tool_calls with 9-alphanumeric ids. See docs/STRUCTURED.md.
#pragma once
#include <functional>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include <nlohmann/json_fwd.hpp>

#include "engine/engine.h"
#include "server/openai_schema.h"

namespace ms {

namespace structured {
class CompiledGrammar;
class GrammarCache;
class GrammarBuilder;
class Vocabulary;
}  // namespace structured

class Tokenizer;

// Fills spec.structured from the body (400 ApiException on a bad field).
void parse_structured_fields(const nlohmann::json& body, GenerationSpec& spec);
// Schemas keep the key order of the request text (properties are generated
// in that order): re-reads them from the raw body.
void restore_schema_order(std::string_view raw_body, GenerationSpec& spec);
// tool_calls / tool_call_id of one message (role assistant / tool).
void parse_message_tool_fields(const nlohmann::json& msg, const std::string& param, ChatMessage& out);

// The chat prompt, with tools and tool messages when the request has them.
std::vector<int32_t> encode_chat_request(const Tokenizer& tok, const GenerationSpec& spec);

class StructuredRuntime {
 public:
  StructuredRuntime(const Tokenizer& tok, size_t grammar_cache, size_t mask_cache);
  ~StructuredRuntime();

  // The constraint factory for a request (null when it is unconstrained);
  // compile errors are a 400 naming the field. Each call of the returned
  // function makes a fresh per-sequence constraint.
  std::function<std::shared_ptr<TokenConstraint>()> constraint_for(const GenerationSpec& spec);
  int32_t tool_calls_token() const { return tool_calls_token_; }  // -1: v1 text markers
  size_t cached_grammars() const;  // compiled grammars in the cache

 private:
  std::shared_ptr<const structured::CompiledGrammar> compile(const std::string& key,
                                                              const std::function<int32_t(structured::GrammarBuilder&)>& build,
                                                              const std::string& param);

  std::shared_ptr<const structured::Vocabulary> vocab_;
  std::unique_ptr<structured::GrammarCache> cache_;
  size_t mask_cache_;
  int32_t tool_calls_token_ = -1;
};

// A parsed tool call of the model's output.
struct ToolCallOut {
  std::string id;
  std::string name;
  std::string arguments;  // JSON text
};
// "[TOOL_CALLS] [{"name":..,"arguments":{..}}, ...]" (the marker optional
// when `marker_seen`) -> calls; nullopt if the text is not such a list of
// calls to known tools.
std::optional<std::vector<ToolCallOut>> parse_tool_calls(std::string_view text, bool marker_seen,
                                                         const std::vector<ToolDef>& tools);
// 9 random alphanumerics (what Mistral models expect as call ids).
std::string new_tool_call_id();
inline constexpr const char* kToolCallsMarker = "[TOOL_CALLS]";

}  // namespace ms
