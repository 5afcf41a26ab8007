// structured_spec.h — what a request asks of structured outputs and tool
// calling, as parsed from the OpenAI/vLLM fields (structured_request.h).
#pragma once
#include <string>
#include <vector>

namespace ms {

struct ToolDef {
  std::string name;
  std::string description;
  std::string parameters;  // JSON Schema text; "" = none given (any object)
};

struct StructuredSpec {
  // response_format / structured_outputs: at most one of these.
  enum class Kind { None, JsonObject, JsonSchema, Regex, Choice, Grammar };
  Kind kind = Kind::None;
  std::string text;                  // schema JSON text, regex or grammar
  std::vector<std::string> choices;  // Kind::Choice
  std::string param;                 // the request field it came from, for errors
  // tools / tool_choice / parallel_tool_calls
  std::vector<ToolDef> tools;
  enum class ToolChoice { Auto, None, Required, Named };
  ToolChoice tool_choice = ToolChoice::Auto;
  std::string tool_name;             // ToolChoice::Named
  bool parallel_tool_calls = true;

  bool tools_active() const { return !tools.empty() && tool_choice != ToolChoice::None; }
  // The output must be a tool call (arguments constrained to the schema).
  bool forced_tool_call() const {
    return tools_active() && (tool_choice == ToolChoice::Required || tool_choice == ToolChoice::Named);
  }
  bool constrained() const { return kind != Kind::None || forced_tool_call(); }
};

}  // namespace ms
