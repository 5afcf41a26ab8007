// model_routes.h — the model endpoints over the ModelRegistry:
//
//   GET  /v1/models, /v1/models/{id}          each with "state" (loaded | loading | unloaded | failed)
//   GET  /admin/v1/models                     every model and endpoint, memory estimates, the budget
//   POST /admin/v1/models/{name}/load[?wait=S]  200 loaded | 202 loading | 500 failed (the error)
//   POST /admin/v1/models/{name}/unload       200 | 404 unknown | 409 loading or not unloadable
//
// The admin ones are reached only by an operator (role 'manage' with
// governance, the --api-key holder without); api_routes.cpp checks that.
#pragma once
#include <functional>
#include <string>

#include <nlohmann/json.hpp>

#include "server/http_types.h"
#include "server/model_registry.h"

namespace ms {

// allowed(name): whether the caller may use the model (governance grants).
nlohmann::json models_list_json(const ModelRegistry& reg, const std::function<bool(const std::string&)>& allowed);
nlohmann::json model_status_json(const ModelStatus& s);
// Path under /admin/v1/models; any other: 404.
HttpResp models_admin_request(ModelRegistry& reg, const HttpReq& req, const std::string& path);

}  // namespace ms
