// batch_routes.cpp — Files and Batch API endpoints (see batch_routes.h).
#include "server/batch_routes.h"

#include <algorithm>
#include <cctype>

#include <nlohmann/json.hpp>

#include "batch/batch_service.h"
#include "core/error.h"
#include "server/api_routes.h"
#include "server/openai_response.h"
#include "server/openai_schema.h"
#include "server/query_string.h"

namespace ms {

using json = nlohmann::json;

namespace {

[[noreturn]] void fail(int status, const std::string& code, const std::string& message, const std::string& param = "") {
  throw batch::Failure(batch::ApiFailure{status, code, message, param});
}

HttpResp json_resp(const json& j) {
  HttpResp r;
  r.body = dump_json(j);
  return r;
}

json or_null(int64_t t) { return t ? json(t) : json(nullptr); }
json or_null(const std::string& s) { return s.empty() ? json(nullptr) : json(s); }

json file_json(const batch::FileRec& f) {
  return json{{"id", f.id},           {"object", "file"},     {"bytes", f.bytes},       {"created_at", f.created_at},
              {"filename", f.filename}, {"purpose", f.purpose}, {"status", "processed"}, {"expires_at", nullptr},
              {"status_details", nullptr}};
}

json batch_json(const batch::BatchRec& b) {
  json errors = nullptr;
  if (!b.errors.empty()) errors = json::parse(b.errors, nullptr, false);
  json metadata = nullptr;
  if (!b.metadata.empty()) metadata = json::parse(b.metadata, nullptr, false);
  return json{{"id", b.id},
              {"object", "batch"},
              {"endpoint", b.endpoint},
              {"errors", errors.is_discarded() ? json(nullptr) : errors},
              {"input_file_id", b.input_file_id},
              {"completion_window", b.completion_window},
              {"status", b.status},
              {"output_file_id", or_null(b.output_file_id)},
              {"error_file_id", or_null(b.error_file_id)},
              {"created_at", b.created_at},
              {"in_progress_at", or_null(b.in_progress_at)},
              {"expires_at", or_null(b.expires_at)},
              {"finalizing_at", or_null(b.finalizing_at)},
              {"completed_at", or_null(b.completed_at)},
              {"failed_at", or_null(b.failed_at)},
              {"expired_at", or_null(b.expired_at)},
              {"cancelling_at", or_null(b.cancelling_at)},
              {"cancelled_at", or_null(b.cancelled_at)},
              {"request_counts", {{"total", b.total}, {"completed", b.completed}, {"failed", b.failed}}},
              {"metadata", metadata.is_discarded() ? json(nullptr) : metadata}};
}

template <class T, class F>
json list_json(const std::vector<T>& items, F to_json, bool has_more) {
  json data = json::array();
  for (const T& x : items) data.push_back(to_json(x));
  return json{{"object", "list"},
              {"data", data},
              {"first_id", items.empty() ? json(nullptr) : json(items.front().id)},
              {"last_id", items.empty() ? json(nullptr) : json(items.back().id)},
              {"has_more", has_more}};
}

int64_t limit_param(const HttpReq& req, int64_t def, int64_t max) {
  std::string v = query_param(req.target, "limit");
  if (v.empty()) return def;
  char* end = nullptr;
  long long n = std::strtoll(v.c_str(), &end, 10);
  if (*end || n < 1 || n > max)
    fail(400, "invalid_value", "limit must be an integer in [1, " + std::to_string(max) + "].", "limit");
  return n;
}

// The value of `key` in a header parameter list (boundary=..., name="...").
std::string header_param(const std::string& h, const std::string& key) {
  std::string lower = h;
  std::transform(lower.begin(), lower.end(), lower.begin(), [](unsigned char c) { return std::tolower(c); });
  size_t p = 0;
  while ((p = lower.find(key + "=", p)) != std::string::npos) {
    if (p == 0 || lower[p - 1] == ';' || lower[p - 1] == ' ' || lower[p - 1] == '\t') break;
    p += key.size();
  }
  if (p == std::string::npos) return "";
  p += key.size() + 1;
  if (p < h.size() && h[p] == '"') {
    size_t e = h.find('"', p + 1);
    return h.substr(p + 1, e == std::string::npos ? std::string::npos : e - p - 1);
  }
  size_t e = h.find_first_of("; \t", p);
  return h.substr(p, e == std::string::npos ? std::string::npos : e - p);
}

struct Upload {
  std::string purpose, filename, content;
  bool has_file = false;
};

// multipart/form-data (RFC 7578): the parts "purpose" and "file".
Upload parse_multipart(const HttpReq& req) {
  std::string ct = req.content_type;
  std::string lower = ct;
  std::transform(lower.begin(), lower.end(), lower.begin(), [](unsigned char c) { return std::tolower(c); });
  if (lower.rfind("multipart/form-data", 0) != 0)
    fail(400, "invalid_request", "Upload a file as multipart/form-data (fields 'purpose' and 'file').");
  const std::string boundary = header_param(ct, "boundary");
  if (boundary.empty() || boundary.size() > 200) fail(400, "invalid_request", "The multipart boundary is missing.");
  const std::string& b = req.body;
  const std::string delim = "--" + boundary;
  size_t pos = b.find(delim);
  if (pos == std::string::npos) fail(400, "invalid_request", "Malformed multipart body: no part.");
  Upload u;
  for (;;) {
    pos += delim.size();
    if (b.compare(pos, 2, "--") == 0) break;  // the closing delimiter
    if (b.compare(pos, 2, "\r\n") != 0) fail(400, "invalid_request", "Malformed multipart body.");
    pos += 2;
    size_t hend = b.find("\r\n\r\n", pos);
    if (hend == std::string::npos) fail(400, "invalid_request", "Malformed multipart body: part headers.");
    std::string headers = b.substr(pos, hend - pos);
    size_t data = hend + 4;
    size_t next = b.find("\r\n" + delim, data);
    if (next == std::string::npos) fail(400, "invalid_request", "Malformed multipart body: unterminated part.");
    std::string disp;
    size_t hp = 0;
    while (hp < headers.size()) {
      size_t e = headers.find("\r\n", hp);
      if (e == std::string::npos) e = headers.size();
      std::string line = headers.substr(hp, e - hp);
      std::string l2 = line;
      std::transform(l2.begin(), l2.end(), l2.begin(), [](unsigned char c) { return std::tolower(c); });
      if (l2.rfind("content-disposition:", 0) == 0) disp = line.substr(20);
      hp = e + 2;
    }
    const std::string name = header_param(disp, "name");
    if (name == "purpose") u.purpose = b.substr(data, next - data);
    else if (name == "file") {
      u.has_file = true;
      u.filename = header_param(disp, "filename");
      u.content = b.substr(data, next - data);
    }
    pos = next + 2;
  }
  return u;
}

std::vector<std::string> split_path(const std::string& path) {
  std::vector<std::string> parts;
  size_t start = 1;
  while (start <= path.size()) {
    size_t s = path.find('/', start);
    if (s == std::string::npos) s = path.size();
    parts.push_back(path.substr(start, s - start));
    start = s + 1;
  }
  return parts;
}

void method_is(const HttpReq& req, const char* m) {
  if (req.method != m && !(std::string(m) == "GET" && req.method == "HEAD"))
    fail(405, "method_not_allowed", "Method " + req.method + " is not allowed here; use " + m + ".");
}

HttpResp files(batch::BatchService& svc, const HttpReq& req, const std::vector<std::string>& p,
               const std::string& owner) {
  if (p.size() == 2) {  // /v1/files
    if (req.method == "POST") {
      Upload u = parse_multipart(req);
      if (!u.has_file) fail(400, "missing_required_parameter", "The 'file' field is required.", "file");
      return json_resp(file_json(svc.create_file(owner, u.purpose, u.filename, u.content)));
    }
    method_is(req, "GET");
    const int64_t limit = limit_param(req, 10000, 10000);
    auto items = svc.list_files(owner, query_param(req.target, "purpose"), query_param(req.target, "after"), limit + 1);
    const bool more = static_cast<int64_t>(items.size()) > limit;
    if (more) items.pop_back();
    return json_resp(list_json(items, file_json, more));
  }
  const std::string& id = p[2];
  if (p.size() == 3) {
    if (req.method == "DELETE") {
      svc.delete_file(owner, id);
      return json_resp(json{{"id", id}, {"object", "file"}, {"deleted", true}});
    }
    method_is(req, "GET");
    return json_resp(file_json(svc.get_file(owner, id)));
  }
  if (p.size() == 4 && p[3] == "content") {
    method_is(req, "GET");
    HttpResp r;
    r.content_type = "application/jsonl";
    r.body = svc.file_content(owner, id);
    return r;
  }
  fail(404, "unknown_route", "Unknown route: " + req.method + " " + req.target + ".");
}

HttpResp batches(batch::BatchService& svc, const HttpReq& req, const std::vector<std::string>& p,
                 const std::string& owner) {
  if (p.size() == 2) {
    if (req.method == "POST") {
      json body = json::parse(req.body, nullptr, false);
      if (body.is_discarded() || !body.is_object()) fail(400, "invalid_json", "The request body must be a JSON object.");
      auto str = [&](const char* k, const char* def) -> std::string {
        auto it = body.find(k);
        if (it == body.end() || it->is_null()) return def;
        if (!it->is_string()) fail(400, "invalid_type", std::string(k) + " must be a string.", k);
        return it->get<std::string>();
      };
      std::string metadata;
      if (auto m = body.find("metadata"); m != body.end() && !m->is_null()) {
        if (!m->is_object() || m->size() > 16)
          fail(400, "invalid_value", "metadata must be an object of at most 16 string pairs.", "metadata");
        for (auto& [k, v] : m->items())
          if (!v.is_string() || k.size() > 64 || v.get<std::string>().size() > 512)
            fail(400, "invalid_value", "metadata values must be strings (keys <= 64, values <= 512 characters).",
                 "metadata");
        metadata = m->dump();
      }
      return json_resp(batch_json(svc.create_batch(owner, str("input_file_id", ""), str("endpoint", ""),
                                                   str("completion_window", "24h"), metadata)));
    }
    method_is(req, "GET");
    const int64_t limit = limit_param(req, 20, 100);
    auto items = svc.list_batches(owner, query_param(req.target, "after"), limit + 1);
    const bool more = static_cast<int64_t>(items.size()) > limit;
    if (more) items.pop_back();
    return json_resp(list_json(items, batch_json, more));
  }
  const std::string& id = p[2];
  if (p.size() == 3) {
    method_is(req, "GET");
    return json_resp(batch_json(svc.get_batch(owner, id)));
  }
  if (p.size() == 4 && p[3] == "cancel") {
    method_is(req, "POST");
    return json_resp(batch_json(svc.cancel_batch(owner, id)));
  }
  fail(404, "unknown_route", "Unknown route: " + req.method + " " + req.target + ".");
}

}  // namespace

bool is_batch_path(const std::string& path) {
  return path == "/v1/files" || path.rfind("/v1/files/", 0) == 0 || path == "/v1/batches" ||
         path.rfind("/v1/batches/", 0) == 0;
}

HttpResp batch_request(batch::BatchService& svc, const HttpReq& req, const std::string& path,
                       const std::string& owner) {
  try {
    std::vector<std::string> p = split_path(path);  // {"v1", "files"|"batches", id, sub}
    if (p.size() > 4 || (p.size() >= 3 && p[2].empty()))
      fail(404, "unknown_route", "Unknown route: " + req.method + " " + path + ".");
    return p[1] == "files" ? files(svc, req, p, owner) : batches(svc, req, p, owner);
  } catch (const batch::Failure& e) {
    const std::string type = e.f.status == 404 ? "invalid_request_error" : error_type_for_status(e.f.status);
    return error_response({e.f.status, e.f.message, type, e.f.param, e.f.code});
  } catch (const std::exception& e) {
    return error_response({500, std::string("Batch API error: ") + e.what(), "server_error", "", ""});
  }
}

}  // namespace ms
