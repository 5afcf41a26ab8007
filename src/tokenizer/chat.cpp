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

namespace ms {

int32_t control_token(const Tokenizer& tok, const std::string& piece) {
  for (int32_t i = 0; i < tok.vocab_size(); ++i)
    if (tok.is_control(i) && tok.piece(i) == piece) return i;
  return -1;
}

std::vector<int32_t> encode_chat_tools(const Tokenizer& tok, const std::vector<ChatMessage>& messages,
                                       const ChatToolsFormat& fmt) {
  struct Turn {
    std::string role;
    std::string content;
    std::vector<size_t> msgs;  // message indices (tool calls / results)
  };
  std::string system;
  std::vector<Turn> turns;
  for (size_t i = 0; i < messages.size(); ++i) {
    const ChatMessage& m = messages[i];
    if (m.role == "system") {
      system += (system.empty() ? "" : "\n\n") + m.content;
      continue;
    }
    if (m.role != "user" && m.role != "assistant" && m.role != "tool")
      bad_input("unknown chat role '" + m.role + "' (expected system, user, assistant or tool)");
    const bool calls = m.role == "assistant" && !m.tool_calls.empty();
    const std::string role = calls ? "assistant-calls" : m.role;
    if (!turns.empty() && turns.back().role == role && role != "assistant-calls") {
      if (role != "tool") turns.back().content += "\n\n" + m.content;
      turns.back().msgs.push_back(i);
    } else {
      turns.push_back({role, m.content, {i}});
    }
  }
  if (turns.empty() || turns[0].role != "user")
    bad_input("the conversation must start with a user message (after any system messages)");
  // Which turn may follow which.
  for (size_t i = 1; i < turns.size(); ++i) {
    const std::string& a = turns[i - 1].role;
    const std::string& b = turns[i].role;
    bool ok = (a == "user" && (b == "assistant" || b == "assistant-calls")) ||
              (a == "assistant" && b == "user") || (a == "assistant-calls" && b == "tool") ||
              (a == "tool" && (b == "assistant" || b == "assistant-calls" || b == "user"));
    if (!ok)
      bad_input("message order: a '" + (b == "assistant-calls" ? std::string("assistant") : b) + "' message cannot follow a '" +
                (a == "assistant-calls" ? std::string("assistant") : a) +
                "' message (user and assistant alternate; tool results follow the assistant's tool_calls)");
  }
  if (!system.empty()) turns[0].content = system + "\n\n" + turns[0].content;
  size_t last_user = 0;
  for (size_t i = 0; i < turns.size(); ++i)
    if (turns[i].role == "user") last_user = i;

  std::vector<int32_t> ids{tok.bos_id()};
  auto put = [&](const std::vector<int32_t>& v) { ids.insert(ids.end(), v.begin(), v.end()); };
  // open + body (+ close): control tokens around encode(body), or one text span.
  auto segment = [&](const char* open, const std::string& body, const char* close) {
    const int32_t o = control_token(tok, open);
    const int32_t c = close ? control_token(tok, close) : -1;
    if (o >= 0 && (!close || c >= 0)) {
      ids.push_back(o);
      put(tok.encode(body));
      if (close) ids.push_back(c);
    } else {
      put(tok.encode(std::string(open) + " " + body + (close ? close : "")));
    }
  };
  for (size_t t = 0; t < turns.size(); ++t) {
    const Turn& turn = turns[t];
    if (turn.role == "user") {
      if (t == last_user && !fmt.tools_json.empty()) segment("[AVAILABLE_TOOLS]", fmt.tools_json, "[/AVAILABLE_TOOLS]");
      put(tok.encode("[INST] " + turn.content + " [/INST]"));
    } else if (turn.role == "assistant") {
      put(tok.encode(turn.content));
      ids.push_back(tok.eos_id());
    } else if (turn.role == "assistant-calls") {
      const size_t i = turn.msgs[0];
      if (!turn.content.empty()) put(tok.encode(turn.content));
      segment("[TOOL_CALLS]", i < fmt.calls_json.size() ? fmt.calls_json[i] : std::string("[]"), nullptr);
      ids.push_back(tok.eos_id());
    } else {  // tool results
      for (size_t i : turn.msgs)
        segment("[TOOL_RESULTS]", i < fmt.result_json.size() ? fmt.result_json[i] : std::string("{}"), "[/TOOL_RESULTS]");
    }
  }
  return ids;
}

}  // namespace ms
