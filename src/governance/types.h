// types.h — governance records: API keys, limits, prices, usage and payload
// rows, as the stores read and write them. Times are unix milliseconds (UTC).
#pragma once
#include <cstdint>
#include <optional>
#include <string>
#include <vector>

namespace ms::gov {

// -1 in a limit field: not set at that level.
inline constexpr int64_t kUnset = -1;

struct KeyRecord {
  std::string id;           // "key_..." (public; what revoke and usage rows name)
  std::string name;
  std::string prefix;       // the secret's first characters, to recognise it
  std::string secret_hash;  // SHA-256 hex of the whole secret
  std::string role = "query";          // "query" | "manage"
  std::vector<std::string> models;     // permitted models; {"*"} = all
  std::string group;                   // "" = none
  int64_t qpm = kUnset;                // the key's own limits (override group and default)
  int64_t tpm = kUnset;
  int64_t created_ms = 0;
  int64_t expires_ms = 0;  // 0 = never
  int64_t revoked_ms = 0;  // 0 = active

  bool allows_model(const std::string& m) const;
  bool active(int64_t now_ms) const { return revoked_ms == 0 && (expires_ms == 0 || now_ms < expires_ms); }
};

// A limit level: scope "model" (target = model name; all callers together),
// "default" (target ""; each key on its own), "group" (target = group name;
// its members together).
// Scope "key" (target = key id) holds only a provisioned reservation (a
// key's QPM/TPM live on the key itself).
struct LimitRecord {
  std::string scope;
  std::string target;
  int64_t qpm = kUnset;
  int64_t tpm = kUnset;
  int64_t provisioned_tps = kUnset;  // reserved tokens/s (provisioned throughput), on every model
};

struct Price {
  std::string model;
  double input_per_mtok = 0;   // per million prompt tokens
  double output_per_mtok = 0;  // per million completion tokens
};

struct UsageRow {
  std::string request_id;
  int64_t ts_ms = 0;
  std::string key_id;
  std::string model;
  int64_t prompt_tokens = 0;
  int64_t cached_tokens = 0;
  int64_t completion_tokens = 0;
  int status = 200;
  bool stream = false;
  double ttft_ms = -1;
  double duration_ms = 0;
  std::string finish_reason;
  double cost = 0;
  std::string usage_context;  // "" online; "batch" for Batch API and offline batch lines
};

struct PayloadRow {
  std::string request_id;
  int64_t ts_ms = 0;
  std::string key_id;
  std::string model;
  int status = 200;
  double latency_ms = 0;
  std::string request;   // JSON text ("" when truncated)
  std::string response;  // JSON text; a stream as the assembled message
  bool truncated = false;  // over the size limit: recorded without bodies
};

// GROUP BY any of "key", "model", "day"; since/until: unix ms, [since, until).
struct UsageQuery {
  bool by_key = false, by_model = false, by_day = false;
  bool by_context = false;  // usage_context, "online" for requests sent online
  std::optional<int64_t> since_ms, until_ms;
  std::string key_id;   // "" = all keys
  std::string context;  // "" = all; "online", "batch"
};

struct UsageTotals {
  std::string key_id, model, day, context;  // set only for the group-by columns
  int64_t requests = 0, prompt_tokens = 0, cached_tokens = 0, completion_tokens = 0;
  double cost = 0;
};

}  // namespace ms::gov
