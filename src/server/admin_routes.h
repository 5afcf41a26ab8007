// admin_routes.h — the governance admin API under /admin/v1/ (manage keys only;
// the caller checks the role), and GET /v1/usage/me.
//
//   GET    /admin/v1/keys                 list (never secrets or hashes)
//   POST   /admin/v1/keys                 {name, models, role, group, qpm, tpm, expires_in} -> {id, key, ...}
//   DELETE /admin/v1/keys/{id}            revoke (404 unknown id)
//   GET    /admin/v1/limits               list
//   POST   /admin/v1/limits               {scope: model|default|group, target, qpm, tpm}
//   GET    /admin/v1/prices               list
//   POST   /admin/v1/prices               {model, input_per_mtok, output_per_mtok}
//   GET    /admin/v1/usage?by=key,model,day&since=D&until=D[&key_id=ID]   JSON array of totals
//
// Bad input: 400 with an OpenAI error body; the store unreachable: 503.
#pragma once
#include <string>

#include "governance/governor.h"
#include "server/http_types.h"

namespace ms {

HttpResp admin_request(gov::Governor& g, const HttpReq& req, const std::string& path);

}  // namespace ms
