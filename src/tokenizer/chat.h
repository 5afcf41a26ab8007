// chat.h — chat prompts in the Mixtral-Instruct (Mistral v1) format, exactly as
// mistral-common tokenizes them:
//   BOS; user turn -> encode("[INST] " + content + " [/INST]");
//   assistant turn -> encode(content) + EOS;
// system messages (joined by "\n\n") go, followed by "\n\n", in front of the
// first user turn's content. Consecutive messages of one role are joined with
// "\n\n". After that the conversation must start with a user turn and
// alternate user/assistant; anything else is Error(BadInput).
#pragma once
#include <cstdint>
#include <string>
#include <vector>

#include "tokenizer/tokenizer.h"

namespace ms {

struct ChatToolCall {
  std::string id;         // 9 alphanumerics
  std::string name;
  std::string arguments;  // JSON text
};

struct ChatMessage {
  std::string role;     // "system" | "user" | "assistant" | "tool"
  std::string content;
  std::vector<ChatToolCall> tool_calls = {};  // assistant
  std::string tool_call_id = {};         // tool
};

std::vector<int32_t> encode_chat(const Tokenizer& tok, const std::vector<ChatMessage>& messages);

// Tool calling (docs/STRUCTURED.md). The markers [AVAILABLE_TOOLS],
// [/AVAILABLE_TOOLS], [TOOL_CALLS], [TOOL_RESULTS], [/TOOL_RESULTS] are
// mistral-common's: control tokens when the vocabulary has them (v2+
// tokenizers) around encode(JSON), else one text span "MARKER JSON[/MARKER]"
// (v1, e.g. Mixtral-8x7B-Instruct). Layout:
//   BOS [INST] user [/INST] assistant EOS ...
//   assistant with calls -> [TOOL_CALLS] [{"name":..,"arguments":{..},"id":".."}] EOS
//   tool results (after the calls) -> [TOOL_RESULTS] {"call_id":"..","content":".."}[/TOOL_RESULTS]
//   [AVAILABLE_TOOLS] <tools JSON>[/AVAILABLE_TOOLS] just before the last user turn.
// `tools_json` is the JSON array of tool definitions ("" = none);
// `calls_json(i)` renders message i's tool calls; `result_json(i)` a tool message.
struct ChatToolsFormat {
  std::string tools_json;
  std::vector<std::string> calls_json;   // per message index ("" if none)
  std::vector<std::string> result_json;  // per message index ("" if not a tool message)
};
std::vector<int32_t> encode_chat_tools(const Tokenizer& tok, const std::vector<ChatMessage>& messages,
                                       const ChatToolsFormat& fmt);
// The id of a control token spelled `piece`, or -1 (v1 vocabularies).
int32_t control_token(const Tokenizer& tok, const std::string& piece);

}  // namespace ms
