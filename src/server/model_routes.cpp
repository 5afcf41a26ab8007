// model_routes.cpp — /v1/models and /admin/v1/models (see model_routes.h).
#include "server/model_routes.h"

#include <chrono>
#include <cstdlib>

#include "server/api_routes.h"
#include "server/openai_response.h"
#include "server/query_string.h"

namespace ms {

using json = nlohmann::json;

json model_status_json(const ModelStatus& s) {
  json j = model_json(s.name, s.created, s.max_context);
  j["state"] = model_state_name(s.state);
  if (!s.error.empty()) j["error"] = s.error;
  if (s.endpoint) j["endpoint"] = true;
  return j;
}

json models_list_json(const ModelRegistry& reg, const std::function<bool(const std::string&)>& allowed) {
  json data = json::array();
  for (const ModelStatus& s : reg.list())
    if (allowed(s.name)) data.push_back(model_status_json(s));
  return json{{"object", "list"}, {"data", data}};
}

namespace {

HttpResp json_resp(const json& j, int status = 200) {
  HttpResp r;
  r.status = status;
  r.body = dump_json(j);
  return r;
}

HttpResp not_found(const std::string& what) {
  return error_response({404, what, "not_found_error", "", "model_not_found"});
}

// ?wait=S (seconds, 0..600) from the target; 0 when absent.
double wait_seconds(const std::string& target) {
  if (!has_query_param(target, "wait")) return 0;
  const std::string v = query_param(target, "wait");
  char* end = nullptr;
  const double w = std::strtod(v.c_str(), &end);
  if (v.empty() || !end || *end != '\0' || !(w >= 0 && w <= 600))
    throw ApiException(400, "wait: expected seconds in 0..600", "wait", "invalid_value");
  return w;
}

}  // namespace

HttpResp models_admin_request(ModelRegistry& reg, const HttpReq& req, const std::string& path) {
  const std::string base = "/admin/v1/models";
  if (path == base || path == base + "/") {
    if (req.method != "GET" && req.method != "HEAD")
      return error_response({405, "Use GET on " + path + ".", "invalid_request_error", "", "method_not_allowed"});
    json data = json::array();
    for (const ModelStatus& s : reg.list()) {
      json j = model_status_json(s);
      if (!s.endpoint) {
        j["autoload"] = s.autoload;
        j["pinned"] = s.pinned;
        j["memory_bytes"] = s.memory_bytes;
      }
      data.push_back(j);
    }
    return json_resp(json{{"object", "list"}, {"data", data}, {"used_bytes", reg.used_bytes()}});
  }
  // /admin/v1/models/{name}/{load|unload}
  const std::string rest = path.substr(base.size() + 1);
  const size_t slash = rest.rfind('/');
  if (slash == std::string::npos || slash == 0)
    return error_response({404, "Unknown route: " + req.method + " " + path + ".", "not_found_error", "", "unknown_route"});
  const std::string name = rest.substr(0, slash), action = rest.substr(slash + 1);
  if (action != "load" && action != "unload")
    return error_response({404, "Unknown route: " + req.method + " " + path + ".", "not_found_error", "", "unknown_route"});
  if (req.method != "POST")
    return error_response({405, "Use POST on " + path + ".", "invalid_request_error", "", "method_not_allowed"});
  if (!reg.is_model(name)) return not_found("The model '" + name + "' does not exist.");
  if (action == "unload") {
    std::string why;
    if (!reg.unload(name, why)) return error_response({409, why, "invalid_request_error", "", "model_busy"});
    return json_resp(model_status_json(*reg.status(name)));
  }
  const double wait = wait_seconds(req.target);
  std::optional<ModelStatus> s = reg.load_async(name);
  if (wait > 0 && s && s->state == ModelState::Loading) {
    reg.wait_loaded(name, std::chrono::milliseconds(static_cast<int64_t>(wait * 1000)));
    s = reg.status(name);
  }
  if (s->state == ModelState::Failed)
    return error_response({500, "The model '" + name + "' failed to load: " + s->error, "server_error", "",
                           "model_load_failed"});
  return json_resp(model_status_json(*s), s->state == ModelState::Loaded ? 200 : 202);
}

}  // namespace ms
