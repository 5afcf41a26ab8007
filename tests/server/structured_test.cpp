// Structured outputs and tool calling at the API edge: request fields, the
// Mistral tool prompt (text markers on v1, control tokens when the vocabulary
// has them), forced tool-call constraints, output parsing, and tool-call
// responses streamed == non-streamed.
#include "server/structured_request.h"

#include <gtest/gtest.h>

#include <nlohmann/json.hpp>

#include "server/openai_response.h"
#include "tokenizer/chat.h"
#include "tokenizer/spm_proto.h"
#include "tokenizer/tokenizer.h"

namespace ms {
namespace {

using json = nlohmann::json;

std::string model_path() { return std::string(MOESERVE_SOURCE_DIR) + "/models/tiny-mixtral-kjv/tokenizer.model"; }

const Tokenizer& v1() {
  static auto t = Tokenizer::from_file(model_path());
  return *t;
}

// The bundled vocabulary with mistral-common's tool control tokens appended (as v3 tokenizers have them).
const Tokenizer& with_tool_tokens() {
  static auto t = [] {
    SpmModel m = read_spm_model(model_path());
    for (const char* p : {"[AVAILABLE_TOOLS]", "[/AVAILABLE_TOOLS]", "[TOOL_CALLS]", "[TOOL_RESULTS]", "[/TOOL_RESULTS]"}) {
      m.vocab.pieces.push_back(p);
      m.vocab.scores.push_back(0.0f);
      m.vocab.types.push_back(kSpmControl);
    }
    return Tokenizer::from_serialized_proto(build_spm_proto(m.vocab, "v3-like", m.options), "v3-like");
  }();
  return *t;
}

GenerationSpec chat(const json& body) {
  ModelLimits lim;
  return parse_chat_request(body, lim);
}

json tool_body() {
  return json{{"messages", json::array({{{"role", "user"}, {"content", "weather?"}}})},
              {"tools", json::array({{{"type", "function"},
                                      {"function", {{"name", "get_weather"},
                                                    {"parameters", {{"type", "object"},
                                                                    {"properties", {{"city", {{"type", "string"}, {"maxLength", 5}}}}},
                                                                    {"required", {"city"}},
                                                                    {"additionalProperties", false}}}}}}})}};
}

TEST(StructuredFields, ParsesEveryForm) {
  json b = tool_body();
  b["tool_choice"] = "required";
  GenerationSpec s = chat(b);
  EXPECT_TRUE(s.structured.forced_tool_call());
  EXPECT_EQ(s.structured.tools.size(), 1u);
  b["tool_choice"] = json{{"type", "function"}, {"function", {{"name", "get_weather"}}}};
  b["parallel_tool_calls"] = false;
  s = chat(b);
  EXPECT_EQ(s.structured.tool_choice, StructuredSpec::ToolChoice::Named);
  EXPECT_FALSE(s.structured.parallel_tool_calls);
  json m = {{"messages", json::array({{{"role", "user"}, {"content", "x"}}})}};
  m["response_format"] = {{"type", "json_schema"}, {"json_schema", {{"name", "a"}, {"schema", {{"type", "integer"}}}}}};
  EXPECT_EQ(chat(m).structured.kind, StructuredSpec::Kind::JsonSchema);
  m.erase("response_format");
  m["structured_outputs"] = {{"choice", {"a", "b"}}};
  EXPECT_EQ(chat(m).structured.choices, (std::vector<std::string>{"a", "b"}));
  m["structured_outputs"] = {{"json", "{\"type\":\"string\"}"}};  // a schema as a string (vLLM)
  EXPECT_EQ(chat(m).structured.text, "{\"type\":\"string\"}");
  m.erase("structured_outputs");
  m["guided_regex"] = "a+";
  EXPECT_EQ(chat(m).structured.kind, StructuredSpec::Kind::Regex);
}

TEST(StructuredFields, SchemaKeepsTheRequestKeyOrder) {
  const std::string raw = R"({"messages":[{"role":"user","content":"x"}],
      "response_format":{"type":"json_schema","json_schema":{"name":"a","schema":{"type":"object","properties":{"zeta":{"type":"integer"},"alpha":{"type":"integer"}}}}}})";
  GenerationSpec s = chat(parse_json_body(raw));
  restore_schema_order(raw, s);
  EXPECT_LT(s.structured.text.find("zeta"), s.structured.text.find("alpha"));
}

