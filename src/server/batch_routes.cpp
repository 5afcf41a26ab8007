// batch_routes.cpp — Files and Batch API endpoints (see batch_routes.h).
#include "server/batch_routes.h"

#include <unistd.h>

#include <algorithm>
#include <cctype>
#include <stdexcept>

#include <nlohmann/json.hpp>

#include "batch/batch_service.h"
#include "core/error.h"
#include "server/api_routes.h"
#include "server/multipart_upload.h"
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

// A stored file sent as it is read (BatchStore::read_content), 256 KiB at a time.
class FileBody : public BodySource {
 public:
  explicit FileBody(std::shared_ptr<batch::BatchService::Content> c) : c_(std::move(c)) {}
  size_t size() const override { return static_cast<size_t>(c_->size); }
  size_t read(char* p, size_t n) override {
    const int64_t left = c_->size - pos_;
    if (left <= 0) return 0;
    const size_t got = c_->reader->read(p, std::min<size_t>(n, static_cast<size_t>(left)));
    if (got == 0) throw std::runtime_error("the file could not be read");  // shorter than its record
    pos_ += static_cast<int64_t>(got);
    return got;
  }

 private:
  std::shared_ptr<batch::BatchService::Content> c_;
  int64_t pos_ = 0;
};

void method_is(const HttpReq& req, const char* m) {
  if (req.method != m && !(std::string(m) == "GET" && req.method == "HEAD"))
    fail(405, "method_not_allowed", "Method " + req.method + " is not allowed here; use " + m + ".");
}

HttpResp files(batch::BatchService& svc, const HttpReq& req, const std::vector<std::string>& p,
               const std::string& owner) {
  if (p.size() == 2) {  // /v1/files
    if (req.method == "POST") {
      auto up = std::dynamic_pointer_cast<MultipartUpload>(req.body_stream);
      if (!up) {  // a body in memory (not through the session's stream)
        up = std::make_shared<MultipartUpload>(req.content_type, svc.upload_path(), svc.options().max_file_bytes);
        if (up->write(req.body.data(), req.body.size())) up->end();
      }
      if (up->failure()) throw batch::Failure(*up->failure());
      if (!up->has_file()) fail(400, "missing_required_parameter", "The 'file' field is required.", "file");
      svc.check_purpose(up->purpose());
      if (!up->jsonl_error().empty())
        fail(400, "invalid_file_format",
             "Invalid file format for Batch API: a JSONL file is expected (" + up->jsonl_error() + ").", "file");
      return json_resp(file_json(svc.adopt_file(owner, up->purpose(), up->filename(), up->take_part(), up->file_bytes())));
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
    r.body_source = std::make_shared<FileBody>(svc.open_content(owner, id));
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

std::shared_ptr<BodyStream> open_body_stream(batch::BatchService* svc, const std::string& method,
                                             const std::string& path, const std::string& content_type) {
  if (!svc || method != "POST" || path != "/v1/files") return nullptr;
  return std::make_shared<MultipartUpload>(content_type, svc->upload_path(), svc->options().max_file_bytes);
}

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
