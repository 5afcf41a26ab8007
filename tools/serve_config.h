// serve_config.h — `moeserve serve --config FILE.toml`: the served models,
// split endpoints, and the server and governance settings (the serve flags'
// equivalents). docs/SERVING.md has the reference.
//
//   [server]      host, port, threads, models_memory_mb, ... (as the flags)
//   [governance]  state, log_payloads, payload_retention_days, ...
//   [[models]]    name, path, quant, kv_cache_mb, max_batch, threads, autoload,
//                 pinned, preload, fallback, provisioned = [{ key, tokens_per_s }]
//   [[endpoints]] name, routes = [{ model, weight }], fallback, sticky
//
// Every problem (unknown key, wrong type, duplicate name, weights not
// summing to 100, a route to an undeclared model) is Error(BadInput) with
// one line naming the file and the key.
#pragma once
#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <variant>
#include <vector>

#include "server/traffic_split.h"

namespace ms::cli {

// Reserved throughput for one key on one model (enforced by the scheduler's
// provisioned class; this only carries the declaration).
struct ProvisionedSpec {
  std::string key;
  double tokens_per_s = 0;
};

// One served model. Unset numbers take the serve flags' values.
struct ServedModelSpec {
  std::string name;
  std::string path;                       // HF directory or .gguf file
  std::optional<std::string> quant, kv_dtype;
  std::optional<int64_t> kv_cache_mb;
  std::optional<int64_t> max_batch, max_queue, max_step_tokens, threads;
  bool autoload = true;
  bool pinned = false;
  bool preload = true;
  std::vector<std::string> fallback;
  std::vector<ProvisionedSpec> provisioned;
};

// A [server] / [governance] value: the flag it stands for gets it unless
// the flag was given on the command line.
using SettingValue = std::variant<bool, int64_t, double, std::string>;

struct ServeConfig {
  std::map<std::string, SettingValue> settings;  // flag name ("--port") -> value
  std::vector<ServedModelSpec> models;
  std::vector<EndpointSpec> endpoints;
};

// Parses and validates FILE (names, types, ranges, references). Model files
// are checked when the models are declared (model_host.h).
ServeConfig load_serve_config(const std::string& file);
// Parses TOML text (`origin` names it in errors).
ServeConfig parse_serve_config(const std::string& text, const std::string& origin);

// Cross-checks after -m NAME=PATH models were added: unique names across
// models and endpoints, routes and fallbacks naming declared models,
// weights summing to 100.
void validate_serve_config(const ServeConfig& c, const std::string& origin);

// "-m" value: NAME=PATH -> {NAME, PATH}; a plain path -> {"", PATH}.
std::pair<std::string, std::string> split_model_arg(const std::string& v);

}  // namespace ms::cli
