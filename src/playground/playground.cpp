// playground.cpp — see playground.h.
#include "playground/playground.h"

#include <cstdint>
#include <cstdio>

namespace ms::playground {

namespace {

std::string_view type_of(std::string_view name) {
  auto ends = [&](std::string_view ext) {
    return name.size() >= ext.size() && name.substr(name.size() - ext.size()) == ext;
  };
  if (ends(".html")) return "text/html; charset=utf-8";
  if (ends(".css")) return "text/css; charset=utf-8";
  if (ends(".js")) return "text/javascript; charset=utf-8";
  if (ends(".svg")) return "image/svg+xml";
  if (ends(".png")) return "image/png";
  return "application/octet-stream";
}

std::string etag_of(std::string_view body) {
  uint64_t h = 1469598103934665603ull;  // FNV-1a 64
  for (unsigned char c : body) {
    h ^= c;
    h *= 1099511628211ull;
  }
  char buf[24];
  std::snprintf(buf, sizeof buf, "\"%016llx\"", static_cast<unsigned long long>(h));
  return buf;
}

}  // namespace

const std::vector<Asset>& all() {
  static const std::vector<Asset> assets = [] {
    std::vector<Asset> v;
    for (std::size_t i = 0; i < detail::kNumFiles; ++i) {
      const auto& f = detail::kFiles[i];
      std::string_view body(reinterpret_cast<const char*>(f.data), f.size);
      v.push_back(Asset{f.name, type_of(f.name), body, etag_of(body)});
    }
    return v;
  }();
  return assets;
}

const Asset* find(std::string_view path) {
  std::string_view name;
  if (path == "/" || path == "/playground" || path == "/playground/") {
    name = "index.html";
  } else if (path.rfind("/playground/", 0) == 0) {
    name = path.substr(12);
  } else {
    return nullptr;
  }
  for (const Asset& a : all())
    if (a.name == name) return &a;
  return nullptr;
}

const std::vector<std::pair<std::string, std::string>>& security_headers() {
  static const std::vector<std::pair<std::string, std::string>> h = {
      {"Content-Security-Policy",
       "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; connect-src 'self'; "
       "object-src 'none'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'"},
      {"X-Content-Type-Options", "nosniff"},
      {"X-Frame-Options", "DENY"},
      {"Referrer-Policy", "no-referrer"},
      {"Cache-Control", "no-cache"},
  };
  return h;
}

bool etag_matches(std::string_view inm, std::string_view etag) {
  if (inm.empty()) return false;
  size_t i = 0;
  while (i < inm.size()) {
    while (i < inm.size() && (inm[i] == ' ' || inm[i] == ',' || inm[i] == '\t')) ++i;
    size_t j = inm.find(',', i);
    if (j == std::string_view::npos) j = inm.size();
    std::string_view tag = inm.substr(i, j - i);
    while (!tag.empty() && (tag.back() == ' ' || tag.back() == '\t')) tag.remove_suffix(1);
    if (tag == "*") return true;
    if (tag.rfind("W/", 0) == 0) tag.remove_prefix(2);  // weak comparison, as If-None-Match uses
    if (!tag.empty() && tag == etag) return true;
    i = j;
  }
  return false;
}

}  // namespace ms::playground
