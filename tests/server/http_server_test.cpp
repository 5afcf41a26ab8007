// The HTTP server in-process, before a model is loaded: it listens at once,
// /health is 503 until set_ready(), API routes answer 503 with an OpenAI
// error body, unknown routes 404, bad methods 405, and stop() is clean.
#include "server/http_server.h"

#include <gtest/gtest.h>

#include <utility>  // before Asio (Boost 1.74 in C++20)
#include <boost/asio.hpp>
#include <nlohmann/json.hpp>

#include "server/http_test_client.h"

namespace ms {
namespace {

namespace asio = boost::asio;
using tcp = asio::ip::tcp;

using test::Reply;
using test::fetch;

nlohmann::json error_of(const Reply& r) {
  auto j = nlohmann::json::parse(r.body);
  EXPECT_TRUE(j.contains("error")) << r.body;
  EXPECT_TRUE(j["error"]["message"].is_string());
  EXPECT_TRUE(j["error"]["type"].is_string());
  EXPECT_TRUE(j["error"].contains("param"));
  EXPECT_TRUE(j["error"].contains("code"));
  return j["error"];
}

ServerOptions test_options() {
  ServerOptions o;
  o.port = 0;
  o.served_model_name = "test-model";
  o.log_requests = false;
  o.shutdown_grace = std::chrono::milliseconds(500);
  return o;
}

TEST(HttpServer, ServesBeforeTheModelIsLoaded) {
  Server server(test_options());
  server.start();
  const uint16_t port = server.port();
  ASSERT_NE(port, 0);

  Reply h = fetch(port, "GET", "/health");
  EXPECT_EQ(h.status, 503);
  EXPECT_EQ(error_of(h)["code"], "model_loading");

  Reply m = fetch(port, "GET", "/v1/models");
  EXPECT_EQ(m.status, 503);
  EXPECT_NE(m.head.find("Retry-After: 1"), std::string::npos);

  Reply c = fetch(port, "POST", "/v1/chat/completions", R"({"messages": [{"role": "user", "content": "hi"}]})");
  EXPECT_EQ(c.status, 503);
  error_of(c);

  Reply metrics = fetch(port, "GET", "/metrics");
  EXPECT_EQ(metrics.status, 200);
  EXPECT_NE(metrics.head.find("text/plain"), std::string::npos);
  EXPECT_NE(metrics.body.find("moeserve_ready 0"), std::string::npos);

  Reply nf = fetch(port, "GET", "/v2/whatever");
  EXPECT_EQ(nf.status, 404);
  error_of(nf);

  Reply bad_method = fetch(port, "PUT", "/v1/completions", "{}");
  EXPECT_EQ(bad_method.status, 405);
  EXPECT_NE(bad_method.head.find("Allow: POST"), std::string::npos);

  server.request_stop();
  EXPECT_TRUE(server.stop_requested());
  server.stop();
}

TEST(HttpServer, ApiKeyIsCheckedBeforeReadiness) {
  ServerOptions o = test_options();
  o.api_key = "k";
  Server server(o);
  server.start();
  EXPECT_EQ(fetch(server.port(), "GET", "/v1/models").status, 401);
  EXPECT_EQ(fetch(server.port(), "GET", "/v1/models", "", "Authorization: Bearer x\r\n").status, 401);
  EXPECT_EQ(fetch(server.port(), "GET", "/v1/models", "", "Authorization: Bearer k\r\n").status, 503);
  EXPECT_EQ(fetch(server.port(), "GET", "/health").status, 503);  // /health needs no key
  server.stop();
}

TEST(HttpServer, OversizedBodiesAndBadAddresses) {
  ServerOptions o = test_options();
  o.max_body_bytes = 1000;
  Server server(o);
  server.start();
  Reply r = fetch(server.port(), "POST", "/v1/completions", std::string(5000, 'x'));
  EXPECT_EQ(r.status, 413);
  error_of(r);
  server.stop();

  ServerOptions bad = test_options();
  bad.host = "not-an-ip";
  Server s2(bad);
  EXPECT_THROW(s2.start(), std::exception);
}

TEST(HttpServer, PortInUseIsAnError) {
  Server a(test_options());
  a.start();
  ServerOptions o = test_options();
  o.port = a.port();
  Server b(o);
  EXPECT_THROW(b.start(), std::exception);
  a.stop();
}

}  // namespace
}  // namespace ms
