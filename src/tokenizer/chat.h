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

struct ChatMessage {
  std::string role;     // "system" | "user" | "assistant"
  std::string content;
};

std::vector<int32_t> encode_chat(const Tokenizer& tok, const std::vector<ChatMessage>& messages);

}  // namespace ms
