// static_routes.h — the playground page's files over HTTP (GET/HEAD / and
// /playground/*), with ETag revalidation (304) and the security headers of
// playground::security_headers(). Public: the page holds no secret; the API
// calls it makes carry the user's key.
#pragma once
#include <optional>

#include "server/api_context.h"
#include "server/http_types.h"

namespace ms {

// The response for a playground path, or nullopt when the path is not one
// (or the playground is off: --no-playground).
std::optional<HttpResp> playground_response(const ApiContext& ctx, const HttpReq& req);

}  // namespace ms
