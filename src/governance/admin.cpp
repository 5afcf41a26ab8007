// admin.cpp — validation, secrets and JSON of the governance operations (see admin.h).
#include "governance/admin.h"

#include <fcntl.h>
#include <unistd.h>

#include <chrono>
#include <cmath>
#include <ctime>

#include "core/error.h"
#include "governance/schema.h"
#include "governance/sha256.h"

namespace ms::gov {

using json = nlohmann::json;

int64_t now_ms() {
  return std::chrono::duration_cast<std::chrono::milliseconds>(std::chrono::system_clock::now().time_since_epoch())
      .count();
}

namespace {

std::string random_base62(size_t n) {
  static const char* a = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz";
  std::string out;
  int fd = ::open("/dev/urandom", O_RDONLY | O_CLOEXEC);
  if (fd < 0) throw Error(ErrorKind::Internal, "cannot open /dev/urandom");
  unsigned char buf[64];
  while (out.size() < n) {
    ssize_t got = ::read(fd, buf, sizeof buf);
    if (got <= 0) {
      ::close(fd);
      throw Error(ErrorKind::Internal, "cannot read /dev/urandom");
    }
    for (ssize_t i = 0; i < got && out.size() < n; ++i)
      if (buf[i] < 248) out += a[buf[i] % 62];  // 248 = 4 * 62: no modulo bias
  }
  ::close(fd);
  return out;
}

bool valid_name(const std::string& s, size_t max) {
  if (s.empty() || s.size() > max) return false;
  for (unsigned char c : s)
    if (c < 0x20 || c == 0x7f) return false;
  return true;
}

std::string iso_time(int64_t ms) {
  if (ms <= 0) return "";
  std::time_t t = static_cast<std::time_t>(ms / 1000);
  std::tm tm{};
  gmtime_r(&t, &tm);
  char b[32];
  std::strftime(b, sizeof b, "%Y-%m-%dT%H:%M:%SZ", &tm);
  return b;
}

}  // namespace

std::string new_secret() { return "ms-" + random_base62(43); }
std::string new_key_id() { return "key_" + random_base62(16); }
std::string hash_secret(const std::string& secret) { return sha256_hex(secret); }
std::string secret_prefix(const std::string& secret) { return secret.substr(0, 10); }

bool ct_equal(const std::string& a, const std::string& b) {
  if (a.size() != b.size()) return false;
  unsigned char diff = 0;
  for (size_t i = 0; i < a.size(); ++i) diff |= static_cast<unsigned char>(a[i] ^ b[i]);
  return diff == 0;
}

int64_t parse_duration_ms(const std::string& s, const char* what) {
  size_t i = 0;
  while (i < s.size() && s[i] >= '0' && s[i] <= '9') ++i;
  if (i == 0 || i > 9 || i + 1 != s.size())
    bad_input(std::string(what) + ": expected a duration like 30d, 12h, 90m or 3600s, got '" + s + "'");
  const int64_t v = std::stoll(s.substr(0, i));
  int64_t unit = 0;
  switch (s[i]) {
    case 'd': unit = 86'400'000; break;
    case 'h': unit = 3'600'000; break;
    case 'm': unit = 60'000; break;
    case 's': unit = 1000; break;
    default: bad_input(std::string(what) + ": unknown unit in '" + s + "' (use d, h, m or s)");
  }
  if (v <= 0 || v > 36500LL * 86'400'000 / unit) bad_input(std::string(what) + ": out of range: '" + s + "'");
  return v * unit;
}

int64_t parse_time_ms(const std::string& s, const char* what) {
  bool digits = !s.empty();
  for (char c : s) digits = digits && c >= '0' && c <= '9';
  if (digits && s.size() <= 12) return std::stoll(s) * 1000;
  std::tm tm{};
  const char* end = strptime(s.c_str(), "%Y-%m-%dT%H:%M:%SZ", &tm);
  if (!end || *end) {
    tm = {};
    end = strptime(s.c_str(), "%Y-%m-%d", &tm);
  }
  if (!end || *end)
    bad_input(std::string(what) + ": expected YYYY-MM-DD, YYYY-MM-DDTHH:MM:SSZ or unix seconds, got '" + s + "'");
  return static_cast<int64_t>(timegm(&tm)) * 1000;
}

int64_t check_limit(int64_t v, const char* what) {
  if (v == kUnset) return v;
  if (v < 0 || v > kMaxLimit)
    bad_input(std::string(what) + ": expected 0.." + std::to_string(kMaxLimit) + " (or unset), got " +
              std::to_string(v));
  return v;
}

CreatedKey create_key(Store& s, const KeySpec& spec) {
  if (!valid_name(spec.name, 200)) bad_input("key name: expected 1..200 printable characters");
  if (spec.role != "query" && spec.role != "manage") bad_input("role: expected 'query' or 'manage', got '" + spec.role + "'");
  if (!spec.group.empty() && !valid_name(spec.group, 200)) bad_input("group: expected 1..200 printable characters");
  KeyRecord k;
  k.models = split_models(spec.models);
  if (k.models.empty()) bad_input("models: expected a comma-separated list of model names, or '*'");
  for (const auto& m : k.models)
    if (!valid_name(m, 256)) bad_input("models: invalid model name '" + m + "'");
  k.qpm = check_limit(spec.qpm, "qpm");
  k.tpm = check_limit(spec.tpm, "tpm");
  k.created_ms = now_ms();
  k.expires_ms = spec.expires_in.empty() ? 0 : k.created_ms + parse_duration_ms(spec.expires_in, "expires-in");
  k.name = spec.name;
  k.role = spec.role;
  k.group = spec.group;
  k.id = new_key_id();
  CreatedKey out;
  out.secret = new_secret();
  k.secret_hash = hash_secret(out.secret);
  k.prefix = secret_prefix(out.secret);
  s.create_key(k);
  out.record = std::move(k);
  return out;
}

LimitRecord make_limit(const std::string& scope, const std::string& target, int64_t qpm, int64_t tpm,
                       int64_t provisioned_tps) {
  if (scope != "model" && scope != "default" && scope != "group" && scope != "key")
    bad_input("limit scope: expected model, default, group or key, got '" + scope + "'");
  if (scope == "default" && !target.empty()) bad_input("the default limit takes no target");
  if (scope != "default" && !valid_name(target, 256)) bad_input("limit " + scope + ": expected a name");
  if (scope == "key" && (qpm != kUnset || tpm != kUnset))
    bad_input("limit key: only a provisioned reservation (a key's qpm and tpm are set on the key)");
  if (qpm == kUnset && tpm == kUnset && provisioned_tps == kUnset)
    bad_input("limit: give qpm, tpm, provisioned tokens per second, or several");
  return {scope, target, check_limit(qpm, "qpm"), check_limit(tpm, "tpm"),
          check_limit(provisioned_tps, "provisioned tokens per second")};
}

Price make_price(const std::string& model, double in, double out) {
  if (!valid_name(model, 256)) bad_input("price: expected a model name");
  for (double v : {in, out})
    if (!std::isfinite(v) || v < 0 || v > 1e6) bad_input("price: expected 0..1000000 per million tokens");
  return {model, in, out};
}

void parse_group_by(const std::string& by, UsageQuery& q) {
  for (const std::string& c : split_models(by)) {
    if (c == "key" || c == "key_id") q.by_key = true;
    else if (c == "model") q.by_model = true;
    else if (c == "day") q.by_day = true;
    else if (c == "context") q.by_context = true;
    else bad_input("by: expected any of key, model, day, context; got '" + c + "'");
  }
}

std::string parse_usage_context(const std::string& c) {
  if (!c.empty() && c != "online" && c != "batch") bad_input("context: expected online or batch; got '" + c + "'");
  return c;
}

json key_json(const KeyRecord& k) {
  json j = {{"id", k.id},
            {"name", k.name},
            {"prefix", k.prefix},
            {"role", k.role},
            {"models", k.models},
            {"group", k.group.empty() ? json(nullptr) : json(k.group)},
            {"qpm", k.qpm == kUnset ? json(nullptr) : json(k.qpm)},
            {"tpm", k.tpm == kUnset ? json(nullptr) : json(k.tpm)},
            {"created_at", iso_time(k.created_ms)},
            {"expires_at", k.expires_ms ? json(iso_time(k.expires_ms)) : json(nullptr)},
            {"revoked_at", k.revoked_ms ? json(iso_time(k.revoked_ms)) : json(nullptr)}};
  j["status"] = k.revoked_ms ? "revoked" : (k.expires_ms && now_ms() >= k.expires_ms ? "expired" : "active");
  return j;
}

json limit_json(const LimitRecord& l) {
  return {{"scope", l.scope},
          {"target", l.target.empty() ? json(nullptr) : json(l.target)},
          {"qpm", l.qpm == kUnset ? json(nullptr) : json(l.qpm)},
          {"tpm", l.tpm == kUnset ? json(nullptr) : json(l.tpm)},
          {"provisioned_tokens_per_s", l.provisioned_tps == kUnset ? json(nullptr) : json(l.provisioned_tps)}};
}

json usage_json(const UsageTotals& t, const UsageQuery& q) {
  json j = json::object();
  if (q.by_key) j["key_id"] = t.key_id;
  if (q.by_model) j["model"] = t.model;
  if (q.by_day) j["day"] = t.day;
  if (q.by_context) j["context"] = t.context;
  j["requests"] = t.requests;
  j["prompt_tokens"] = t.prompt_tokens;
  j["cached_tokens"] = t.cached_tokens;
  j["completion_tokens"] = t.completion_tokens;
  j["cost"] = t.cost;
  return j;
}

json usage_row_json(const UsageRow& r) {
  return {{"request_id", r.request_id}, {"time", iso_time(r.ts_ms)},     {"key_id", r.key_id},
          {"model", r.model},           {"prompt_tokens", r.prompt_tokens}, {"cached_tokens", r.cached_tokens},
          {"completion_tokens", r.completion_tokens}, {"status", r.status}, {"stream", r.stream},
          {"ttft_ms", r.ttft_ms < 0 ? json(nullptr) : json(r.ttft_ms)},  {"duration_ms", r.duration_ms},
          {"finish_reason", r.finish_reason}, {"cost", r.cost}, {"usage_context", r.usage_context}};
}

json payload_json(const PayloadRow& p) {
  auto parsed = [](const std::string& s) {
    json v = json::parse(s, nullptr, false);
    return v.is_discarded() ? json(s) : v;
  };
  json j = {{"request_id", p.request_id}, {"time", iso_time(p.ts_ms)}, {"key_id", p.key_id},
            {"model", p.model},           {"status", p.status},          {"latency_ms", p.latency_ms},
            {"truncated", p.truncated}};
  j["request"] = p.truncated || p.request.empty() ? json(nullptr) : parsed(p.request);
  j["response"] = p.truncated || p.response.empty() ? json(nullptr) : parsed(p.response);
  return j;
}

}  // namespace ms::gov
