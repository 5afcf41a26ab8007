// http_session.cpp — one HTTP connection's state machine (see http_session.h).
#include "server/http_session.h"

#include <cstdio>

#include <nlohmann/json.hpp>

#include "server/batch_routes.h"

namespace ms {

namespace asio = boost::asio;
namespace beast = boost::beast;
namespace http = beast::http;
using boost::system::error_code;

namespace {

constexpr size_t kWatchChunk = 4096;
constexpr size_t kMaxPipelined = 64 * 1024;       // bytes read ahead while a job runs
constexpr size_t kMaxLinger = 64u << 20;          // bytes discarded after an early 413
constexpr std::chrono::milliseconds kLingerTime{3000};
constexpr size_t kStreamChunk = 64 * 1024;        // a streamed body's read buffer

// A malformed request (as opposed to the peer closing or a timeout).
bool is_parse_error(const boost::system::error_code& ec) {
  namespace http = boost::beast::http;
  return ec.category() == http::make_error_code(http::error::bad_target).category() &&
         ec != http::error::end_of_stream && ec != http::error::partial_message;
}

std::string head(int status, const std::string& content_type, std::optional<size_t> length, bool chunked,
                 bool keep_alive, const std::vector<std::pair<std::string, std::string>>& extra) {
  std::string h = "HTTP/1.1 " + std::to_string(status) + " " + http_reason(status) + "\r\n";
  h += "Server: moeserve\r\n";
  if (!content_type.empty()) h += "Content-Type: " + content_type + "\r\n";
  if (length) h += "Content-Length: " + std::to_string(*length) + "\r\n";
  if (chunked) h += "Transfer-Encoding: chunked\r\n";
  h += keep_alive ? "Connection: keep-alive\r\n" : "Connection: close\r\n";
  for (const auto& [k, v] : extra) h += k + ": " + v + "\r\n";
  h += "\r\n";
  return h;
}

// The message of an OpenAI error body, quoted, for the log.
std::string error_message_of(const std::string& body) {
  auto j = nlohmann::json::parse(body, nullptr, false);
  if (j.is_discarded() || !j.contains("error") || !j["error"].contains("message")) return "";
  std::string m = j["error"]["message"].is_string() ? j["error"]["message"].get<std::string>() : "";
  if (m.size() > 200) m = m.substr(0, 200) + "...";
  return "error=" + nlohmann::json(m).dump(-1, ' ', false, nlohmann::json::error_handler_t::replace);
}

// The request line and the headers the routes read (the body is set apart).
template <class Req>
HttpReq request_head(const std::string& method, const Req& req) {
  HttpReq r;
  r.method = method;
  r.target = std::string(req.target());
  r.authorization = std::string(req[http::field::authorization]);
  r.if_none_match = std::string(req[http::field::if_none_match]);
  r.content_type = std::string(req[http::field::content_type]);
  return r;
}

}  // namespace

HttpSession::HttpSession(tcp::socket sock, ApiContext& ctx, SessionRegistry& reg, uint64_t id)
    : sock_(std::move(sock)),
      read_timer_(sock_.get_executor()),
      write_timer_(sock_.get_executor()),
      ctx_(ctx),
      reg_(reg),
      id_(id) {
  ctx_.metrics.open_connections.fetch_add(1);
  ctx_.metrics.connections_total.fetch_add(1);
}

HttpSession::~HttpSession() {
  ctx_.metrics.open_connections.fetch_sub(1);
  if (job_) job_->cancel(499);
  reg_.session_closed(id_);
}

void HttpSession::start() {
  asio::dispatch(sock_.get_executor(), [self = shared_from_this()] {
    error_code ec;
    self->sock_.set_option(tcp::no_delay(true), ec);
    self->read_request();
  });
}

void HttpSession::reject_busy() {
  asio::dispatch(sock_.get_executor(), [self = shared_from_this()] {
    self->method_ = "-";
    self->path_ = "-";
    self->arrival_ = Clock::now();
    self->send_error_and_close(503, "Too many connections; retry later.", true);
  });
}

void HttpSession::shutdown() {
  asio::post(sock_.get_executor(), [self = shared_from_this()] {
    if (self->closed_) return;
    self->shutting_down_ = true;
    self->keep_alive_ = false;
    if (self->job_) {
      self->job_->cancel(503);  // its cancelled events finish the response, then we close
    } else if (!self->held_job_ && !self->writing_ && self->out_.empty() && !self->src_) {
      self->close();  // idle or reading a request
    }
  });
}

void HttpSession::drain() {
  asio::post(sock_.get_executor(), [self = shared_from_this()] {
    if (self->closed_) return;
    self->keep_alive_ = false;  // the server is stopping: the exchange in progress is the last
    // Idle between two requests: close. Not a connection whose first request
    // has not been read yet (or whose next one is already buffered): the
    // client has sent it or is sending it, and gets its answer (a 503).
    if (!self->job_ && !self->held_job_ && !self->writing_ && self->out_.empty() && !self->src_ &&
        self->method_.empty() && self->requests_ > 0 && self->buf_.size() == 0)
      self->close();
  });
}

void HttpSession::force_close() {
  asio::post(sock_.get_executor(), [self = shared_from_this()] { self->close(); });
}

// ---- reading a request ----------------------------------------------------

void HttpSession::read_request() {
  if (closed_) return;
  if (shutting_down_) {  // (while the server drains, a new connection still gets its one answer: 503)
    close();
    return;
  }
  parser_.emplace();
  parser_->header_limit(static_cast<uint32_t>(ctx_.opts.max_header_bytes));
  // Until the path is known: the larger of the two limits (on_header narrows it).
  parser_->body_limit(ctx_.opts.batches ? std::max(ctx_.opts.max_body_bytes, ctx_.opts.max_file_bytes + (64u << 10))
                                        : ctx_.opts.max_body_bytes);
  method_.clear();
  path_.clear();
  req_id_.clear();
  logged_ = false;
  head_only_ = false;
  chunked_ = false;
  exchange_done_ = false;
  if (buf_.size() > 0) {
    read_header();
    return;
  }
  arm_read(ctx_.opts.idle_timeout);
  sock_.async_wait(tcp::socket::wait_read, [self = shared_from_this()](error_code ec) {
    if (ec || self->closed_) {
      self->close();
      return;
    }
    self->read_header();
  });
}

void HttpSession::read_header() {
  arm_read(ctx_.opts.header_timeout);
  http::async_read_header(sock_, buf_, *parser_,
                          [self = shared_from_this()](error_code ec, size_t) { self->on_header(ec); });
}

void HttpSession::on_header(error_code ec) {
  if (closed_) return;
  arrival_ = Clock::now();
  if (ec) {
    disarm_read();
    if (ec == http::error::body_limit) {  // a declared Content-Length over the limit
      method_ = "-";
      path_ = "-";
      send_error_and_close(413, "Request body too large: the limit is " + std::to_string(ctx_.opts.max_body_bytes) +
                                    " bytes.", true);
    } else if (ec == http::error::header_limit) {
      method_ = "-";
      path_ = "-";
      send_error_and_close(431, "Request headers too large.", true);
    } else if (is_parse_error(ec)) {
      method_ = "-";
      path_ = "-";
      send_error_and_close(400, "Malformed HTTP request: " + ec.message() + ".", true);
    } else {
      close();  // client closed, reset or timed out
    }
    return;
  }
  const auto& req = parser_->get();
  ++requests_;
  method_ = std::string(req.method_string());
  path_ = std::string(req.target());
  if (auto q = path_.find('?'); q != std::string::npos) path_.resize(q);
  // File uploads (the Batch API) have their own limit, --max-file-mb.
  const bool upload = ctx_.opts.batches && path_ == "/v1/files" && method_ == "POST";
  const size_t limit = upload ? std::max(ctx_.opts.max_body_bytes, ctx_.opts.max_file_bytes + (64u << 10))
                              : ctx_.opts.max_body_bytes;
  parser_->body_limit(limit);
  if (auto cl = parser_->content_length(); cl && *cl > limit) {
    send_error_and_close(413,
                         "Request body too large: " + std::to_string(*cl) + " bytes, the limit is " +
                             std::to_string(limit) + ".",
                         true);
    return;
  }
  // An upload's key is checked before its body is read (and before 100
  // Continue): a caller without a valid key gets its 401 at once and puts
  // nothing on the disk.
  if (upload) {
    if (auto refused = refuse_before_body(ctx_, std::string(req[http::field::authorization]))) {
      drain_on_close_ = !parser_->is_done();
      parser_.reset();
      send_response(*refused, true);
      return;
    }
  }
  auto expect = req[http::field::expect];
  if (!expect.empty() && beast::iequals(expect, "100-continue") && !parser_->is_done()) {
    out_ += "HTTP/1.1 100 Continue\r\n\r\n";
    flush();
  }
  if (auto bs = open_body_stream(ctx_.opts.batches, method_, path_, std::string(req[http::field::content_type]))) {
    stream_ = std::move(bs);
    sparser_.emplace(std::move(*parser_));
    parser_.reset();
    arm_read(ctx_.opts.body_timeout);  // the whole body, as for one read into memory
    read_stream_body();
    return;
  }
  read_body();
}

void HttpSession::read_stream_body() {
  if (sparser_->is_done()) {
    on_stream_request(true);
    return;
  }
  if (!sbuf_) sbuf_.reset(new char[kStreamChunk]);
  auto& b = sparser_->get().body();
  b.data = sbuf_.get();
  b.size = kStreamChunk;
  http::async_read(sock_, buf_, *sparser_, [self = shared_from_this()](error_code ec, size_t) { self->on_stream_body(ec); });
}

void HttpSession::on_stream_body(error_code ec) {
  if (closed_) return;
  if (ec == http::error::need_buffer) ec = {};
  const size_t got = kStreamChunk - sparser_->get().body().size;
  if (got > 0 && !stream_->write(sbuf_.get(), got)) {
    on_stream_request(false);  // the route answers with the stream's error
    return;
  }
  if (ec) {
    disarm_read();
    stream_.reset();
    sparser_.reset();
    if (ec == http::error::body_limit)
      send_error_and_close(413, "Request body too large: the limit is " + std::to_string(ctx_.opts.max_file_bytes) +
                                    " bytes.", true);
    else if (is_parse_error(ec))
      send_error_and_close(400, "Malformed HTTP request body: " + ec.message() + ".", true);
    else
      close();
    return;
  }
  read_stream_body();
}

void HttpSession::on_stream_request(bool complete) {
  disarm_read();
  const auto& req = sparser_->get();
  keep_alive_ = complete && req.keep_alive() && req.version() >= 11 && !shutting_down_ && !ctx_.stopping();
  chunked_ = req.version() >= 11;
  head_only_ = false;
  HttpReq r = request_head(method_, req);
  r.body_stream = std::move(stream_);
  sparser_.reset();
  if (complete) r.body_stream->end();
  RouteResult rr = route_request(ctx_, r, arrival_);
  r.body_stream.reset();  // an upload not adopted is removed now
  req_id_ = rr.id;
  if (!complete) drain_on_close_ = true;  // the client is still sending: read it away so it sees the answer
  send_response(rr.resp, !complete);
}

void HttpSession::read_body() {
  if (parser_->is_done()) {
    on_request();
    return;
  }
  arm_read(ctx_.opts.body_timeout);
  http::async_read(sock_, buf_, *parser_, [self = shared_from_this()](error_code ec, size_t) { self->on_body(ec); });
}

void HttpSession::on_body(error_code ec) {
  if (closed_) return;
  disarm_read();
  if (ec == http::error::body_limit) {
    send_error_and_close(413, "Request body too large: the limit is " + std::to_string(ctx_.opts.max_body_bytes) +
                                  " bytes.",
                         true);
    return;
  }
  if (ec) {
    if (is_parse_error(ec))
      send_error_and_close(400, "Malformed HTTP request body: " + ec.message() + ".", true);
    else
      close();
    return;
  }
  on_request();
}

void HttpSession::on_request() {
  disarm_read();
  auto req = parser_->release();
  parser_.reset();
  keep_alive_ = req.keep_alive() && req.version() >= 11 && !shutting_down_ && !ctx_.stopping();
  chunked_ = req.version() >= 11;
  head_only_ = req.method() == http::verb::head;
  HttpReq r = request_head(method_, req);
  r.body = std::move(req.body());
  RouteResult rr = route_request(ctx_, r, arrival_);
  req_id_ = rr.id;
  if (rr.job) {
    start_job(std::move(rr));
  } else {
    send_response(rr.resp);
  }
}

// ---- generation -------------------------------------------------------------

void HttpSession::start_job(RouteResult rr) {
  job_ = std::move(rr.job);
  std::weak_ptr<HttpSession> weak = weak_from_this();
  auto ex = sock_.get_executor();
  auto err = job_->start([weak, ex] {
    asio::post(ex, [weak] {
      if (auto s = weak.lock()) s->on_job_events();
    });
  });
  if (err) {
    job_->account(err->status);
    HttpResp r = error_response(*err);
    for (const auto& h : job_->extra_headers()) r.headers.push_back(h);
    job_.reset();
    send_response(r);
    return;
  }
  if (job_->stream()) {
    std::vector<std::pair<std::string, std::string>> hs = {{"Cache-Control", "no-cache"}, {"X-Request-Id", job_->id()}};
    for (const auto& h : job_->extra_headers()) hs.push_back(h);
    out_ += head(200, "text/event-stream; charset=utf-8", std::nullopt, chunked_, keep_alive_, hs);
    queue_chunk(job_->stream_head());
    flush();
  }
  start_watch();
}

void HttpSession::on_job_events() {
  if (!job_ || closed_) return;
  std::string sse = job_->drain();
  if (job_->stream()) queue_chunk(sse);
  if (job_->done()) finish_job();
  flush();
}

void HttpSession::finish_job() {
  held_job_ = std::move(job_);
  job_.reset();
  // With governance on, the response's last bytes wait for its usage row to
  // commit (the writer commits at once, in groups): a client never holds a
  // finished response that a crash could leave unaccounted.
  std::weak_ptr<HttpSession> weak = weak_from_this();
  auto ex = sock_.get_executor();
  const bool held = held_job_->account(held_job_->final_status(), [weak, ex](bool) {
    asio::post(ex, [weak] {
      if (auto s = weak.lock()) s->reply_job();
    });
  });
  if (!held) reply_job();
}

void HttpSession::reply_job() {
  auto job = std::move(held_job_);
  held_job_.reset();
  if (!job || closed_) return;
  if (job->stream()) {
    queue_chunk(job->stream_tail());
    if (chunked_) out_ += "0\r\n\r\n";
    ctx_.metrics.count_response(200);
    exchange_done_ = true;
    if (!chunked_) close_after_ = true;
  } else {
    logged_ = true;  // logged below, with the token counts
    HttpResp r = job->final_response();
    for (const auto& h : job->extra_headers()) r.headers.push_back(h);
    send_response(r);
  }
  RequestLog l{job->id(), method_, path_, job->final_status(), job->prompt_tokens(), job->completion_tokens(),
               job->ttft_ms(), std::chrono::duration<double, std::milli>(Clock::now() - arrival_).count(),
               job->finish_note()};
  ctx_.log(l);
  logged_ = true;
  flush();
}

// ---- disconnect watch -------------------------------------------------------

void HttpSession::start_watch() {
  if (watching_ || closed_ || buf_.size() >= kMaxPipelined) return;
  watching_ = true;
  sock_.async_read_some(buf_.prepare(kWatchChunk),
                        [self = shared_from_this()](error_code ec, size_t n) { self->on_watch(ec, n); });
}

void HttpSession::on_watch(error_code ec, size_t n) {
  watching_ = false;
  const bool cancelled_by_us = watch_cancel_;
  watch_cancel_ = false;
  if (closed_) return;
  if (!ec) {
    buf_.commit(n);  // a pipelined request: kept for the next read
    if (job_ || held_job_) start_watch();
    else advance();
    return;
  }
  if (ec == asio::error::operation_aborted && cancelled_by_us) {
    advance();
    return;
  }
  client_gone();
}

void HttpSession::client_gone() {
  if (job_) {
    job_->cancel(499);
    job_->account(499);
    RequestLog l{job_->id(), method_, path_, 499, job_->prompt_tokens(), job_->completion_tokens(), job_->ttft_ms(),
                 std::chrono::duration<double, std::milli>(Clock::now() - arrival_).count(), "client disconnected"};
    ctx_.log(l);
    ctx_.metrics.count_response(499);
    job_.reset();
    logged_ = true;
  }
  close();
}

// ---- writing ------------------------------------------------------------------

void HttpSession::send_response(const HttpResp& r, bool close_after) {
  if (close_after) {
    keep_alive_ = false;
    close_after_ = true;
  }
  if (!keep_alive_) close_after_ = true;
  // A 304 has no body and no length of its own.
  const size_t length = r.body_source ? r.body_source->size() : r.body.size();
  out_ += head(r.status, r.status == 304 ? "" : r.content_type,
               r.status == 304 ? std::nullopt : std::optional<size_t>(length), false, keep_alive_, r.headers);
  if (!head_only_) out_ += r.body;
  if (!head_only_ && r.body_source && length > 0) src_ = r.body_source;  // sent by flush() as the socket takes it
  exchange_done_ = !src_;
  ctx_.metrics.count_response(r.status);
  if (!logged_ && path_ != "/health" && path_ != "/livez" && !(r.status == 200 && path_ == "/metrics")) {
    RequestLog l{req_id_, method_, path_, r.status, -1, -1, -1,
                 std::chrono::duration<double, std::milli>(Clock::now() - arrival_).count(), ""};
    if (r.status >= 400) l.note = error_message_of(r.body);
    ctx_.log(l);
  }
  logged_ = true;
  flush();
}

void HttpSession::send_error_and_close(int status, const std::string& message, bool drain) {
  drain_on_close_ = drain;
  if (method_.empty()) method_ = "-";
  if (path_.empty()) path_ = "-";
  parser_.reset();
  send_response(error_response({status, message, error_type_for_status(status), "", ""}), true);
}

void HttpSession::queue_chunk(const std::string& data) {
  if (data.empty()) return;
  if (!chunked_) {
    out_ += data;
    return;
  }
  char len[32];
  std::snprintf(len, sizeof len, "%zx\r\n", data.size());
  out_ += len;
  out_ += data;
  out_ += "\r\n";
}

void HttpSession::refill() {
  constexpr size_t kPiece = 256 << 10;
  out_.resize(kPiece);
  size_t n = 0;
  try {
    n = src_->read(out_.data(), kPiece);
  } catch (const std::exception&) {
    out_.clear();
    src_.reset();
    close();  // the client sees a body shorter than its Content-Length
    return;
  }
  out_.resize(n);
  if (n == 0) {  // the whole body is queued
    src_.reset();
    exchange_done_ = true;
  }
}

void HttpSession::flush() {
  if (closed_) return;
  if (writing_) return;
  if (out_.empty() && src_) {
    refill();
    if (closed_) return;
  }
  if (out_.empty()) {
    advance();
    return;
  }
  writing_ = true;
  wbuf_.swap(out_);
  out_.clear();
  arm_write();
  asio::async_write(sock_, asio::buffer(wbuf_),
                    [self = shared_from_this()](error_code ec, size_t) { self->on_write(ec); });
}

void HttpSession::on_write(error_code ec) {
  writing_ = false;
  disarm_write();
  wbuf_.clear();
  if (closed_) return;
  if (ec) {
    client_gone();
    return;
  }
  flush();
}

// Moves on once a response has been written completely.
void HttpSession::advance() {
  if (closed_ || writing_ || !out_.empty() || !exchange_done_) return;
  if (watching_) {
    if (!watch_cancel_) {
      watch_cancel_ = true;
      error_code ec;
      sock_.cancel(ec);  // nothing else is pending now
    }
    return;
  }
  exchange_done_ = false;
  if (close_after_ || !keep_alive_ || shutting_down_ || ctx_.stopping()) {
    if (drain_on_close_)
      linger_close();
    else
      graceful_close();
    return;
  }
  read_request();
}

// ---- deadlines ------------------------------------------------------------------

void HttpSession::arm_read(std::chrono::milliseconds d) {
  const uint64_t gen = ++read_gen_;
  read_timer_.expires_after(d);
  read_timer_.async_wait([self = shared_from_this(), gen](error_code ec) {
    if (!ec && gen == self->read_gen_) self->on_timeout();
  });
}

void HttpSession::disarm_read() {
  ++read_gen_;
  read_timer_.cancel();
}

void HttpSession::arm_write() {
  const uint64_t gen = ++write_gen_;
  write_timer_.expires_after(ctx_.opts.write_timeout);
  write_timer_.async_wait([self = shared_from_this(), gen](error_code ec) {
    if (!ec && gen == self->write_gen_) self->on_timeout();
  });
}

void HttpSession::disarm_write() {
  ++write_gen_;
  write_timer_.cancel();
}

void HttpSession::on_timeout() {
  if (closed_) return;
  ctx_.metrics.timeouts_total.fetch_add(1);
  if (job_) {
    client_gone();
    return;
  }
  close();
}

// ---- closing ----------------------------------------------------------------------

void HttpSession::graceful_close() {
  if (closed_) return;
  error_code ec;
  sock_.shutdown(tcp::socket::shutdown_send, ec);
  close();
}

// After an early error (413 ...): stop sending, read and discard what the
// client still sends (bounded), so it gets to read the response.
void HttpSession::linger_close() {
  if (closed_) return;
  error_code ec;
  sock_.shutdown(tcp::socket::shutdown_send, ec);
  arm_read(kLingerTime);
  sock_.async_read_some(asio::buffer(discard_),
                        [self = shared_from_this()](error_code e, size_t n) { self->on_linger(e, n); });
}

void HttpSession::on_linger(error_code ec, size_t n) {
  if (closed_) return;
  lingered_ += n;
  if (ec || lingered_ > kMaxLinger) {
    close();
    return;
  }
  sock_.async_read_some(asio::buffer(discard_),
                        [self = shared_from_this()](error_code e, size_t m) { self->on_linger(e, m); });
}

void HttpSession::close() {
  if (closed_) return;
  closed_ = true;
  if (job_) {
    job_->cancel(shutting_down_ ? 503 : 499);
    job_->account(shutting_down_ ? 503 : 499);
    if (!logged_) {
      RequestLog l{job_->id(), method_, path_, shutting_down_ ? 503 : 499, job_->prompt_tokens(),
                   job_->completion_tokens(), job_->ttft_ms(),
                   std::chrono::duration<double, std::milli>(Clock::now() - arrival_).count(), "connection closed"};
      ctx_.log(l);
      logged_ = true;
    }
    job_.reset();
  }
  disarm_read();
  disarm_write();
  error_code ec;
  sock_.close(ec);
}

}  // namespace ms
