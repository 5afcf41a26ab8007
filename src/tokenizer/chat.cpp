#include "tokenizer/chat.h"

#include "core/error.h"

namespace ms {

std::vector<int32_t> encode_chat(const Tokenizer& tok, const std::vector<ChatMessage>& messages) {
  // 1. Fold system messages (joined by "\n\n") into the first user turn.
  std::string system;
  std::vector<ChatMessage> turns;
  for (const ChatMessage& m : messages) {
    if (m.role == "system") {
      system += (system.empty() ? "" : "\n\n") + m.content;
    } else if (m.role == "user" || m.role == "assistant") {
      // 2. Consecutive messages of one role are joined with "\n\n".
      if (!turns.empty() && turns.back().role == m.role)
        turns.back().content += "\n\n" + m.content;
      else
        turns.push_back(m);
    } else {
      bad_input("unknown chat role '" + m.role + "' (expected system, user or assistant)");
    }
  }
  if (turns.empty()) bad_input("the conversation has no user message");
  // 3. It must start with a user turn and alternate.
  for (size_t i = 0; i < turns.size(); ++i) {
    const char* want = (i % 2 == 0) ? "user" : "assistant";
    if (turns[i].role != want)
      bad_input("conversation roles must alternate user/assistant starting with user (message " +
                std::to_string(i) + " is '" + turns[i].role + "')");
  }
  if (!system.empty()) turns[0].content = system + "\n\n" + turns[0].content;

  std::vector<int32_t> ids{tok.bos_id()};
  for (const ChatMessage& t : turns) {
    std::vector<int32_t> part;
    if (t.role == "user") {
      part = tok.encode("[INST] " + t.content + " [/INST]");
    } else {
      part = tok.encode(t.content);
      part.push_back(tok.eos_id());
    }
    ids.insert(ids.end(), part.begin(), part.end());
  }
  return ids;
}

}  // namespace ms
