// http_test_client.h — a minimal blocking HTTP/1.1 client for the in-process
// server tests: one request with "Connection: close", read until the server
// closes, split into status, head and body.
#pragma once
#include <gtest/gtest.h>

#include <string>
#include <utility>  // before Asio (Boost 1.74 in C++20)
#include <boost/asio.hpp>

namespace ms::test {

struct Reply {
  int status = 0;
  std::string head;
  std::string body;
  std::string header(const std::string& name) const {
    const std::string key = "\r\n" + name + ": ";
    auto p = head.find(key);
    if (p == std::string::npos) return "";
    p += key.size();
    return head.substr(p, head.find("\r\n", p) - p);
  }
};

inline Reply fetch(uint16_t port, const std::string& method, const std::string& path, const std::string& body = "",
                   const std::string& extra_headers = "") {
  namespace asio = boost::asio;
  using tcp = asio::ip::tcp;
  asio::io_context io;
  tcp::socket s(io);
  s.connect(tcp::endpoint(asio::ip::make_address("127.0.0.1"), port));
  std::string req = method + " " + path + " HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n" + extra_headers +
                    "Content-Length: " + std::to_string(body.size()) + "\r\n\r\n" + body;
  asio::write(s, asio::buffer(req));
  std::string raw;
  boost::system::error_code ec;
  char buf[4096];
  for (;;) {
    size_t n = s.read_some(asio::buffer(buf), ec);
    raw.append(buf, n);
    if (ec) break;
  }
  Reply r;
  auto sp = raw.find(' ');
  if (sp != std::string::npos) r.status = std::stoi(raw.substr(sp + 1, 3));
  auto end = raw.find("\r\n\r\n");
  if (end != std::string::npos) {
    r.head = raw.substr(0, end);
    r.body = raw.substr(end + 4);
  }
  return r;
}

}  // namespace ms::test
