// http_server.cpp — listener, I/O threads and lifecycle (see http_server.h).
#include "server/http_server.h"

#include <condition_variable>
#include <csignal>
#include <cstdlib>
#include <cstdio>
#include <mutex>
#include <thread>
#include <unordered_map>
#include <vector>

#include <utility>  // before Asio: Boost 1.74 awaitable.hpp needs std::exchange in C++20
#include <boost/asio.hpp>

#include "core/error.h"
#include "server/api_context.h"
#include "server/http_session.h"

namespace ms {

namespace asio = boost::asio;
using tcp = asio::ip::tcp;
using boost::system::error_code;

struct Server::Impl : SessionRegistry {
  explicit Impl(ServerOptions o) : ctx(std::move(o)) {}

  // Declared first so that it outlives the io_context (sessions report to it
  // from their destructors, which may run when the io_context is destroyed).
  std::mutex mu;
  std::condition_variable cv;
  std::unordered_map<uint64_t, std::weak_ptr<HttpSession>> sessions;
  uint64_t next_id = 1;
  bool stop_requested = false;

  ApiContext ctx;
  asio::io_context ioc;
  std::optional<asio::executor_work_guard<asio::io_context::executor_type>> work;
  tcp::acceptor acceptor{ioc};
  asio::steady_timer accept_retry{ioc};
  std::unique_ptr<asio::signal_set> signals;
  std::vector<std::thread> threads;
  uint16_t bound_port = 0;
  bool started = false;
  bool stopped = false;

  void session_closed(uint64_t id) override {
    std::lock_guard<std::mutex> lk(mu);
    sessions.erase(id);
    cv.notify_all();
  }

  void do_accept() {
    acceptor.async_accept(asio::make_strand(ioc), [this](error_code ec, tcp::socket sock) {
      if (ec == asio::error::operation_aborted || !acceptor.is_open()) return;
      if (ec) {
        // Out of file descriptors and the like: back off instead of spinning.
        accept_retry.expires_after(std::chrono::milliseconds(50));
        accept_retry.async_wait([this](error_code e) {
          if (!e) do_accept();
        });
        return;
      }
      std::shared_ptr<HttpSession> s;
      bool busy;
      {
        std::lock_guard<std::mutex> lk(mu);
        const uint64_t id = next_id++;
        busy = sessions.size() >= static_cast<size_t>(ctx.opts.max_connections);
        s = std::make_shared<HttpSession>(std::move(sock), ctx, *this, id);
        sessions.emplace(id, s);
      }
      if (busy)
        s->reject_busy();
      else
        s->start();
      do_accept();
    });
  }

  void request_stop() {
    std::lock_guard<std::mutex> lk(mu);
    stop_requested = true;
    cv.notify_all();
  }

  std::vector<std::shared_ptr<HttpSession>> live_sessions() {
    std::vector<std::shared_ptr<HttpSession>> out;
    std::lock_guard<std::mutex> lk(mu);
    for (auto& [id, w] : sessions)
      if (auto s = w.lock()) out.push_back(std::move(s));
    return out;
  }
};

Server::Server(ServerOptions opts) : impl_(std::make_unique<Impl>(std::move(opts))) {}

Server::~Server() { stop(); }

void Server::start() {
  Impl& m = *impl_;
  if (m.started) return;
  const auto& o = m.ctx.opts;
  error_code ec;
  auto addr = asio::ip::make_address(o.host, ec);
  if (ec) throw Error(ErrorKind::BadInput, "--host: '" + o.host + "' is not an IP address");
  tcp::endpoint ep(addr, o.port);
  auto fail = [&](const char* what) {
    throw Error(ErrorKind::BadInput, std::string("cannot listen on ") + o.host + ":" + std::to_string(o.port) + ": " +
                                         what + ": " + ec.message());
  };
  m.acceptor.open(ep.protocol(), ec);
  if (ec) fail("open");
  m.acceptor.set_option(asio::socket_base::reuse_address(true), ec);
  m.acceptor.bind(ep, ec);
  if (ec) fail("bind");
  m.acceptor.listen(asio::socket_base::max_listen_connections, ec);
  if (ec) fail("listen");
  m.bound_port = m.acceptor.local_endpoint().port();
  m.work.emplace(m.ioc.get_executor());
  m.do_accept();
  const int n = std::max(1, o.io_threads);
  for (int i = 0; i < n; ++i)
    m.threads.emplace_back([&m] {
      for (;;) {
        try {
          m.ioc.run();
          return;
        } catch (const std::exception& e) {
          // A handler threw: log and keep serving the other connections.
          std::fprintf(stderr, "moeserve: error: I/O handler: %s\n", e.what());
        }
      }
    });
  m.started = true;
}

uint16_t Server::port() const { return impl_->bound_port; }

void Server::stop_on_signals() {
  Impl& m = *impl_;
  if (m.signals) return;
  m.signals = std::make_unique<asio::signal_set>(m.ioc, SIGINT, SIGTERM);
  m.signals->async_wait([&m](error_code ec, int) {
    if (ec) return;
    m.request_stop();
    // A second signal while shutting down: leave at once.
    m.signals->async_wait([](error_code e, int) {
      if (e) return;
      std::fputs("moeserve: second signal, exiting now\n", stderr);
      std::_Exit(130);
    });
  });
}

void Server::set_ready(const ServerBackend& backend) { impl_->ctx.set_ready(backend); }
void Server::set_ready() { impl_->ctx.set_ready(); }
ApiContext& Server::api_context() { return impl_->ctx; }

void Server::request_stop() { impl_->request_stop(); }

bool Server::stop_requested() const {
  std::lock_guard<std::mutex> lk(impl_->mu);
  return impl_->stop_requested;
}

void Server::wait_for_stop_request() {
  std::unique_lock<std::mutex> lk(impl_->mu);
  impl_->cv.wait(lk, [&] { return impl_->stop_requested; });
}

bool Server::drain(std::chrono::milliseconds timeout) {
  Impl& m = *impl_;
  if (m.stopped || !m.started) return true;
  m.ctx.set_stopping();  // /health 503; new API requests 503 with Connection: close
  for (auto& s : m.live_sessions()) s->drain();
  const auto deadline = std::chrono::steady_clock::now() + timeout;
  while (m.ctx.metrics.jobs_in_flight.load() > 0) {
    if (std::chrono::steady_clock::now() >= deadline) return false;
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
  }
  return true;
}

void Server::stop() {
  Impl& m = *impl_;
  if (m.stopped) return;
  m.stopped = true;
  m.ctx.set_stopping();
  if (!m.started) return;
  // 1. Stop accepting.
  asio::post(m.ioc, [&m] {
    error_code ec;
    m.acceptor.close(ec);
    m.accept_retry.cancel();
  });
  // 2. Finish or cancel what is in flight; idle connections close now.
  for (auto& s : m.live_sessions()) s->shutdown();
  {
    std::unique_lock<std::mutex> lk(m.mu);
    m.cv.wait_for(lk, m.ctx.opts.shutdown_grace, [&] { return m.sessions.empty(); });
  }
  // 3. Close whatever is left, then let the I/O threads run out.
  for (auto& s : m.live_sessions()) s->force_close();
  m.work.reset();
  {
    std::unique_lock<std::mutex> lk(m.mu);
    m.cv.wait_for(lk, std::chrono::seconds(2), [&] { return m.sessions.empty(); });
  }
  m.ioc.stop();
  for (auto& t : m.threads)
    if (t.joinable()) t.join();
  m.threads.clear();
  m.ctx.set_unready();
}

}  // namespace ms
