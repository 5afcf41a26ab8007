// Response bodies and SSE chunks: shapes the OpenAI SDKs expect, and a
// streamed response adding up to the non-streamed one for the same events.
#include "server/openai_response.h"

#include <gtest/gtest.h>

#include <nlohmann/json.hpp>

namespace ms {
namespace {

using json = nlohmann::json;

// Token id -> text: id 100+c is the character c; 5 is a lone UTF-8 lead byte.
std::string fake_bytes(int32_t id) {
  if (id == 5) return std::string("\xe2");
  if (id >= 100 && id < 228) return std::string(1, static_cast<char>(id - 100));
  return "<" + std::to_string(id) + ">";
}

StreamEvent tok(int32_t id, std::string text, float lp = -0.5f) {
  StreamEvent e;
  e.token = id;
  e.text = std::move(text);
  e.logprob = lp;
  e.top_logprobs = {{id, lp}, {id + 1, lp - 1.0f}};
  return e;
}

StreamEvent fin(FinishReason r, int32_t completion, int32_t id = -1, std::string text = "") {
  StreamEvent e;
  e.token = id;
  e.text = std::move(text);
  e.finish = r;
  e.completion_tokens = completion;
  e.prompt_tokens = 4;
  e.cached_tokens = 2;
  if (id >= 0) e.top_logprobs = {{id, -0.1f}};
  e.logprob = -0.1f;
  return e;
}

GenerationSpec chat_spec(int n, bool stream) {
  GenerationSpec s;
  s.chat = true;
  s.n = n;
  s.stream = stream;
  s.messages = {{"user", "hi"}};
  return s;
}

ResponseMeta meta() { return {"chatcmpl-abc", 1700000000, "tiny"}; }

// Splits SSE text into the JSON payloads; "[DONE]" comes back as a string.
std::vector<json> parse_sse(const std::string& s) {
  std::vector<json> out;
  size_t pos = 0;
  while (pos < s.size()) {
    size_t end = s.find("\n\n", pos);
    EXPECT_NE(end, std::string::npos) << "unterminated event";
    if (end == std::string::npos) break;
    std::string ev = s.substr(pos, end - pos);
    EXPECT_EQ(ev.rfind("data: ", 0), 0u) << ev;
    std::string data = ev.substr(6);
    out.push_back(data == "[DONE]" ? json("[DONE]") : json::parse(data));
    pos = end + 2;
  }
  return out;
}

// The events of two choices, interleaved.
std::vector<std::pair<size_t, StreamEvent>> two_choice_events() {
  return {{0, tok(172, "H")}, {1, tok(166, "B")}, {0, tok(5, "")},      // 'H', then an incomplete char
          {1, tok(177, "M")}, {0, tok(6, "\xe2\x82\xac")},              // completes "€"
          {0, fin(FinishReason::Stop, 3)}, {1, fin(FinishReason::Length, 3, 132, " ")}};
}

TEST(ResponseBuilder, ChatNonStream) {
  ResponseBuilder b(chat_spec(2, false), meta(), {4}, fake_bytes);
  EXPECT_EQ(b.stream_start(), "");
  for (auto& [c, ev] : two_choice_events()) EXPECT_EQ(b.on_event(c, ev), "");
  ASSERT_TRUE(b.done());
  EXPECT_FALSE(b.failed());
  json r = json::parse(dump_json(b.response()));
  EXPECT_EQ(r["id"], "chatcmpl-abc");
  EXPECT_EQ(r["object"], "chat.completion");
  EXPECT_EQ(r["created"], 1700000000);
  EXPECT_EQ(r["model"], "tiny");
  ASSERT_EQ(r["choices"].size(), 2u);
  EXPECT_EQ(r["choices"][0]["index"], 0);
  EXPECT_EQ(r["choices"][0]["message"]["role"], "assistant");
  EXPECT_EQ(r["choices"][0]["message"]["content"], "H\xe2\x82\xac");
  EXPECT_EQ(r["choices"][0]["finish_reason"], "stop");
  EXPECT_TRUE(r["choices"][0]["logprobs"].is_null());
  EXPECT_EQ(r["choices"][1]["message"]["content"], "BM ");
  EXPECT_EQ(r["choices"][1]["finish_reason"], "length");
  EXPECT_EQ(r["usage"]["prompt_tokens"], 4);
  EXPECT_EQ(r["usage"]["completion_tokens"], 6);
  EXPECT_EQ(r["usage"]["total_tokens"], 10);
  EXPECT_EQ(r["usage"]["prompt_tokens_details"]["cached_tokens"], 2);
}

TEST(ResponseBuilder, ChatStreamAddsUpToNonStream) {
  GenerationSpec spec = chat_spec(2, true);
  spec.include_usage = true;
  ResponseBuilder st(spec, meta(), {4}, fake_bytes);
  ResponseBuilder whole(chat_spec(2, false), meta(), {4}, fake_bytes);
  std::string sse = st.stream_start();
  for (auto& [c, ev] : two_choice_events()) {
    sse += st.on_event(c, ev);
    whole.on_event(c, ev);
  }
  ASSERT_TRUE(st.done());
  sse += st.stream_end();
  std::vector<json> chunks = parse_sse(sse);
  ASSERT_GE(chunks.size(), 4u);
  EXPECT_EQ(chunks.back(), "[DONE]");

  std::string text[2];
  std::string finish[2];
  bool role_seen[2] = {false, false};
  json usage;
  for (size_t i = 0; i + 1 < chunks.size(); ++i) {
    const json& c = chunks[i];
    EXPECT_EQ(c["object"], "chat.completion.chunk");
    EXPECT_EQ(c["id"], "chatcmpl-abc");
    EXPECT_TRUE(c.contains("usage"));  // null except in the last chunk
    if (c["choices"].empty()) {
      usage = c["usage"];
      EXPECT_EQ(i + 2, chunks.size()) << "usage chunk must be last before [DONE]";
      continue;
    }
    ASSERT_EQ(c["choices"].size(), 1u);
    const json& ch = c["choices"][0];
    size_t idx = ch["index"];
    ASSERT_LT(idx, 2u);
    if (ch["delta"].contains("role")) {
      EXPECT_FALSE(role_seen[idx]);
      EXPECT_TRUE(text[idx].empty()) << "role must come first";
      EXPECT_EQ(ch["delta"]["role"], "assistant");
      role_seen[idx] = true;
    }
    EXPECT_TRUE(role_seen[idx]);
    EXPECT_TRUE(finish[idx].empty()) << "nothing after finish_reason";
    if (ch["delta"].contains("content")) text[idx] += ch["delta"]["content"].get<std::string>();
    if (!ch["finish_reason"].is_null()) finish[idx] = ch["finish_reason"];
  }
  json r = whole.response();
  EXPECT_EQ(text[0], r["choices"][0]["message"]["content"]);
  EXPECT_EQ(text[1], r["choices"][1]["message"]["content"]);
  EXPECT_EQ(finish[0], "stop");
  EXPECT_EQ(finish[1], "length");
  EXPECT_EQ(usage, r["usage"]);
}

TEST(ResponseBuilder, StreamWithoutUsageHasNoUsageField) {
  ResponseBuilder st(chat_spec(1, true), meta(), {4}, fake_bytes);
  std::string sse = st.stream_start();
  sse += st.on_event(0, tok(172, "H"));
  sse += st.on_event(0, fin(FinishReason::Stop, 1));
  sse += st.stream_end();
  auto chunks = parse_sse(sse);
  ASSERT_EQ(chunks.size(), 4u);  // role, content, finish, [DONE]
  for (size_t i = 0; i < 3; ++i) EXPECT_FALSE(chunks[i].contains("usage"));
  EXPECT_EQ(chunks[1]["choices"][0]["delta"]["content"], "H");
  EXPECT_TRUE(chunks[2]["choices"][0]["delta"].empty());
}

TEST(ResponseBuilder, ChatLogprobs) {
  GenerationSpec spec = chat_spec(1, false);
  spec.want_logprobs = true;
  spec.top_logprobs = 2;
  ResponseBuilder b(spec, meta(), {4}, fake_bytes);
  b.on_event(0, tok(172, "H", -0.25f));
  b.on_event(0, tok(5, "", -1.5f));
  b.on_event(0, fin(FinishReason::Length, 3, 6, "x"));
  std::string body = dump_json(b.response());  // must not throw on the lone byte
  json r = json::parse(body);
  const json& content = r["choices"][0]["logprobs"]["content"];
  ASSERT_EQ(content.size(), 3u);
  EXPECT_EQ(content[0]["token"], "H");
  EXPECT_FLOAT_EQ(content[0]["logprob"].get<float>(), -0.25f);
  EXPECT_EQ(content[0]["bytes"], json::array({72}));
  ASSERT_EQ(content[0]["top_logprobs"].size(), 2u);
  EXPECT_EQ(content[0]["top_logprobs"][1]["token"], "I");
  EXPECT_FLOAT_EQ(content[0]["top_logprobs"][1]["logprob"].get<float>(), -1.25f);
  EXPECT_EQ(content[1]["token"], "\xef\xbf\xbd");  // U+FFFD for the lone byte
  EXPECT_EQ(content[1]["bytes"], json::array({0xe2}));
  EXPECT_EQ(content[2]["token"], "<6>");
}

TEST(ResponseBuilder, ChatStreamLogprobsPerChunk) {
  GenerationSpec spec = chat_spec(1, true);
  spec.want_logprobs = true;
  ResponseBuilder b(spec, meta(), {4}, fake_bytes);
  // A token with no text yet still gets a chunk, carrying its logprob.
  auto chunks = parse_sse(b.on_event(0, tok(5, "", -1.0f)));
  ASSERT_EQ(chunks.size(), 1u);
  EXPECT_EQ(chunks[0]["choices"][0]["delta"]["content"], "");
  EXPECT_EQ(chunks[0]["choices"][0]["logprobs"]["content"].size(), 1u);
}

TEST(ResponseBuilder, CompletionsWithLogprobsAndSeveralPrompts) {
  GenerationSpec spec;
  spec.chat = false;
  spec.n = 2;
  spec.prompts = {{true, "a", {}}, {false, "", {1, 2, 3}}};
  spec.want_logprobs = true;
  spec.top_logprobs = 1;
  ResponseBuilder b(spec, {"cmpl-x", 1, "tiny"}, {5, 3}, fake_bytes);
  ASSERT_EQ(b.num_choices(), 4u);
  for (size_t c = 0; c < 4; ++c) {
    b.on_event(c, tok(165, "A"));
    b.on_event(c, tok(166, "B"));
    b.on_event(c, fin(c == 3 ? FinishReason::Length : FinishReason::Stop, 2));
  }
  ASSERT_TRUE(b.done());
  json r = b.response();
  EXPECT_EQ(r["object"], "text_completion");
  ASSERT_EQ(r["choices"].size(), 4u);
  for (size_t c = 0; c < 4; ++c) {
    EXPECT_EQ(r["choices"][c]["index"], c);
    EXPECT_EQ(r["choices"][c]["text"], "AB");
  }
  EXPECT_EQ(r["choices"][3]["finish_reason"], "length");
  const json& lp = r["choices"][0]["logprobs"];
  EXPECT_EQ(lp["tokens"], json::array({"A", "B"}));
  EXPECT_EQ(lp["text_offset"], json::array({0, 1}));
  ASSERT_EQ(lp["token_logprobs"].size(), 2u);
  ASSERT_EQ(lp["top_logprobs"].size(), 2u);
  EXPECT_TRUE(lp["top_logprobs"][0].contains("A"));
  EXPECT_EQ(r["usage"]["prompt_tokens"], 8);  // each prompt once, not once per choice
  EXPECT_EQ(r["usage"]["completion_tokens"], 8);
}

TEST(ResponseBuilder, CompletionStreamChunks) {
  GenerationSpec spec;
  spec.chat = false;
  spec.stream = true;
  spec.prompts = {{true, "a", {}}};
  ResponseBuilder b(spec, {"cmpl-x", 1, "tiny"}, {5}, fake_bytes);
  EXPECT_EQ(b.stream_start(), "");
  std::string sse = b.on_event(0, tok(165, "A"));
  sse += b.on_event(0, fin(FinishReason::Stop, 1));
  sse += b.stream_end();
  auto chunks = parse_sse(sse);
  ASSERT_EQ(chunks.size(), 3u);
  EXPECT_EQ(chunks[0]["object"], "text_completion");
  EXPECT_EQ(chunks[0]["choices"][0]["text"], "A");
  EXPECT_TRUE(chunks[0]["choices"][0]["finish_reason"].is_null());
  EXPECT_EQ(chunks[1]["choices"][0]["finish_reason"], "stop");
  EXPECT_EQ(chunks[2], "[DONE]");
}

TEST(ResponseBuilder, TokensAsTokenIds) {
  GenerationSpec spec;
  spec.chat = false;
  spec.prompts = {{true, "a", {}}};
  spec.want_logprobs = true;
  spec.return_tokens_as_token_ids = true;
  ResponseBuilder b(spec, {"cmpl-x", 1, "tiny"}, {5}, fake_bytes);
  b.on_event(0, tok(165, "A"));
  b.on_event(0, fin(FinishReason::Length, 2, 166, "B"));
  json r = b.response();
  EXPECT_EQ(r["choices"][0]["logprobs"]["tokens"], json::array({"token_id:165", "token_id:166"}));
}

TEST(ResponseBuilder, ErrorsAndCancellation) {
  ResponseBuilder b(chat_spec(2, true), meta(), {4}, fake_bytes);
  b.on_event(0, tok(172, "H"));
  StreamEvent err = fin(FinishReason::Error, 1);
  err.error = "kv cache exhausted";
  EXPECT_EQ(b.on_event(0, err), "");  // no finish chunk for a failed choice
  EXPECT_TRUE(b.failed());
  EXPECT_EQ(b.failure(), "kv cache exhausted");
  EXPECT_FALSE(b.done());
  b.on_event(1, fin(FinishReason::Cancelled, 0));
  EXPECT_TRUE(b.done());
  // Events after the end of a choice are ignored.
  EXPECT_EQ(b.on_event(1, tok(172, "H")), "");

  auto chunks = parse_sse(ResponseBuilder::stream_error({500, "boom", "server_error", "", ""}));
  ASSERT_EQ(chunks.size(), 2u);
  EXPECT_EQ(chunks[0]["error"]["message"], "boom");
  EXPECT_EQ(chunks[0]["error"]["type"], "server_error");
  EXPECT_TRUE(chunks[0]["error"]["param"].is_null());
  EXPECT_EQ(chunks[1], "[DONE]");
}

TEST(Format, ErrorJsonAndIds) {
  json e = error_json({400, "bad", "invalid_request_error", "max_tokens", "invalid_value"});
  EXPECT_EQ(e["error"]["message"], "bad");
  EXPECT_EQ(e["error"]["type"], "invalid_request_error");
  EXPECT_EQ(e["error"]["param"], "max_tokens");
  EXPECT_EQ(e["error"]["code"], "invalid_value");
  e = error_json({404, "nf", "not_found_error", "", ""});
  EXPECT_TRUE(e["error"]["param"].is_null());
  EXPECT_TRUE(e["error"]["code"].is_null());

  std::string a = new_request_id("chatcmpl-"), b = new_request_id("chatcmpl-");
  EXPECT_EQ(a.rfind("chatcmpl-", 0), 0u);
  EXPECT_EQ(a.size(), 9u + 24u);
  EXPECT_NE(a, b);

  json m = model_json("tiny", 5, 4096);
  EXPECT_EQ(m["id"], "tiny");
  EXPECT_EQ(m["object"], "model");
  EXPECT_EQ(m["max_model_len"], 4096);
  EXPECT_EQ(dump_json(json(std::string("a\xff"))), "\"a\xef\xbf\xbd\"");
}

}  // namespace
}  // namespace ms
