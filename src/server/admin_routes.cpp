// admin_routes.cpp — /admin/v1/ (see admin_routes.h).
#include "server/admin_routes.h"

#include <cctype>

#include <nlohmann/json.hpp>

#include "core/error.h"
#include "governance/admin.h"
#include "server/openai_response.h"
#include "server/openai_schema.h"
#include "server/query_string.h"

namespace ms {

using json = nlohmann::json;

namespace {

HttpResp ok(const json& j) {
  HttpResp r;
  r.body = j.dump(-1, ' ', false, json::error_handler_t::replace);
  return r;
}

HttpResp fail(int status, const std::string& msg, const std::string& code, const std::string& param = "") {
  HttpResp r;
  r.status = status;
  r.body = dump_json(error_json({status, msg, error_type_for_status(status), param, code}));
  if (status == 503) r.headers.emplace_back("Retry-After", "1");
  return r;
}

json body_object(const std::string& body) {
  json j = json::parse(body, nullptr, false);
  if (j.is_discarded() || !j.is_object()) bad_input("the request body must be a JSON object");
  return j;
}

std::string get_str(const json& j, const char* k, const std::string& def = "") {
  if (!j.contains(k) || j[k].is_null()) return def;
  if (!j[k].is_string()) bad_input(std::string("'") + k + "' must be a string");
  return j[k].get<std::string>();
}

int64_t get_limit(const json& j, const char* k) {
  if (!j.contains(k) || j[k].is_null()) return gov::kUnset;
  if (!j[k].is_number_integer()) bad_input(std::string("'") + k + "' must be an integer or null");
  if (j[k].is_number_unsigned() && j[k].get<uint64_t>() > static_cast<uint64_t>(gov::kMaxLimit))
    bad_input(std::string("'") + k + "' is out of range");
  const int64_t v = j[k].get<int64_t>();
  if (v < 0) bad_input(std::string("'") + k + "' must be >= 0 (or null for no limit)");
  return gov::check_limit(v, k);
}

double get_price(const json& j, const char* k) {
  if (!j.contains(k) || !j[k].is_number()) bad_input(std::string("'") + k + "' must be a number");
  return j[k].get<double>();
}

HttpResp dispatch(gov::Governor& g, const HttpReq& req, const std::string& path) {
  gov::Store& st = g.store();
  const std::string& m = req.method;
  if (path == "/admin/v1/keys") {
    if (m == "GET") {
      json data = json::array();
      for (const auto& k : st.list_keys()) data.push_back(gov::key_json(k));
      return ok({{"object", "list"}, {"data", data}});
    }
    if (m == "POST") {
      json b = body_object(req.body);
      gov::KeySpec s;
      s.name = get_str(b, "name");
      if (b.contains("models") && b["models"].is_array()) {
        std::string joined;
        for (const auto& x : b["models"]) {
          if (!x.is_string() || x.get<std::string>().find(',') != std::string::npos)
            bad_input("'models' must be an array of model names");
          joined += (joined.empty() ? "" : ",") + x.get<std::string>();
        }
        s.models = joined;
      } else {
        s.models = get_str(b, "models", "*");
      }
      s.role = get_str(b, "role", "query");
      s.group = get_str(b, "group");
      s.qpm = get_limit(b, "qpm");
      s.tpm = get_limit(b, "tpm");
      s.expires_in = get_str(b, "expires_in");
      gov::CreatedKey c = gov::create_key(st, s);
      g.reload();
      json j = gov::key_json(c.record);
      j["key"] = c.secret;
      return ok(j);
    }
    return fail(405, "Use GET or POST on /admin/v1/keys.", "method_not_allowed");
  }
  if (path.rfind("/admin/v1/keys/", 0) == 0) {
    const std::string id = path.substr(15);
    if (m != "DELETE") return fail(405, "Use DELETE /admin/v1/keys/{id} to revoke a key.", "method_not_allowed");
    if (!st.revoke_key(id, gov::now_ms())) return fail(404, "No API key with id '" + id + "'.", "key_not_found");
    g.reload();
    return ok({{"id", id}, {"revoked", true}});
  }
  if (path == "/admin/v1/limits") {
    if (m == "GET") {
      json data = json::array();
      for (const auto& l : st.list_limits()) data.push_back(gov::limit_json(l));
      return ok({{"object", "list"}, {"data", data}});
    }
    if (m == "POST") {
      json b = body_object(req.body);
      gov::LimitRecord l = gov::make_limit(get_str(b, "scope"), get_str(b, "target"), get_limit(b, "qpm"),
                                           get_limit(b, "tpm"), get_limit(b, "provisioned_tokens_per_s"));
      st.set_limit(l);
      g.reload();
      return ok(gov::limit_json(l));
    }
    return fail(405, "Use GET or POST on /admin/v1/limits.", "method_not_allowed");
  }
  if (path == "/admin/v1/prices") {
    if (m == "GET") {
      json data = json::array();
      for (const auto& p : st.list_prices())
        data.push_back({{"model", p.model}, {"input_per_mtok", p.input_per_mtok}, {"output_per_mtok", p.output_per_mtok}});
      return ok({{"object", "list"}, {"data", data}});
    }
    if (m == "POST") {
      json b = body_object(req.body);
      gov::Price p = gov::make_price(get_str(b, "model"), get_price(b, "input_per_mtok"), get_price(b, "output_per_mtok"));
      st.set_price(p);
      g.reload();
      return ok({{"model", p.model}, {"input_per_mtok", p.input_per_mtok}, {"output_per_mtok", p.output_per_mtok}});
    }
    return fail(405, "Use GET or POST on /admin/v1/prices.", "method_not_allowed");
  }
  if (path == "/admin/v1/usage") {
    if (m != "GET") return fail(405, "Use GET on /admin/v1/usage.", "method_not_allowed");
    gov::UsageQuery q;
    gov::parse_group_by(query_param(req.target, "by"), q);
    if (auto s = query_param(req.target, "since"); !s.empty()) q.since_ms = gov::parse_time_ms(s, "since");
    if (auto s = query_param(req.target, "until"); !s.empty()) q.until_ms = gov::parse_time_ms(s, "until");
    q.key_id = query_param(req.target, "key_id");
    q.context = gov::parse_usage_context(query_param(req.target, "context"));
    json arr = json::array();
    for (const auto& t : st.query_usage(q)) arr.push_back(gov::usage_json(t, q));
    return ok(arr);
  }
  return fail(404, "Unknown admin route: " + m + " " + path + ".", "unknown_route");
}

}  // namespace

HttpResp admin_request(gov::Governor& g, const HttpReq& req, const std::string& path) {
  try {
    return dispatch(g, req, path);
  } catch (const Error& e) {
    if (e.kind() == ErrorKind::BadInput) return fail(400, e.what(), "invalid_value");
    return fail(503, std::string("The governance state store is unavailable: ") + e.what(), "state_unavailable");
  } catch (const std::exception& e) {
    return fail(503, std::string("The governance state store is unavailable: ") + e.what(), "state_unavailable");
  }
}

}  // namespace ms
