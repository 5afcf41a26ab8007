// http_server.h — moeserve's OpenAI-compatible HTTP server.
//
// Lifecycle (what `moeserve serve` does):
//   Server s(opts); s.start();          // listening; /health answers 503
//   ... load the model ...
//   s.set_ready(backend);                // requests are served
//   s.wait_for_stop_request();           // SIGINT/SIGTERM (stop_on_signals) or request_stop()
//   s.stop();                            // stop accepting, cancel in-flight work, close, join
//   engine.stop();                       // before the Server is destroyed
//
// A fixed pool of io_threads runs an asio io_context; every connection is
// multiplexed on it through its own strand (no thread per connection). Engine
// callbacks never touch sockets: they post to the connection's strand.
#pragma once
#include <chrono>
#include <cstdint>
#include <memory>
#include <string>

#include "server/server_options.h"

namespace ms {

class ApiContext;

class Server {
 public:
  explicit Server(ServerOptions opts);
  ~Server();
  Server(const Server&) = delete;
  Server& operator=(const Server&) = delete;

  // Binds and listens, then runs the I/O threads. Throws Error(BadInput) when
  // the address cannot be used.
  void start();
  uint16_t port() const;  // the bound port (useful with port 0)

  // SIGINT and SIGTERM call request_stop() (call before or after start()).
  void stop_on_signals();
  void set_ready(const ServerBackend& backend);
  // With ServerOptions::models: serve the registry's models.
  void set_ready();
  // The state the routes share (the Batch API's executor runs lines through it).
  ApiContext& api_context();
  void request_stop();
  bool stop_requested() const;
  void wait_for_stop_request();

  // Graceful drain (SIGTERM on a replica): /health answers 503 (/livez 200),
  // idle connections close, every new API request gets 503 with Connection:
  // close (a load balancer retries it elsewhere; the port stays open so that
  // probes see the state), and the generations in flight run to their end,
  // for at most `timeout`. Returns true when all finished in time. Call
  // stop() afterwards: it closes the listener and cancels what is left.
  bool drain(std::chrono::milliseconds timeout);

  // Stops accepting, answers new requests 503, cancels in-flight generations
  // (streams end with an error event), waits up to shutdown_grace for
  // connections to finish, closes the rest and joins the I/O threads.
  void stop();

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

}  // namespace ms