TEST(ToolPrompt, V1UsesTextMarkers) {
  json b = tool_body();
  b["messages"] = json::array({{{"role", "user"}, {"content", "weather?"}},
                               {{"role", "assistant"},
                                {"content", nullptr},
                                {"tool_calls", json::array({{{"id", "abcDEF123"},
                                                             {"type", "function"},
                                                             {"function", {{"name", "get_weather"}, {"arguments", "{\"city\":\"Rome\"}"}}}}})}},
                               {{"role", "tool"}, {"tool_call_id", "abcDEF123"}, {"content", "sunny"}},
                               {{"role", "user"}, {"content", "and tomorrow?"}}});
  GenerationSpec s = chat(b);
  const std::string text = v1().decode(encode_chat_request(v1(), s));
  EXPECT_NE(text.find("[TOOL_CALLS] [{\"name\":\"get_weather\",\"arguments\":{\"city\":\"Rome\"},\"id\":\"abcDEF123\"}]"),
            std::string::npos) << text;
  EXPECT_NE(text.find("[TOOL_RESULTS] {\"call_id\":\"abcDEF123\",\"content\":\"sunny\"}[/TOOL_RESULTS]"), std::string::npos) << text;
  // The tools come just before the last user turn.
  EXPECT_LT(text.find("[TOOL_RESULTS]"), text.find("[AVAILABLE_TOOLS]"));
  EXPECT_LT(text.find("[/AVAILABLE_TOOLS]"), text.find("[INST] and tomorrow?"));
}

TEST(ToolPrompt, ControlTokensWhenTheVocabularyHasThem) {
  const Tokenizer& tok = with_tool_tokens();
  const int32_t avail = control_token(tok, "[AVAILABLE_TOOLS]");
  const int32_t calls = control_token(tok, "[TOOL_CALLS]");
  ASSERT_GE(avail, 32000);
  ASSERT_GE(calls, 32000);
  GenerationSpec s = chat(tool_body());
  std::vector<int32_t> ids = encode_chat_request(tok, s);
  EXPECT_NE(std::find(ids.begin(), ids.end(), avail), ids.end());
  EXPECT_EQ(control_token(v1(), "[TOOL_CALLS]"), -1);

  // A forced call: the [TOOL_CALLS] token first, then the JSON list.
  json b = tool_body();
  b["tool_choice"] = "required";
  StructuredRuntime rt(tok, 4, 64);
  EXPECT_EQ(rt.tool_calls_token(), calls);
  auto make = rt.constraint_for(chat(b));
  ASSERT_TRUE(make);
  auto c = make();
  std::vector<uint64_t> mask((tok.vocab_size() + 63) / 64);
  c->allowed(mask.data());
  int n = 0;
  for (auto w : mask) n += __builtin_popcountll(w);
  EXPECT_EQ(n, 1);
  EXPECT_TRUE((mask[calls >> 6] >> (calls & 63)) & 1);
  c->advance(calls);
  c->allowed(mask.data());
  const std::vector<int32_t> bracket = tok.encode("[");  // "▁[": its leading space is dropped
  EXPECT_TRUE((mask[bracket.back() >> 6] >> (bracket.back() & 63)) & 1);
  EXPECT_FALSE(c->is_complete());
}

TEST(StructuredRuntime, CompiledGrammarsAreCachedAndBounded) {
  StructuredRuntime rt(v1(), 2, 16);
  auto req = [](const std::string& schema) {
    json b = {{"messages", json::array({{{"role", "user"}, {"content", "x"}}})},
              {"response_format", {{"type", "json_schema"}, {"json_schema", {{"name", "s"}, {"schema", json::parse(schema)}}}}}};
    return chat(b);
  };
  EXPECT_FALSE(rt.constraint_for(chat(json{{"messages", json::array({{{"role", "user"}, {"content", "x"}}})}})));
  ASSERT_TRUE(rt.constraint_for(req(R"({"type":"integer"})")));
  rt.constraint_for(req(R"({"type":"integer"})"));
  EXPECT_EQ(rt.cached_grammars(), 1u);
  rt.constraint_for(req(R"({"type":"boolean"})"));
  rt.constraint_for(req(R"({"type":"null"})"));
  EXPECT_EQ(rt.cached_grammars(), 2u);  // --grammar-cache 2: the least recently used one went
  // Two sequences of one request have their own state.
  auto make = rt.constraint_for(req(R"({"enum":["ab","cd"]})"));
  auto a = make(), b = make();
  const std::vector<int32_t> quote = v1().encode("\"a");
  for (int32_t t : quote) a->advance(t);
  EXPECT_FALSE(a->is_complete());
  EXPECT_FALSE(b->is_complete());
  std::vector<uint64_t> ma((v1().vocab_size() + 63) / 64), mb(ma.size());
  a->allowed(ma.data());
  b->allowed(mb.data());
  EXPECT_NE(ma, mb);
  // A bad schema is a 400 naming the field and the keyword.
  try {
    rt.constraint_for(req(R"({"type":"object","minProperties":1})"));
    ADD_FAILURE() << "no error";
  } catch (const ApiException& e) {
    EXPECT_EQ(e.error().status, 400);
    EXPECT_EQ(e.error().param, "response_format");
    EXPECT_NE(e.error().message.find("minProperties"), std::string::npos);
  }
}

