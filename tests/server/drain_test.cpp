// Replica lifecycle without a model: /livez is 200 from the start (no key
// needed, even with --api-key), /health 503 while loading; drain() turns
// /health to 503 shutting_down, keeps /livez 200 and answers API requests
// 503, and returns at once when nothing is in flight.
#include "server/http_server.h"

#include <gtest/gtest.h>

#include <chrono>
#include <utility>  // before Asio (Boost 1.74 in C++20)

#include <boost/asio.hpp>

#include "server/http_test_client.h"

namespace ms {
namespace {

using test::fetch;
using test::Reply;

ServerOptions options() {
  ServerOptions o;
  o.port = 0;
  o.served_model_name = "test-model";
  o.log_requests = false;
  o.api_key = "secret";
  o.shutdown_grace = std::chrono::milliseconds(500);
  return o;
}

TEST(Drain, LivenessReadinessAndRefusalsWhileDraining) {
  Server server(options());
  server.start();
  const uint16_t port = server.port();
  Reply live = fetch(port, "GET", "/livez");
  EXPECT_EQ(live.status, 200);
  EXPECT_NE(live.body.find("alive"), std::string::npos);
  EXPECT_EQ(fetch(port, "GET", "/health").status, 503);

  const auto t0 = std::chrono::steady_clock::now();
  EXPECT_TRUE(server.drain(std::chrono::seconds(5)));
  EXPECT_LT(std::chrono::steady_clock::now() - t0, std::chrono::seconds(1)) << "nothing in flight: no wait";
  Reply h = fetch(port, "GET", "/health");
  EXPECT_EQ(h.status, 503);
  EXPECT_NE(h.body.find("shutting_down"), std::string::npos) << h.body;
  EXPECT_EQ(fetch(port, "GET", "/livez").status, 200);
  Reply c = fetch(port, "POST", "/v1/completions", R"({"prompt": "hi"})", "Authorization: Bearer secret\r\n");
  EXPECT_EQ(c.status, 503);
  EXPECT_NE(c.body.find("shutting_down"), std::string::npos) << c.body;
  server.stop();
}

}  // namespace
}  // namespace ms
