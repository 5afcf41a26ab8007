// static_routes.cpp — see static_routes.h.
#include "server/static_routes.h"

#include "playground/playground.h"

namespace ms {

std::optional<HttpResp> playground_response(const ApiContext& ctx, const HttpReq& req) {
  if (!ctx.opts.playground) return std::nullopt;
  const std::string path = req.target.substr(0, req.target.find('?'));
  const playground::Asset* a = playground::find(path);
  if (!a) return std::nullopt;
  HttpResp r;
  r.headers = playground::security_headers();
  if (req.method != "GET" && req.method != "HEAD") {
    r.status = 405;
    r.content_type = "text/plain; charset=utf-8";
    r.body = "Method not allowed; use GET.\n";
    r.headers.emplace_back("Allow", "GET, HEAD");
    return r;
  }
  r.headers.emplace_back("ETag", a->etag);
  if (playground::etag_matches(req.if_none_match, a->etag)) {
    r.status = 304;
    return r;
  }
  r.content_type = std::string(a->content_type);
  r.body = std::string(a->body);
  return r;
}

}  // namespace ms
