// The playground's static routes (headers, ETag revalidation, --no-playground)
// and the "return_expert_load" response field.
#include <gtest/gtest.h>

#include <utility>  // before Asio (Boost 1.74 in C++20)
#include <boost/asio.hpp>
#include <nlohmann/json.hpp>

#include "playground/playground.h"
#include "server/http_server.h"
#include "server/openai_response.h"
#include "server/openai_schema.h"
#include "server/http_test_client.h"

namespace ms {
namespace {

namespace asio = boost::asio;
using tcp = asio::ip::tcp;
using json = nlohmann::json;

using test::Reply;
using test::fetch;

ServerOptions options(bool playground) {
  ServerOptions o;
  o.port = 0;
  o.served_model_name = "m";
  o.log_requests = false;
  o.api_key = "k";  // the page is public; the API is not
  o.playground = playground;
  o.shutdown_grace = std::chrono::milliseconds(500);
  return o;
}

TEST(Playground, ServedWithStrictHeadersAndRevalidation) {
  Server server(options(true));
  server.start();  // no model yet: the page is served anyway
  const uint16_t port = server.port();
  for (const char* path : {"/", "/playground", "/playground/"}) {
    Reply r = fetch(port, "GET", path);
    ASSERT_EQ(r.status, 200) << path;
    EXPECT_EQ(r.header("Content-Type"), "text/html; charset=utf-8");
    EXPECT_NE(r.body.find("<title>moeserve playground</title>"), std::string::npos);
    const std::string csp = r.header("Content-Security-Policy");
    EXPECT_NE(csp.find("default-src 'self'"), std::string::npos) << csp;
    EXPECT_NE(csp.find("script-src 'self'"), std::string::npos) << csp;
    EXPECT_EQ(csp.find("unsafe-inline"), std::string::npos) << csp;
    EXPECT_EQ(csp.find("unsafe-eval"), std::string::npos) << csp;
    EXPECT_EQ(r.header("X-Content-Type-Options"), "nosniff");
    EXPECT_EQ(r.header("Cache-Control"), "no-cache");
    EXPECT_EQ(r.header("Content-Length"), std::to_string(r.body.size()));
  }
  Reply js = fetch(port, "GET", "/playground/app.js");
  ASSERT_EQ(js.status, 200);
  EXPECT_EQ(js.header("Content-Type"), "text/javascript; charset=utf-8");
  const std::string etag = js.header("ETag");
  ASSERT_EQ(etag.size(), 18u) << etag;  // "16 hex digits"
  EXPECT_EQ(fetch(port, "GET", "/playground/app.css").header("Content-Type"), "text/css; charset=utf-8");

  // Revalidation: 304 with no body for the same ETag, 200 for another.
  Reply nm = fetch(port, "GET", "/playground/app.js", "", "If-None-Match: " + etag + "\r\n");
  EXPECT_EQ(nm.status, 304);
  EXPECT_TRUE(nm.body.empty());
  EXPECT_EQ(nm.header("ETag"), etag);
  EXPECT_EQ(fetch(port, "GET", "/playground/app.js", "", "If-None-Match: \"0000\", W/" + etag + "\r\n").status, 304);
  EXPECT_EQ(fetch(port, "GET", "/playground/app.js", "", "If-None-Match: \"0000\"\r\n").status, 200);

  Reply head = fetch(port, "HEAD", "/");
  EXPECT_EQ(head.status, 200);
  EXPECT_TRUE(head.body.empty());
  EXPECT_EQ(fetch(port, "POST", "/").status, 405);
  EXPECT_EQ(fetch(port, "GET", "/playground/missing.js").status, 404);
  EXPECT_EQ(fetch(port, "GET", "/playground/../../etc/passwd").status, 404);
  EXPECT_EQ(fetch(port, "GET", "/v1/models").status, 401);  // the API still wants the key
  server.stop();
}

TEST(Playground, OffWithNoPlayground) {
  Server server(options(false));
  server.start();
  EXPECT_EQ(fetch(server.port(), "GET", "/").status, 404);
  EXPECT_EQ(fetch(server.port(), "GET", "/playground/app.js").status, 404);
  server.stop();
}

TEST(Playground, AssetsAreSmallAndComplete) {
  size_t total = 0;
  for (const auto& a : playground::all()) total += a.body.size();
  EXPECT_GE(playground::all().size(), 3u);
  EXPECT_LT(total, 200u * 1024);  // uncompressed, even
  ASSERT_TRUE(playground::find("/"));
  // Nothing inline the CSP would block: no inline script or style in the HTML.
  const std::string html(playground::find("/")->body);
  EXPECT_EQ(html.find("<script>"), std::string::npos);
  EXPECT_EQ(html.find("<style"), std::string::npos);
  EXPECT_EQ(html.find(" style="), std::string::npos);
  EXPECT_EQ(html.find(" onclick="), std::string::npos);
}

TEST(Playground, EtagMatching) {
  EXPECT_TRUE(playground::etag_matches("*", "\"a\""));
  EXPECT_TRUE(playground::etag_matches("\"b\", \"a\"", "\"a\""));
  EXPECT_TRUE(playground::etag_matches("W/\"a\"", "\"a\""));
  EXPECT_FALSE(playground::etag_matches("", "\"a\""));
  EXPECT_FALSE(playground::etag_matches("\"ab\"", "\"a\""));
}

// ---- return_expert_load ----------------------------------------------------------

std::shared_ptr<ExpertLoad> load_of(int32_t prompt_tokens, const std::vector<std::vector<int32_t>>& routes) {
  auto l = std::make_shared<ExpertLoad>();
  l->layers = 2;
  l->experts = 4;
  l->top_k = 2;
  l->prompt.assign(8, 0);
  l->completion.assign(8, 0);
  for (int32_t t = 0; t < prompt_tokens; ++t)
    for (int32_t layer = 0; layer < 2; ++layer) {
      l->prompt[layer * 4 + (t % 4)]++;
      l->prompt[layer * 4 + ((t + 1) % 4)]++;
    }
  l->prompt_tokens = prompt_tokens;
  for (const auto& r : routes) {  // r: [layer][k] flattened
    for (int32_t layer = 0; layer < 2; ++layer)
      for (int32_t k = 0; k < 2; ++k) l->completion[layer * 4 + r[layer * 2 + k]]++;
    l->completion_routes.insert(l->completion_routes.end(), r.begin(), r.end());
    l->completion_tokens++;
  }
  return l;
}

int64_t total(const json& table) {
  int64_t s = 0;
  for (const auto& row : table)
    for (const auto& c : row) s += c.get<int64_t>();
  return s;
}

TEST(ExpertLoad, ParsedAndReturnedWithTheResponse) {
  json body = {{"messages", json::array({{{"role", "user"}, {"content", "hi"}}})}, {"return_expert_load", true}};
  GenerationSpec spec = parse_chat_request(body, ModelLimits{});
  EXPECT_TRUE(spec.return_expert_load);
  body["return_expert_load"] = "yes";
  EXPECT_THROW(parse_chat_request(body, ModelLimits{}), ApiException);
  body.erase("return_expert_load");
  EXPECT_FALSE(parse_chat_request(body, ModelLimits{}).return_expert_load);

  for (bool stream : {false, true}) {
    SCOPED_TRACE(stream ? "stream" : "non-stream");
    GenerationSpec s = parse_chat_request(json{{"messages", json::array({{{"role", "user"}, {"content", "hi"}}})},
                                               {"return_expert_load", true},
                                               {"stream", stream}},
                                          ModelLimits{});
    ResponseBuilder b(s, {"chatcmpl-x", 1, "m"}, {5}, [](int32_t) { return std::string("x"); });
    StreamEvent t;
    t.token = 7;
    t.text = "a";
    b.on_event(0, t);
    StreamEvent f;
    f.token = 8;
    f.text = "b";
    f.finish = FinishReason::Length;
    f.completion_tokens = 2;
    f.prompt_tokens = 5;
    f.expert_load = load_of(5, {{3, 1, 0, 2}});  // one completion token ran (the last never does)
    b.on_event(0, f);
    json el;
    if (stream) {
      std::string end = b.stream_end();
      auto first = end.find("data: ");
      json last = json::parse(end.substr(first + 6, end.find("\n\n") - first - 6));
      EXPECT_TRUE(last["choices"].empty());
      el = last["expert_load"];
    } else {
      el = b.response()["expert_load"];
    }
    ASSERT_TRUE(el.is_object()) << el;
    EXPECT_EQ(el["layers"], 2);
    EXPECT_EQ(el["experts"], 4);
    EXPECT_EQ(el["top_k"], 2);
    EXPECT_EQ(el["prompt_tokens"], 5);
    EXPECT_EQ(el["completion_tokens"], 1);
    ASSERT_EQ(el["prompt"].size(), 2u);
    ASSERT_EQ(el["prompt"][0].size(), 4u);
    EXPECT_EQ(total(el["prompt"]), 2 * 2 * 5);      // layers x top_k x tokens
    EXPECT_EQ(total(el["completion"]), 2 * 2 * 1);
    EXPECT_EQ(el["completion"], json::parse("[[0,1,0,1],[1,0,1,0]]"));
    EXPECT_EQ(el["completion_routes"], json::parse("[[[3,1],[0,2]]]"));
  }
}

TEST(ExpertLoad, AbsentUnlessAskedAndSummedOverChoices) {
  json msgs = json::array({{{"role", "user"}, {"content", "hi"}}});
  GenerationSpec plain = parse_chat_request(json{{"messages", msgs}}, ModelLimits{});
  ResponseBuilder b(plain, {"chatcmpl-x", 1, "m"}, {5}, nullptr);
  StreamEvent f;
  f.finish = FinishReason::Stop;
  b.on_event(0, f);
  EXPECT_FALSE(b.response().contains("expert_load"));

  GenerationSpec two = parse_chat_request(json{{"messages", msgs}, {"n", 2}, {"return_expert_load", true}}, ModelLimits{});
  ResponseBuilder b2(two, {"chatcmpl-x", 1, "m"}, {3}, nullptr);
  for (size_t i = 0; i < 2; ++i) {
    StreamEvent e;
    e.finish = FinishReason::Stop;
    e.expert_load = load_of(3, {{0, 1, 2, 3}, {1, 2, 3, 0}});
    b2.on_event(i, e);
  }
  json el = b2.response()["expert_load"];
  EXPECT_EQ(el["prompt_tokens"], 6);
  EXPECT_EQ(el["completion_tokens"], 4);
  EXPECT_EQ(total(el["prompt"]), 2 * 2 * 6);
  EXPECT_EQ(total(el["completion"]), 2 * 2 * 4);
  EXPECT_FALSE(el.contains("completion_routes"));  // per token only with one choice
}

}  // namespace
}  // namespace ms
