// Request parsing and validation of the OpenAI schema: every accepted form
// maps to the right native fields, every invalid one to its status and param.
#include "server/openai_schema.h"

#include <gtest/gtest.h>

#include <nlohmann/json.hpp>

namespace ms {
namespace {

using json = nlohmann::json;

ModelLimits lim() {
  ModelLimits l;
  l.vocab_size = 32000;
  l.max_context = 1024;
  return l;
}

json chat_body(json extra = json::object()) {
  json b = {{"model", "m"}, {"messages", json::array({{{"role", "user"}, {"content", "Hello"}}})}};
  for (auto it = extra.begin(); it != extra.end(); ++it) b[it.key()] = it.value();
  return b;
}

json completion_body(json extra = json::object()) {
  json b = {{"model", "m"}, {"prompt", "In the beginning"}};
  for (auto it = extra.begin(); it != extra.end(); ++it) b[it.key()] = it.value();
  return b;
}

// Runs f, expects an ApiException and returns its error.
template <class F>
ApiError expect_error(F&& f) {
  try {
    f();
  } catch (const ApiException& e) {
    return e.error();
  }
  ADD_FAILURE() << "expected an ApiException";
  return {};
}

ApiError chat_error(json extra) {
  return expect_error([&] { parse_chat_request(chat_body(std::move(extra)), lim()); });
}
ApiError completion_error(json extra) {
  return expect_error([&] { parse_completion_request(completion_body(std::move(extra)), lim()); });
}

TEST(JsonBody, AcceptsAnObject) {
  json j = parse_json_body(R"({"a": [1, 2, {"b": "ü"}]})");
  EXPECT_EQ(j["a"][2]["b"], "ü");
}

TEST(JsonBody, RejectsInvalidJsonAndNonObjects) {
  for (const char* body : {"", "{", R"({"model": "m", "messages": [)", "{'a': 1}", "[1, 2]", "\"text\"", "42", "null",
                           R"({"a": 1} trailing)", R"({"a": 1e400})"}) {
    ApiError e = expect_error([&] { parse_json_body(body); });
    EXPECT_EQ(e.status, 400) << body;
    EXPECT_EQ(e.type, "invalid_request_error") << body;
    EXPECT_FALSE(e.message.empty()) << body;
  }
}

TEST(JsonBody, RejectsInvalidUtf8) {
  const std::string bad[] = {std::string("{\"prompt\": \"a\xff b\"}"), std::string("{\"prompt\": \"\xc3\"}"),
                             std::string("{\"prompt\": \"\xed\xa0\x80\"}"),  // UTF-16 surrogate as UTF-8
                             R"({"prompt": "\ud800"})",                      // unpaired escape
                             std::string("{\"p\xff\": 1}")};
  for (const auto& b : bad) {
    ApiError e = expect_error([&] { parse_json_body(b); });
    EXPECT_EQ(e.status, 400);
  }
}

TEST(JsonBody, RejectsDeepNesting) {
  std::string deep(1000, '[');
  deep = "{\"a\": " + deep + std::string(1000, ']') + "}";
  EXPECT_EQ(expect_error([&] { parse_json_body(deep); }).status, 400);
  std::string ok = "{\"a\": " + std::string(10, '[') + std::string(10, ']') + "}";
  EXPECT_NO_THROW(parse_json_body(ok));
}

TEST(ChatRequest, MinimalDefaults) {
  GenerationSpec s = parse_chat_request(chat_body(), lim());
  EXPECT_TRUE(s.chat);
  EXPECT_EQ(s.model, "m");
  ASSERT_EQ(s.messages.size(), 1u);
  EXPECT_EQ(s.messages[0].role, "user");
  EXPECT_EQ(s.messages[0].content, "Hello");
  EXPECT_EQ(s.n, 1);
  EXPECT_FALSE(s.max_tokens.has_value());
  EXPECT_FALSE(s.stream);
  EXPECT_FALSE(s.want_logprobs);
  EXPECT_EQ(s.sampling.logprobs, -1);
  EXPECT_FLOAT_EQ(s.sampling.temperature, 1.0f);
  EXPECT_FALSE(s.sampling.has_seed);
  EXPECT_EQ(s.num_choices(), 1u);
}

TEST(ChatRequest, AllSamplingFields) {
  json extra = {{"max_tokens", 7},         {"temperature", 0.5},      {"top_p", 0.9},
                {"top_k", 40},             {"min_p", 0.05},           {"n", 3},
                {"stop", {"\n", "END"}},   {"seed", 1234},            {"presence_penalty", 0.5},
                {"frequency_penalty", -1}, {"repetition_penalty", 1.2}, {"logprobs", true},
                {"top_logprobs", 4},       {"logit_bias", {{"50", 5}, {"7", -100}}},
                {"stream", true},          {"stream_options", {{"include_usage", true}}},
                {"user", "u1"}};
  GenerationSpec s = parse_chat_request(chat_body(extra), lim());
  EXPECT_EQ(*s.max_tokens, 7);
  EXPECT_FLOAT_EQ(s.sampling.temperature, 0.5f);
  EXPECT_FLOAT_EQ(s.sampling.top_p, 0.9f);
  EXPECT_EQ(s.sampling.top_k, 40);
  EXPECT_FLOAT_EQ(s.sampling.min_p, 0.05f);
  EXPECT_EQ(s.n, 3);
  EXPECT_EQ(s.num_choices(), 3u);
  EXPECT_EQ(s.sampling.stop, (std::vector<std::string>{"\n", "END"}));
  EXPECT_TRUE(s.sampling.has_seed);
  EXPECT_EQ(s.sampling.seed, 1234u);
  EXPECT_FLOAT_EQ(s.sampling.presence_penalty, 0.5f);
  EXPECT_FLOAT_EQ(s.sampling.frequency_penalty, -1.0f);
  EXPECT_FLOAT_EQ(s.sampling.repetition_penalty, 1.2f);
  EXPECT_TRUE(s.want_logprobs);
  EXPECT_EQ(s.top_logprobs, 4);
  EXPECT_EQ(s.sampling.logprobs, 4);
  ASSERT_EQ(s.sampling.logit_bias.size(), 2u);
  EXPECT_FLOAT_EQ(s.sampling.logit_bias.at(50), 5.0f);
  EXPECT_FLOAT_EQ(s.sampling.logit_bias.at(7), -100.0f);
  EXPECT_TRUE(s.stream);
  EXPECT_TRUE(s.include_usage);
  EXPECT_EQ(s.user, "u1");
}

TEST(ChatRequest, NullMeansAbsent) {
  GenerationSpec s = parse_chat_request(
      chat_body({{"max_tokens", nullptr}, {"temperature", nullptr}, {"stop", nullptr}, {"seed", nullptr}}), lim());
  EXPECT_FALSE(s.max_tokens);
  EXPECT_FLOAT_EQ(s.sampling.temperature, 1.0f);
  EXPECT_TRUE(s.sampling.stop.empty());
  EXPECT_FALSE(s.sampling.has_seed);
}

TEST(ChatRequest, MaxCompletionTokensWins) {
  GenerationSpec s = parse_chat_request(chat_body({{"max_tokens", 5}, {"max_completion_tokens", 9}}), lim());
  EXPECT_EQ(*s.max_tokens, 9);
  s = parse_chat_request(chat_body({{"max_completion_tokens", 3}}), lim());
  EXPECT_EQ(*s.max_tokens, 3);
  s = parse_chat_request(chat_body({{"max_tokens", 4.0}}), lim());  // integral float
  EXPECT_EQ(*s.max_tokens, 4);
}

TEST(ChatRequest, LogprobsWithoutTopLogprobs) {
  GenerationSpec s = parse_chat_request(chat_body({{"logprobs", true}}), lim());
  EXPECT_TRUE(s.want_logprobs);
  EXPECT_EQ(s.sampling.logprobs, 0);
  s = parse_chat_request(chat_body({{"logprobs", false}}), lim());
  EXPECT_EQ(s.sampling.logprobs, -1);
}

TEST(ChatRequest, TopPZeroAndTopKMinusOne) {
  GenerationSpec s = parse_chat_request(chat_body({{"top_p", 0}, {"top_k", -1}}), lim());
  EXPECT_EQ(s.sampling.top_k, 1);
  EXPECT_FLOAT_EQ(s.sampling.top_p, 1.0f);
  s = parse_chat_request(chat_body({{"top_k", -1}}), lim());
  EXPECT_EQ(s.sampling.top_k, 0);
}

TEST(ChatRequest, SeedForms) {
  EXPECT_EQ(parse_chat_request(chat_body({{"seed", -1}}), lim()).sampling.seed, static_cast<uint64_t>(-1));
  EXPECT_EQ(parse_chat_request(chat_body({{"seed", 18446744073709551615ull}}), lim()).sampling.seed,
            18446744073709551615ull);
  EXPECT_EQ(parse_chat_request(chat_body({{"seed", 3.0}}), lim()).sampling.seed, 3u);
  ApiError e = chat_error({{"seed", "42"}});
  EXPECT_EQ(e.status, 400);
  EXPECT_EQ(e.param, "seed");
  EXPECT_EQ(chat_error({{"seed", 1.5}}).param, "seed");
}

// Integer fields given as floats outside their type's range, or not integral,
// are a 400 naming the field: no float-to-integer conversion out of range.
TEST(ChatRequest, IntegerFieldsOutOfRange) {
  // seed's range is [-2^63, 2^64): 2^63 as a float is the seed 2^63 exactly.
  EXPECT_EQ(parse_chat_request(chat_body({{"seed", 9223372036854775808.0}}), lim()).sampling.seed,
            uint64_t(1) << 63);
  EXPECT_EQ(parse_chat_request(chat_body({{"seed", -9223372036854775808.0}}), lim()).sampling.seed,
            uint64_t(1) << 63);
  const struct { const char* field; json value; } bad[] = {
      {"seed", 18446744073709551616.0}, {"seed", -9223372036854777856.0}, {"seed", 1e300},
      {"max_tokens", 2147483648.0},     {"max_tokens", 9223372036854775808.0}, {"max_tokens", -9.3e18},
      {"max_completion_tokens", 1e19},  {"max_tokens", 0.5},            {"top_k", 1e300},
      {"top_k", -9223372036854775808.0}, {"n", 1.5},                   {"n", 9223372036854775807.0},
      {"top_logprobs", 1e20},
  };
  for (const auto& b : bad) {
    SCOPED_TRACE(std::string(b.field) + " = " + b.value.dump());
    json extra = {{b.field, b.value}};
    if (std::string(b.field) == "top_logprobs") extra["logprobs"] = true;
    ApiError e = chat_error(extra);
    EXPECT_EQ(e.status, 400);
    EXPECT_EQ(e.param, b.field);
  }
  for (const char* key : {"+5", " 5", "5 ", "5e0", "0x5", "-0", "05.0", "", "99999999999999999999"}) {
    SCOPED_TRACE(key);
    EXPECT_EQ(chat_error({{"logit_bias", {{key, 1.0}}}}).param, "logit_bias");
  }
  EXPECT_EQ(parse_chat_request(chat_body({{"logit_bias", {{"05", 1.0}}}}), lim()).sampling.logit_bias.count(5), 1u);
}

TEST(ChatRequest, MessageForms) {
  json msgs = json::array({{{"role", "system"}, {"content", "Be brief."}},
                           {{"role", "developer"}, {"content", "Really."}},
                           {{"role", "user"}, {"content", json::array({{{"type", "text"}, {"text", "Na"}},
                                                                      {{"type", "text"}, {"text", "me"}}})}},
                           {{"role", "assistant"}, {"content", nullptr}},
                           {{"role", "user"}, {"content", "Bye"}, {"name", "x"}}});
  GenerationSpec s = parse_chat_request(json{{"messages", msgs}}, lim());
  ASSERT_EQ(s.messages.size(), 5u);
  EXPECT_EQ(s.messages[1].role, "system");
  EXPECT_EQ(s.messages[2].content, "Name");
  EXPECT_EQ(s.messages[3].role, "assistant");
  EXPECT_EQ(s.messages[3].content, "");
  EXPECT_TRUE(s.model.empty());
}

TEST(ChatRequest, MessageErrors) {
  struct Case {
    json messages;
    std::string param;
  };
  const Case cases[] = {
      {json(), "messages"},
      {json("hi"), "messages"},
      {json::array(), "messages"},
      {json::array({"hi"}), "messages[0]"},
      {json::array({{{"content", "x"}}}), "messages[0].role"},
      {json::array({{{"role", 3}, {"content", "x"}}}), "messages[0].role"},
      {json::array({{{"role", "tool"}, {"content", "x"}}}), "messages[0].tool_call_id"},
      {json::array({{{"role", "robot"}, {"content", "x"}}}), "messages[0].role"},
      {json::array({{{"role", "user"}, {"content", "x"}, {"tool_calls", json::array()}}}), "messages[0].tool_calls"},
      {json::array({{{"role", "wizard"}, {"content", "x"}}}), "messages[0].role"},
      {json::array({{{"role", "user"}}}), "messages[0].content"},
      {json::array({{{"role", "user"}, {"content", 5}}}), "messages[0].content"},
      {json::array({{{"role", "user"}, {"content", json::array({{{"type", "image_url"}, {"image_url", "u"}}})}}}),
       "messages[0].content[0].type"},
      {json::array({{{"role", "user"}, {"content", json::array({{{"type", "text"}}})}}}), "messages[0].content[0].text"},
  };
  for (const auto& c : cases) {
    json body = {{"model", "m"}};
    if (!c.messages.is_null()) body["messages"] = c.messages;
    ApiError e = expect_error([&] { parse_chat_request(body, lim()); });
    EXPECT_EQ(e.status, 400) << c.messages.dump();
    EXPECT_EQ(e.param, c.param) << c.messages.dump();
    EXPECT_EQ(e.type, "invalid_request_error");
  }
}

TEST(ChatRequest, TypeAndRangeErrors) {
  struct Case {
    json extra;
    std::string param;
  };
  const Case cases[] = {
      {{{"model", 5}}, "model"},
      {{{"temperature", "hot"}}, "temperature"},
      {{{"temperature", true}}, "temperature"},
      {{{"temperature", 2.5}}, "temperature"},
      {{{"temperature", -0.1}}, "temperature"},
      {{{"top_p", 1.5}}, "top_p"},
      {{{"top_p", -0.5}}, "top_p"},
      {{{"top_k", -2}}, "top_k"},
      {{{"top_k", 0.5}}, "top_k"},
      {{{"min_p", 2}}, "min_p"},
      {{{"max_tokens", -5}}, "max_tokens"},
      {{{"max_tokens", 0}}, "max_tokens"},
      {{{"max_tokens", "10"}}, "max_tokens"},
      {{{"max_tokens", 1.5}}, "max_tokens"},
      {{{"max_tokens", 1e20}}, "max_tokens"},
      {{{"max_tokens", 99999999999999999999.0}}, "max_tokens"},
      {{{"max_tokens", 4294967296ll}}, "max_tokens"},
      {{{"max_completion_tokens", -1}}, "max_completion_tokens"},
      {{{"n", 0}}, "n"},
      {{{"n", 1000}}, "n"},
      {{{"n", "2"}}, "n"},
      {{{"stop", 5}}, "stop"},
      {{{"stop", {"a", 5}}}, "stop[1]"},
      {{{"stop", ""}}, "stop"},
      {{{"stop", json::array({"a", "b", "c", "d", "e", "f", "g", "h", "i", "j", "k", "l", "m", "n", "o", "p", "q"})}},
       "stop"},
      {{{"presence_penalty", 3}}, "presence_penalty"},
      {{{"frequency_penalty", -2.5}}, "frequency_penalty"},
      {{{"repetition_penalty", 0}}, "repetition_penalty"},
      {{{"repetition_penalty", -1}}, "repetition_penalty"},
      {{{"logprobs", 1}}, "logprobs"},
      {{{"top_logprobs", 3}}, "top_logprobs"},
      {{{"logprobs", true}, {"top_logprobs", 21}}, "top_logprobs"},
      {{{"logprobs", true}, {"top_logprobs", -1}}, "top_logprobs"},
      {{{"logit_bias", {1, 2}}}, "logit_bias"},
      {{{"logit_bias", {{"abc", 1}}}}, "logit_bias"},
      {{{"logit_bias", {{"-1", 1}}}}, "logit_bias"},
      {{{"logit_bias", {{"32000", 1}}}}, "logit_bias"},
      {{{"logit_bias", {{"5", 101}}}}, "logit_bias"},
      {{{"logit_bias", {{"5", "x"}}}}, "logit_bias"},
      {{{"stream", "yes"}}, "stream"},
      {{{"stream_options", {{"include_usage", true}}}}, "stream_options"},
      {{{"stream", true}, {"stream_options", {{"include_usage", 1}}}}, "stream_options.include_usage"},
      {{{"stream", true}, {"stream_options", "x"}}, "stream_options"},
      {{{"tools", {{{"type", "function"}}}}}, "tools"},
      {{{"response_format", {{"type", "xml"}}}}, "response_format"},
      {{{"response_format", {{"type", "json_schema"}}}}, "response_format"},
      {{{"structured_outputs", {{"choice", json::array()}}}}, "structured_outputs"},
      {{{"structured_outputs", {{"regex", "a"}, {"choice", {"b"}}}}}, "structured_outputs"},
      {{{"tool_choice", "required"}}, "tool_choice"},
      {{{"tools", {{{"type", "function"}, {"function", {{"name", "f"}}}}}}, {"tool_choice", {{"type", "function"}, {"function", {{"name", "g"}}}}}}, "tool_choice"},
      {{{"user", 5}}, "user"},
  };
  for (const auto& c : cases) {
    ApiError e = chat_error(c.extra);
    EXPECT_EQ(e.status, 400) << c.extra.dump();
    EXPECT_EQ(e.param, c.param) << c.extra.dump();
    EXPECT_FALSE(e.message.empty());
  }
}

TEST(ChatRequest, RangesHoldForParsedLiterals) {
  // Parsed non-negative literals are unsigned in nlohmann::json; the lower bounds must still hold.
  const char* bodies[][2] = {
      {R"({"messages": [{"role": "user", "content": "x"}], "max_tokens": 0})", "max_tokens"},
      {R"({"messages": [{"role": "user", "content": "x"}], "n": 0})", "n"},
      {R"({"messages": [{"role": "user", "content": "x"}], "max_completion_tokens": 0})", "max_completion_tokens"},
      {R"({"messages": [{"role": "user", "content": "x"}], "max_tokens": 18446744073709551615})", "max_tokens"},
      {R"({"messages": [{"role": "user", "content": "x"}], "top_k": 99999999})", "top_k"},
  };
  for (const auto& b : bodies) {
    ApiError e = expect_error([&] { parse_chat_request(parse_json_body(b[0]), lim()); });
    EXPECT_EQ(e.status, 400) << b[0];
    EXPECT_EQ(e.param, b[1]) << b[0];
  }
  GenerationSpec s = parse_chat_request(
      parse_json_body(R"({"messages": [{"role": "user", "content": "x"}], "max_tokens": 1, "n": 2})"), lim());
  EXPECT_EQ(*s.max_tokens, 1);
  EXPECT_EQ(s.n, 2);
}

TEST(ChatRequest, TypeErrorsSayWhatWasExpected) {
  ApiError e = chat_error({{"temperature", "hot"}});
  EXPECT_EQ(e.code, "invalid_type");
  EXPECT_NE(e.message.find("temperature"), std::string::npos);
  EXPECT_NE(e.message.find("string"), std::string::npos);
  e = chat_error({{"max_tokens", -5}});
  EXPECT_EQ(e.code, "invalid_value");
  EXPECT_NE(e.message.find("-5"), std::string::npos);
}

TEST(CompletionRequest, PromptForms) {
  GenerationSpec s = parse_completion_request(completion_body(), lim());
  ASSERT_EQ(s.prompts.size(), 1u);
  EXPECT_TRUE(s.prompts[0].is_text);
  EXPECT_EQ(s.prompts[0].text, "In the beginning");

  s = parse_completion_request(completion_body({{"prompt", {"a", "b"}}, {"n", 2}}), lim());
  ASSERT_EQ(s.prompts.size(), 2u);
  EXPECT_EQ(s.prompts[1].text, "b");
  EXPECT_EQ(s.num_choices(), 4u);

  s = parse_completion_request(completion_body({{"prompt", {1, 512, 31999}}}), lim());
  ASSERT_EQ(s.prompts.size(), 1u);
  EXPECT_FALSE(s.prompts[0].is_text);
  EXPECT_EQ(s.prompts[0].tokens, (std::vector<int32_t>{1, 512, 31999}));

  s = parse_completion_request(completion_body({{"prompt", {{1, 2}, {1, 3, 4}}}}), lim());
  ASSERT_EQ(s.prompts.size(), 2u);
  EXPECT_EQ(s.prompts[1].tokens, (std::vector<int32_t>{1, 3, 4}));

  s = parse_completion_request(completion_body({{"prompt", ""}}), lim());
  EXPECT_EQ(s.prompts[0].text, "");
}

TEST(CompletionRequest, PromptErrors) {
  const json bad[] = {json(nullptr), json(5), json::array(), json::array({1.5}), json::array({-1}),
                      json::array({32000}), json::object({{"a", 1}}), json::array({"a", 1}),
                      json::array({json::array()}), json::array({1, "a"}), json::array({true})};
  for (const auto& p : bad) {
    json body = {{"model", "m"}};
    if (!p.is_null()) body["prompt"] = p;
    ApiError e = expect_error([&] { parse_completion_request(body, lim()); });
    EXPECT_EQ(e.status, 400) << p.dump();
    EXPECT_EQ(e.param.rfind("prompt", 0), 0u) << p.dump() << " -> " << e.param;
  }
}

TEST(CompletionRequest, Logprobs) {
  GenerationSpec s = parse_completion_request(completion_body({{"logprobs", 3}}), lim());
  EXPECT_TRUE(s.want_logprobs);
  EXPECT_EQ(s.sampling.logprobs, 3);
  s = parse_completion_request(completion_body({{"logprobs", 0}}), lim());
  EXPECT_TRUE(s.want_logprobs);
  EXPECT_EQ(s.sampling.logprobs, 0);
  s = parse_completion_request(completion_body({{"logprobs", nullptr}}), lim());
  EXPECT_FALSE(s.want_logprobs);
  EXPECT_EQ(completion_error({{"logprobs", true}}).param, "logprobs");
  EXPECT_EQ(completion_error({{"logprobs", 21}}).param, "logprobs");
  EXPECT_EQ(completion_error({{"logprobs", -1}}).param, "logprobs");
}

TEST(CompletionRequest, UnsupportedOptions) {
  EXPECT_EQ(completion_error({{"echo", true}}).param, "echo");
  EXPECT_EQ(completion_error({{"suffix", "x"}}).param, "suffix");
  EXPECT_EQ(completion_error({{"best_of", 3}}).param, "best_of");
  EXPECT_NO_THROW(parse_completion_request(completion_body({{"echo", false}, {"best_of", 1}}), lim()));
  EXPECT_EQ(completion_error({{"prompt", json::array({"a", "b", "c"})}, {"n", 100}}).param, "n");
}

TEST(ResolveMaxTokens, DefaultsAndLimits) {
  ModelLimits l = lim();  // context 1024
  GenerationSpec chat = parse_chat_request(chat_body(), l);
  EXPECT_EQ(resolve_max_tokens(chat, 24, l), 1000);
  GenerationSpec comp = parse_completion_request(completion_body(), l);
  EXPECT_EQ(resolve_max_tokens(comp, 24, l), 16);
  EXPECT_EQ(resolve_max_tokens(comp, 1020, l), 4);  // default clipped to the room left

  comp.max_tokens = 1000;
  EXPECT_EQ(resolve_max_tokens(comp, 24, l), 1000);
  ApiError e = expect_error([&] { resolve_max_tokens(comp, 25, l); });
  EXPECT_EQ(e.status, 400);
  EXPECT_EQ(e.param, "max_tokens");
  EXPECT_EQ(e.code, "context_length_exceeded");

  e = expect_error([&] { resolve_max_tokens(chat, 1024, l); });
  EXPECT_EQ(e.param, "messages");
  e = expect_error([&] { resolve_max_tokens(comp, 5000, l); });
  EXPECT_EQ(e.param, "prompt");
}

TEST(CheckModel, UnknownModelIs404) {
  EXPECT_NO_THROW(check_model("", "served"));
  EXPECT_NO_THROW(check_model("served", "served"));
  ApiError e = expect_error([] { check_model("gpt-4", "served"); });
  EXPECT_EQ(e.status, 404);
  EXPECT_EQ(e.param, "model");
  EXPECT_EQ(e.code, "model_not_found");
  EXPECT_EQ(e.type, "not_found_error");
}

TEST(Tokenize, Bodies) {
  TokenizeSpec t = parse_tokenize_request(json{{"prompt", "abc"}});
  EXPECT_FALSE(t.chat);
  EXPECT_EQ(t.prompt, "abc");
  EXPECT_TRUE(t.add_special_tokens);
  t = parse_tokenize_request(json{{"prompt", "abc"}, {"add_special_tokens", false}, {"model", "m"}});
  EXPECT_FALSE(t.add_special_tokens);
  EXPECT_EQ(t.model, "m");
  t = parse_tokenize_request(json{{"messages", {{{"role", "user"}, {"content", "x"}}}}});
  EXPECT_TRUE(t.chat);
  ASSERT_EQ(t.messages.size(), 1u);

  EXPECT_EQ(expect_error([] { parse_tokenize_request(json::object()); }).param, "prompt");
  EXPECT_EQ(expect_error([] { parse_tokenize_request(json{{"prompt", 5}}); }).param, "prompt");
  EXPECT_EQ(expect_error([] {
              parse_tokenize_request(json{{"prompt", "a"}, {"messages", {{{"role", "user"}, {"content", "x"}}}}});
            }).status,
            400);
}

TEST(Detokenize, Bodies) {
  std::string model;
  EXPECT_EQ(parse_detokenize_request(json{{"tokens", {1, 2, 3}}, {"model", "m"}}, lim(), &model),
            (std::vector<int32_t>{1, 2, 3}));
  EXPECT_EQ(model, "m");
  EXPECT_TRUE(parse_detokenize_request(json{{"tokens", json::array()}}, lim()).empty());
  for (const json& body : {json::object(), json{{"tokens", "1 2"}}, json{{"tokens", {1, 32000}}},
                           json{{"tokens", {1, -3}}}, json{{"tokens", {1, "2"}}}}) {
    ApiError e = expect_error([&] { parse_detokenize_request(body, lim()); });
    EXPECT_EQ(e.status, 400) << body.dump();
    EXPECT_EQ(e.param.rfind("tokens", 0), 0u) << body.dump();
  }
}

TEST(ApiErrorType, ByStatus) {
  EXPECT_STREQ(error_type_for_status(400), "invalid_request_error");
  EXPECT_STREQ(error_type_for_status(401), "authentication_error");
  EXPECT_STREQ(error_type_for_status(404), "not_found_error");
  EXPECT_STREQ(error_type_for_status(429), "rate_limit_error");
  EXPECT_STREQ(error_type_for_status(500), "server_error");
  ApiException ex(413, "too big");
  EXPECT_EQ(ex.error().type, "invalid_request_error");
  EXPECT_STREQ(ex.what(), "too big");
}

}  // namespace
}  // namespace ms
