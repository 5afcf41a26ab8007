// batch_lines.cpp — Batch API JSONL formats (see batch_lines.h).
#include "batch/batch_lines.h"

#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <functional>
#include <random>
#include <unordered_set>

#include <nlohmann/json.hpp>

#include "core/error.h"

namespace ms::batch {

using json = nlohmann::json;

namespace {

template <class F>
void for_each_line(const std::string& text, F f) {
  size_t start = 0;
  while (start < text.size()) {
    size_t nl = text.find('\n', start);
    if (nl == std::string::npos) nl = text.size();
    std::string line = text.substr(start, nl - start);
    if (!line.empty() && line.back() == '\r') line.pop_back();
    if (line.find_first_not_of(" \t") != std::string::npos) f(line);
    start = nl + 1;
  }
}

}  // namespace

void JsonlChecker::line_done() {
  ++physical_;
  if (line_.find_first_not_of(" \t\r") != std::string::npos) {
    ++objects_;
    json j = json::parse(line_.begin(), line_.end(), nullptr, false);
    if (j.is_discarded()) err_ = "line " + std::to_string(physical_) + " is not valid JSON";
    else if (!j.is_object()) err_ = "line " + std::to_string(physical_) + " is not a JSON object";
  }
  line_.clear();
}

void JsonlChecker::feed(const char* p, size_t n) {
  const char* end = p + n;
  while (p < end && err_.empty()) {
    const char* nl = static_cast<const char*>(std::memchr(p, '\n', size_t(end - p)));
    line_.append(p, nl ? nl : end);
    if (!nl) break;
    line_done();
    p = nl + 1;
  }
}

std::string JsonlChecker::finish() {
  if (err_.empty() && !line_.empty()) line_done();
  if (err_.empty() && objects_ == 0) err_ = "the file has no lines";
  return err_;
}

std::string check_jsonl(const std::string& text) {
  JsonlChecker c;
  c.feed(text.data(), text.size());
  return c.finish();
}

namespace {

// One non-blank line (no newline, no trailing CR) checked; `seen`: the
// custom_ids of the lines before it. The body is kept as JSON text, or not
// (read back later by read_input_body).
InputLine parse_line(const std::string& s, int64_t no, const std::string& endpoint,
                     std::unordered_set<std::string>& seen, bool keep_body) {
  InputLine l;
  l.line_no = no;
  auto bad = [&](const char* code, std::string msg) {
    l.error_code = code;
    l.error_message = std::move(msg);
  };
  json j = json::parse(s, nullptr, false);
  if (j.is_discarded() || !j.is_object()) {
    bad("invalid_json_line", "This line is not a JSON object.");
    return l;
  }
  auto cid = j.find("custom_id");
  if (cid != j.end() && cid->is_string()) l.custom_id = cid->get<std::string>();
  auto method = j.find("method");
  auto url = j.find("url");
  auto body = j.find("body");
  if (cid == j.end() || !cid->is_string() || l.custom_id.empty())
    bad("missing_required_parameter", "custom_id must be a non-empty string.");
  else if (!seen.insert(l.custom_id).second)
    bad("duplicate_custom_id", "The custom_id '" + l.custom_id + "' is used by an earlier line.");
  else if (method == j.end() || !method->is_string() || *method != "POST")
    bad("invalid_method", "method must be \"POST\".");
  else if (url == j.end() || !url->is_string())
    bad("missing_required_parameter", "url must be a string.");
  else if (endpoint.empty() ? (*url != "/v1/chat/completions" && *url != "/v1/completions")
                            : url->get<std::string>() != endpoint)
    bad("mismatched_endpoint", endpoint.empty() ? "The url '" + url->get<std::string>() +
                                                      "' is not /v1/chat/completions or /v1/completions."
                                                : "The url '" + url->get<std::string>() +
                                                      "' does not match the batch's endpoint '" + endpoint + "'.");
  else if (body == j.end() || !body->is_object())
    bad("missing_required_parameter", "body must be a JSON object.");
  else {
    l.url = url->get<std::string>();
    if (keep_body) l.body = body->dump();
  }
  return l;
}

}  // namespace

std::vector<InputLine> parse_input(const std::string& text, const std::string& endpoint) {
  std::vector<InputLine> out;
  std::unordered_set<std::string> seen;
  int64_t no = 0;
  for_each_line(text, [&](const std::string& s) { out.push_back(parse_line(s, no++, endpoint, seen, true)); });
  return out;
}

void read_chunks(int fd, const std::function<void(const char*, size_t)>& fn) {
  std::vector<char> buf(64 << 10);
  for (off_t pos = 0;;) {
    const ssize_t n = ::pread(fd, buf.data(), buf.size(), pos);
    if (n < 0) throw Error(ErrorKind::BadInput, std::string("cannot read the file: ") + std::strerror(errno));
    if (n == 0) return;
    fn(buf.data(), static_cast<size_t>(n));
    pos += n;
  }
}

void for_each_file_line(int fd, const std::function<void(const std::string&, int64_t, bool)>& fn) {
  std::string line;
  int64_t start = 0, pos = 0;  // the line's first byte; the chunk's
  read_chunks(fd, [&](const char* p, size_t n) {
    const char* const base = p;
    const char* const end = p + n;
    while (p < end) {
      const char* nl = static_cast<const char*>(std::memchr(p, '\n', static_cast<size_t>(end - p)));
      line.append(p, nl ? nl : end);
      if (!nl) break;
      fn(line, start, true);
      line.clear();
      start = pos + (nl + 1 - base);
      p = nl + 1;
    }
    pos += static_cast<int64_t>(n);
  });
  if (!line.empty()) fn(line, start, false);
}

std::vector<InputLine> parse_input_file(int fd, const std::string& endpoint) {
  std::vector<InputLine> out;
  std::unordered_set<std::string> seen;
  for_each_file_line(fd, [&](const std::string& raw, int64_t offset, bool) {
    const size_t len = !raw.empty() && raw.back() == '\r' ? raw.size() - 1 : raw.size();
    const std::string s = raw.substr(0, len);
    if (s.find_first_not_of(" \t") == std::string::npos) return;
    InputLine l = parse_line(s, static_cast<int64_t>(out.size()), endpoint, seen, false);
    l.offset = offset;
    l.length = static_cast<int64_t>(len);
    out.push_back(std::move(l));
  });
  return out;
}

std::string read_input_body(int fd, const InputLine& l) {
  std::string s(static_cast<size_t>(l.length), '\0');
  size_t got = 0;
  while (got < s.size()) {
    const ssize_t n = ::pread(fd, s.data() + got, s.size() - got, l.offset + static_cast<int64_t>(got));
    if (n <= 0) throw Error(ErrorKind::BadInput, "the input file changed or cannot be read");
    got += size_t(n);
  }
  json j = json::parse(s, nullptr, false);
  auto body = j.is_object() ? j.find("body") : j.end();
  if (j.is_discarded() || !j.is_object() || body == j.end() || !body->is_object())
    throw Error(ErrorKind::BadInput, "the input file changed");
  return body->dump();
}

std::string output_line(const std::string& custom_id, const Outcome& o, bool& ok) {
  json line;
  line["id"] = new_id("batch_req_");
  line["custom_id"] = custom_id.empty() ? json(nullptr) : json(custom_id);
  if (!o.error_code.empty()) {
    ok = false;
    line["response"] = nullptr;
    line["error"] = json{{"code", o.error_code}, {"message", o.error_message}};
  } else {
    ok = o.status_code == 200;
    json body = json::parse(o.body, nullptr, false);
    if (body.is_discarded()) body = json{{"error", {{"message", o.body}, {"type", "server_error"}}}};
    line["response"] = json{{"status_code", o.status_code}, {"request_id", o.request_id}, {"body", std::move(body)}};
    line["error"] = nullptr;
  }
  return line.dump(-1, ' ', false, json::error_handler_t::replace);
}

std::string error_line(const std::string& custom_id, const std::string& code, const std::string& message) {
  Outcome o;
  o.error_code = code;
  o.error_message = message;
  bool ok = false;
  return output_line(custom_id, o, ok);
}

std::string unreadable_line(const std::string& custom_id, const std::exception& e) {
  return error_line(custom_id, "invalid_file",
                    std::string("This request could not be read from the input file: ") + e.what() + ".");
}

std::string new_id(const std::string& prefix) {
  thread_local std::mt19937_64 rng{std::random_device{}()};
  static const char* hex = "0123456789abcdef";
  std::string s = prefix;
  for (int i = 0; i < 24; ++i) s += hex[rng() & 15];
  return s;
}

}  // namespace ms::batch
