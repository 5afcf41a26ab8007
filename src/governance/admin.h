// admin.h — governance operations shared by the CLI (`moeserve keys|limits|
// prices|usage|payloads`) and the admin HTTP API (/admin/v1/): validation of
// what a caller asks for, key secrets, and the JSON both print.
//
// Validation failures throw Error(BadInput) with a one-line message (CLI:
// exit 2; HTTP: 400).
#pragma once
#include <cstdint>
#include <optional>
#include <string>

#include <nlohmann/json.hpp>

#include "governance/store.h"

namespace ms::gov {

inline constexpr int64_t kMaxLimit = 1'000'000'000;  // qpm / tpm above this are refused as absurd

int64_t now_ms();

// A new secret: "ms-" + 43 base62 characters (~256 bits) from /dev/urandom.
std::string new_secret();
// "key_" + 16 base62 characters.
std::string new_key_id();
// The stored form of a secret and the visible prefix.
std::string hash_secret(const std::string& secret);
std::string secret_prefix(const std::string& secret);
// Constant-time comparison of two strings of the same length (false otherwise).
bool ct_equal(const std::string& a, const std::string& b);

struct KeySpec {
  std::string name;
  std::string models = "*";  // "a,b" or "*"
  std::string role = "query";
  std::string group;
  int64_t qpm = kUnset, tpm = kUnset;
  std::string expires_in;    // "30d", "12h", "90m", "3600s"; "" = never
};
struct CreatedKey {
  KeyRecord record;
  std::string secret;  // shown once
};
CreatedKey create_key(Store& s, const KeySpec& spec);

// "30d" -> ms; BadInput on anything else.
int64_t parse_duration_ms(const std::string& s, const char* what);
// "2026-01-31", "2026-01-31T12:00:00Z" or unix seconds -> unix ms.
int64_t parse_time_ms(const std::string& s, const char* what);
// Checks a limit value: kUnset, or 0..kMaxLimit.
int64_t check_limit(int64_t v, const char* what);
// scope "key": target = key id, provisioned_tps only.
LimitRecord make_limit(const std::string& scope, const std::string& target, int64_t qpm, int64_t tpm,
                       int64_t provisioned_tps = kUnset);
Price make_price(const std::string& model, double input_per_mtok, double output_per_mtok);
// "key,model,day,context" (any subset, any order) -> the query's group-by.
void parse_group_by(const std::string& by, UsageQuery& q);
// A usage context filter: "", "online" or "batch" (else Error(BadInput)).
std::string parse_usage_context(const std::string& c);

nlohmann::json key_json(const KeyRecord& k);  // never the hash
nlohmann::json limit_json(const LimitRecord& l);
nlohmann::json usage_json(const UsageTotals& t, const UsageQuery& q);
nlohmann::json payload_json(const PayloadRow& p);
nlohmann::json usage_row_json(const UsageRow& r);

}  // namespace ms::gov