TEST(ToolCalls, ParseOutput) {
  std::vector<ToolDef> tools{{"f", "", ""}, {"g", "", ""}};
  auto r = parse_tool_calls("[TOOL_CALLS] [{\"name\":\"f\",\"arguments\":{\"b\":1,\"a\":2}},{\"name\":\"g\",\"arguments\":\"{}\"}]",
                            false, tools);
  ASSERT_TRUE(r);
  ASSERT_EQ(r->size(), 2u);
  EXPECT_EQ((*r)[0].arguments, "{\"b\":1,\"a\":2}");  // key order kept
  EXPECT_EQ((*r)[1].arguments, "{}");
  for (const auto& c : *r) {
    EXPECT_EQ(c.id.size(), 9u);
    for (char ch : c.id) EXPECT_TRUE(std::isalnum(static_cast<unsigned char>(ch)));
  }
  EXPECT_FALSE(parse_tool_calls("[{\"name\":\"f\"}]", false, tools));        // no marker
  EXPECT_TRUE(parse_tool_calls("[{\"name\":\"f\"}]", true, tools));          // marker was a control token
  EXPECT_FALSE(parse_tool_calls("[TOOL_CALLS] [{\"name\":\"h\"}]", false, tools));  // unknown tool
  EXPECT_FALSE(parse_tool_calls("[TOOL_CALLS] [{\"name\":\"f\"", false, tools));    // truncated
}

std::string feed(ResponseBuilder& b, const std::vector<std::string>& pieces, FinishReason fin) {
  std::string out = b.stream_start();
  for (size_t i = 0; i < pieces.size(); ++i) {
    StreamEvent e;
    e.token = 100 + static_cast<int32_t>(i);
    e.text = pieces[i];
    out += b.on_event(0, e);
  }
  StreamEvent f;
  f.finish = fin;
  f.completion_tokens = static_cast<int32_t>(pieces.size());
  out += b.on_event(0, f);
  return out + b.stream_end();
}

json reassemble(const std::string& sse) {
  json msg = {{"content", ""}, {"tool_calls", json::array()}, {"finish", nullptr}};
  size_t pos = 0;
  while ((pos = sse.find("data: ", pos)) != std::string::npos) {
    size_t end = sse.find("\n\n", pos);
    std::string d = sse.substr(pos + 6, end - pos - 6);
    pos = end;
    if (d == "[DONE]") break;
    json c = json::parse(d);
    for (const auto& ch : c["choices"]) {
      if (ch["delta"].contains("content") && ch["delta"]["content"].is_string())
        msg["content"] = msg["content"].get<std::string>() + ch["delta"]["content"].get<std::string>();
      if (ch["delta"].contains("tool_calls"))
        for (const auto& t : ch["delta"]["tool_calls"]) msg["tool_calls"].push_back(t);
      if (!ch["finish_reason"].is_null()) msg["finish"] = ch["finish_reason"];
    }
  }
  return msg;
}

TEST(ToolCalls, AutoModeDetectsTheMarkerAndStreamsLikeTheBody) {
  for (bool is_call : {true, false}) {
    GenerationSpec s = chat(tool_body());
    std::vector<std::string> pieces =
        is_call ? std::vector<std::string>{"[TOOL", "_CALLS] [{\"name\":", "\"get_weather\",\"arguments\":{\"city\":\"Rome\"}}]"}
                : std::vector<std::string>{"[TO", "DO] list", " done"};
    s.stream = true;
    ResponseBuilder streamed(s, {"chatcmpl-x", 1, "m"}, {5}, nullptr);
    json got = reassemble(feed(streamed, pieces, FinishReason::Stop));
    s.stream = false;
    ResponseBuilder whole(s, {"chatcmpl-x", 1, "m"}, {5}, nullptr);
    feed(whole, pieces, FinishReason::Stop);
    json body = whole.response();
    const json& m = body["choices"][0]["message"];
    if (is_call) {
      EXPECT_EQ(body["choices"][0]["finish_reason"], "tool_calls");
      EXPECT_TRUE(m["content"].is_null());
      ASSERT_EQ(m["tool_calls"].size(), 1u);
      EXPECT_EQ(m["tool_calls"][0]["function"]["arguments"], "{\"city\":\"Rome\"}");
      EXPECT_EQ(got["finish"], "tool_calls");
      EXPECT_EQ(got["content"], "");
      ASSERT_EQ(got["tool_calls"].size(), 1u);
      EXPECT_EQ(got["tool_calls"][0]["function"], m["tool_calls"][0]["function"]);
      EXPECT_EQ(got["tool_calls"][0]["id"], got["tool_calls"][0]["id"].get<std::string>());
    } else {
      EXPECT_EQ(body["choices"][0]["finish_reason"], "stop");
      EXPECT_EQ(m["content"], "[TODO] list done");
      EXPECT_EQ(got["content"], m["content"]);
      EXPECT_EQ(got["finish"], "stop");
    }
  }
}

TEST(ToolCalls, TruncatedCallIsReturnedAsContent) {
  json b = tool_body();
  b["tool_choice"] = "required";
  GenerationSpec s = chat(b);
  ResponseBuilder whole(s, {"chatcmpl-x", 1, "m"}, {5}, nullptr);
  feed(whole, {"[TOOL_CALLS] [{\"name\":"}, FinishReason::Length);
  json body = whole.response();
  EXPECT_EQ(body["choices"][0]["finish_reason"], "length");
  EXPECT_EQ(body["choices"][0]["message"]["content"], "[TOOL_CALLS] [{\"name\":");
}

}  // namespace
}  // namespace ms
