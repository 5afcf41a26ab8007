// playground.h — the playground page's files (src/playground/assets),
// compiled into the binary, with what an HTTP layer needs to serve them:
// content type, a strong ETag and the security headers. No HTTP or JSON here.
//
// URLs: "/" and "/playground" (and "/playground/") are index.html; every other
// asset is "/playground/<name>".
#pragma once
#include <cstddef>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace ms::playground {

struct Asset {
  std::string_view name;          // "app.js"
  std::string_view content_type;  // "text/javascript; charset=utf-8"
  std::string_view body;
  std::string etag;               // quoted, strong: "\"<16 hex digits>\""
};

// The asset a URL path names, or null.
const Asset* find(std::string_view path);
// Every asset (for tests and the page weight).
const std::vector<Asset>& all();
// Headers every playground response carries: a strict Content-Security-Policy
// (nothing inline, nothing from elsewhere), nosniff, no framing, no referrer,
// and Cache-Control: no-cache (revalidate with the ETag: 304 when unchanged).
const std::vector<std::pair<std::string, std::string>>& security_headers();
// Whether an If-None-Match header value matches the ETag ("*", a list, W/ prefixes).
bool etag_matches(std::string_view if_none_match, std::string_view etag);

namespace detail {
struct EmbeddedFile {
  const char* name;
  const unsigned char* data;
  std::size_t size;
};
extern const EmbeddedFile kFiles[];
extern const std::size_t kNumFiles;
}  // namespace detail

}  // namespace ms::playground
