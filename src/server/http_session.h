// http_session.h — one HTTP/1.1 connection (internal to the server).
//
// Everything of a connection runs on its own strand of the shared io_context,
// so a handful of I/O threads carry any number of connections. Requests are
// parsed with Boost.Beast; responses are written as raw HTTP (SSE streams use
// chunked transfer encoding). Phases and their deadlines:
//   idle (keep-alive, waiting for a first byte)  idle_timeout
//   headers                                      header_timeout (so a client
//   body                                         body_timeout    dribbling one
//   each write                                   write_timeout   byte a second is cut)
// A body declared larger than max_body_bytes is answered 413 right after the
// headers, then the connection reads and discards what the client still sends
// (bounded) before closing, so the client sees the 413 instead of a reset.
// A body that the route layer streams (open_body_stream: POST /v1/files) is
// read in chunks into its BodyStream instead of into memory.
// While a generation runs, a read stays pending on the socket: the client
// closing it cancels the engine requests at once (Engine::cancel).
#pragma once
#include <chrono>
#include <cstdint>
#include <memory>
#include <optional>
#include <string>

#include <utility>  // before Asio: Boost 1.74 awaitable.hpp needs std::exchange in C++20
#include <boost/asio.hpp>
#include <boost/beast/core/flat_buffer.hpp>
#include <boost/beast/http.hpp>

#include "server/api_context.h"
#include "server/api_routes.h"

namespace ms {

class SessionRegistry {
 public:
  virtual ~SessionRegistry() = default;
  virtual void session_closed(uint64_t id) = 0;
};

class HttpSession : public std::enable_shared_from_this<HttpSession> {
 public:
  using tcp = boost::asio::ip::tcp;
  HttpSession(tcp::socket sock, ApiContext& ctx, SessionRegistry& reg, uint64_t id);
  ~HttpSession();

  void start();          // begin reading requests
  void reject_busy();    // over the connection limit: 503, then close
  void shutdown();       // thread-safe: finish or cancel the current request, then close
  void drain();          // thread-safe: close if idle; else finish the current exchange, then close
  void force_close();    // thread-safe: close now

 private:
  using Clock = std::chrono::steady_clock;
  using Parser = boost::beast::http::request_parser<boost::beast::http::string_body>;
  using StreamParser = boost::beast::http::request_parser<boost::beast::http::buffer_body>;

  void read_request();
  void read_header();
  void on_header(boost::system::error_code ec);
  void read_body();
  void on_body(boost::system::error_code ec);
  void on_request();
  // A body consumed as it arrives (open_body_stream: file uploads).
  void read_stream_body();
  void on_stream_body(boost::system::error_code ec);
  void on_stream_request(bool complete);

  void start_job(RouteResult rr);
  void on_job_events();
  void reply_job();  // the finished job's last bytes (after its usage row is durable)
  void finish_job();

  void start_watch();
  void on_watch(boost::system::error_code ec, size_t n);
  void client_gone();

  void send_response(const HttpResp& r, bool close_after = false);
  void send_error_and_close(int status, const std::string& message, bool drain);
  void queue_chunk(const std::string& data);
  void refill();  // the next piece of src_ into out_
  void flush();
  void on_write(boost::system::error_code ec);
  void advance();

  void arm_read(std::chrono::milliseconds d);
  void disarm_read();
  void arm_write();
  void disarm_write();
  void on_timeout();

  void graceful_close();
  void linger_close();
  void on_linger(boost::system::error_code ec, size_t n);
  void close();
  void log_exchange(int status, const std::string& note = "");

  tcp::socket sock_;
  boost::asio::steady_timer read_timer_;
  boost::asio::steady_timer write_timer_;
  uint64_t read_gen_ = 0, write_gen_ = 0;
  ApiContext& ctx_;
  SessionRegistry& reg_;
  const uint64_t id_;

  boost::beast::flat_buffer buf_;
  std::optional<Parser> parser_;
  std::optional<StreamParser> sparser_;
  std::shared_ptr<BodyStream> stream_;
  std::unique_ptr<char[]> sbuf_;

  // The current exchange.
  Clock::time_point arrival_;
  std::string method_, path_, req_id_;
  bool head_only_ = false;
  bool keep_alive_ = true;
  bool chunked_ = false;
  bool exchange_done_ = false;   // the whole response is queued
  bool close_after_ = false;
  bool drain_on_close_ = false;
  bool logged_ = false;
  std::shared_ptr<GenerationJob> job_;
  std::shared_ptr<GenerationJob> held_job_;  // finished, waiting for its usage row to commit

  // Output.
  std::shared_ptr<BodySource> src_;  // a streamed response body not yet all queued
  std::string out_;       // queued, not yet being written
  std::string wbuf_;      // being written
  bool writing_ = false;

  // The disconnect watch while a job runs.
  bool watching_ = false;
  bool watch_cancel_ = false;

  bool closed_ = false;
  bool shutting_down_ = false;
  uint64_t requests_ = 0;  // requests read on this connection
  size_t lingered_ = 0;
  char discard_[16384];
};

}  // namespace ms
