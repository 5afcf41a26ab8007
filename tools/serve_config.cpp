// serve_config.cpp — the serve config file (see serve_config.h).
#include "serve_config.h"

#include <algorithm>
#include <cctype>
#include <iterator>
#include <cmath>
#include <filesystem>
#include <set>

#include <toml++/toml.h>

#include "core/error.h"
#include "core/file_util.h"

namespace ms::cli {

namespace {

enum class Kind { Bool, Int, Real, Text, NotBool };  // NotBool: a bool stored negated (playground -> --no-playground)

struct SettingKey {
  const char* key;
  const char* flag;
  Kind kind;
};

const SettingKey kServerKeys[] = {
    {"host", "--host", Kind::Text},
    {"port", "--port", Kind::Int},
    {"io_threads", "--io-threads", Kind::Int},
    {"threads", "--threads", Kind::Int},
    {"quant", "--quant", Kind::Text},
    {"kv_dtype", "--kv-dtype", Kind::Text},
    {"max_batch", "--max-batch", Kind::Int},
    {"kv_cache_mb", "--kv-cache-mb", Kind::Int},
    {"max_queue", "--max-queue", Kind::Int},
    {"max_step_tokens", "--max-step-tokens", Kind::Int},
    {"models_memory_mb", "--models-memory-mb", Kind::Int},
    {"drain_timeout", "--drain-timeout", Kind::Real},
    {"api_key", "--api-key", Kind::Text},
    {"max_body_mb", "--max-body-mb", Kind::Real},
    {"header_timeout", "--header-timeout", Kind::Real},
    {"body_timeout", "--body-timeout", Kind::Real},
    {"idle_timeout", "--idle-timeout", Kind::Real},
    {"playground", "--no-playground", Kind::NotBool},
    {"grammar_cache", "--grammar-cache", Kind::Int},
    {"grammar_mask_cache", "--grammar-mask-cache", Kind::Int},
    {"metrics_require_key", "--metrics-require-key", Kind::Bool},
};

const SettingKey kGovernanceKeys[] = {
    {"state", "--state", Kind::Text},
    {"log_payloads", "--log-payloads", Kind::Real},
    {"payload_retention_days", "--payload-retention-days", Kind::Int},
    {"tpm_default_reservation", "--tpm-default-reservation", Kind::Int},
    {"metrics_require_key", "--metrics-require-key", Kind::Bool},
};

class Reader {
 public:
  explicit Reader(std::string origin) : origin_(std::move(origin)) {}
  [[noreturn]] void fail(const std::string& where, const std::string& what) const {
    bad_input(origin_ + ": " + where + ": " + what);
  }
  const toml::table& table(const toml::node& n, const std::string& where) const {
    if (!n.is_table()) fail(where, "expected a table");
    return *n.as_table();
  }
  const toml::array& array(const toml::node& n, const std::string& where) const {
    if (!n.is_array()) fail(where, "expected an array");
    return *n.as_array();
  }
  std::string text(const toml::node& n, const std::string& where) const {
    if (!n.is_string()) fail(where, "expected a string");
    return n.as_string()->get();
  }
  bool boolean(const toml::node& n, const std::string& where) const {
    if (!n.is_boolean()) fail(where, "expected true or false");
    return n.as_boolean()->get();
  }
  int64_t integer(const toml::node& n, const std::string& where, int64_t lo, int64_t hi) const {
    if (!n.is_integer()) fail(where, "expected an integer");
    const int64_t v = n.as_integer()->get();
    if (v < lo || v > hi) fail(where, "expected " + std::to_string(lo) + ".." + std::to_string(hi));
    return v;
  }
  double real(const toml::node& n, const std::string& where) const {
    if (n.is_integer()) return static_cast<double>(n.as_integer()->get());
    if (!n.is_floating_point()) fail(where, "expected a number");
    const double v = n.as_floating_point()->get();
    if (!std::isfinite(v)) fail(where, "expected a finite number");
    return v;
  }
  std::vector<std::string> names(const toml::node& n, const std::string& where) const {
    std::vector<std::string> out;
    const toml::array& a = array(n, where);
    for (size_t i = 0; i < a.size(); ++i) out.push_back(text(a[i], where + "[" + std::to_string(i) + "]"));
    return out;
  }

 private:
  std::string origin_;
};

void read_settings(const Reader& rd, const toml::table& t, const std::string& section, const SettingKey* keys,
                   size_t n, ServeConfig& c) {
  for (auto&& [k, v] : t) {
    const std::string key(k.str());
    const std::string where = section + "." + key;
    const SettingKey* sk = nullptr;
    for (size_t i = 0; i < n; ++i)
      if (key == keys[i].key) sk = &keys[i];
    if (!sk) rd.fail(where, "unknown key");
    switch (sk->kind) {
      case Kind::Bool: c.settings[sk->flag] = rd.boolean(v, where); break;
      case Kind::NotBool: c.settings[sk->flag] = !rd.boolean(v, where); break;
      case Kind::Int: c.settings[sk->flag] = rd.integer(v, where, INT64_MIN, INT64_MAX); break;
      case Kind::Real: c.settings[sk->flag] = rd.real(v, where); break;
      case Kind::Text: c.settings[sk->flag] = rd.text(v, where); break;
    }
  }
}

ProvisionedSpec read_provisioned(const Reader& rd, const toml::node& n, const std::string& where) {
  const toml::table& t = rd.table(n, where);
  ProvisionedSpec p;
  bool has_key = false, has_rate = false;
  for (auto&& [k, v] : t) {
    const std::string key(k.str());
    if (key == "key") {
      p.key = rd.text(v, where + ".key");
      has_key = true;
    } else if (key == "tokens_per_s") {
      p.tokens_per_s = rd.real(v, where + ".tokens_per_s");
      has_rate = true;
    } else {
      rd.fail(where + "." + key, "unknown key");
    }
  }
  if (!has_key || p.key.empty()) rd.fail(where, "needs key = \"<key id or name>\"");
  if (!has_rate || !(p.tokens_per_s > 0) || p.tokens_per_s > 1e9) rd.fail(where, "needs tokens_per_s in (0, 1e9]");
  return p;
}

ServedModelSpec read_model(const Reader& rd, const toml::node& n, const std::string& where) {
  const toml::table& t = rd.table(n, where);
  ServedModelSpec m;
  for (auto&& [k, v] : t) {
    const std::string key(k.str());
    const std::string w = where + "." + key;
    if (key == "name") m.name = rd.text(v, w);
    else if (key == "path") m.path = rd.text(v, w);
    else if (key == "quant") m.quant = rd.text(v, w);
    else if (key == "kv_dtype") m.kv_dtype = rd.text(v, w);
    else if (key == "kv_cache_mb") m.kv_cache_mb = rd.integer(v, w, 0, int64_t(1) << 30);
    else if (key == "max_batch") m.max_batch = rd.integer(v, w, 1, 65536);
    else if (key == "max_queue") m.max_queue = rd.integer(v, w, 1, 1 << 24);
    else if (key == "max_step_tokens") m.max_step_tokens = rd.integer(v, w, 1, 1 << 20);
    else if (key == "threads") m.threads = rd.integer(v, w, 0, 1024);
    else if (key == "autoload") m.autoload = rd.boolean(v, w);
    else if (key == "pinned") m.pinned = rd.boolean(v, w);
    else if (key == "preload") m.preload = rd.boolean(v, w);
    else if (key == "fallback") m.fallback = rd.names(v, w);
    else if (key == "provisioned") {
      const toml::array& a = rd.array(v, w);
      for (size_t i = 0; i < a.size(); ++i) m.provisioned.push_back(read_provisioned(rd, a[i], w + "[" + std::to_string(i) + "]"));
    } else {
      rd.fail(w, "unknown key");
    }
  }
  if (m.name.empty()) rd.fail(where, "needs name = \"...\"");
  if (m.path.empty()) rd.fail(where + " ('" + m.name + "')", "needs path = \"<HF directory or .gguf file>\"");
  return m;
}

EndpointSpec read_endpoint(const Reader& rd, const toml::node& n, const std::string& where) {
  const toml::table& t = rd.table(n, where);
  EndpointSpec e;
  for (auto&& [k, v] : t) {
    const std::string key(k.str());
    const std::string w = where + "." + key;
    if (key == "name") e.name = rd.text(v, w);
    else if (key == "sticky") e.sticky = rd.boolean(v, w);
    else if (key == "fallback") e.fallback = rd.names(v, w);
    else if (key == "routes") {
      const toml::array& a = rd.array(v, w);
      for (size_t i = 0; i < a.size(); ++i) {
        const std::string wi = w + "[" + std::to_string(i) + "]";
        const toml::table& rt = rd.table(a[i], wi);
        RouteWeight r;
        bool has_model = false, has_weight = false;
        for (auto&& [rk, rv] : rt) {
          const std::string rkey(rk.str());
          if (rkey == "model") {
            r.model = rd.text(rv, wi + ".model");
            has_model = true;
          } else if (rkey == "weight") {
            r.weight = static_cast<int>(rd.integer(rv, wi + ".weight", 0, 100));
            has_weight = true;
          } else {
            rd.fail(wi + "." + rkey, "unknown key");
          }
        }
        if (!has_model || !has_weight) rd.fail(wi, "needs model = \"...\" and weight = <percent>");
        e.routes.push_back(r);
      }
    } else {
      rd.fail(w, "unknown key");
    }
  }
  if (e.name.empty()) rd.fail(where, "needs name = \"...\"");
  if (e.routes.empty()) rd.fail(where + " ('" + e.name + "')", "needs routes = [{ model = \"...\", weight = N }, ...]");
  return e;
}

bool valid_name(const std::string& n) {
  if (n.empty() || n.size() > 256) return false;
  for (unsigned char c : n)
    if (!(std::isalnum(c) || c == '-' || c == '_' || c == '.' || c == ':' || c == '@')) return false;
  return true;
}

}  // namespace

ServeConfig parse_serve_config(const std::string& text, const std::string& origin) {
  toml::table root;
  try {
    root = toml::parse(text, origin);
  } catch (const toml::parse_error& e) {
    bad_input(origin + ":" + std::to_string(e.source().begin.line) + ": " + std::string(e.description()));
  }
  Reader rd(origin);
  ServeConfig c;
  for (auto&& [k, v] : root) {
    const std::string key(k.str());
    if (key == "server") {
      read_settings(rd, rd.table(v, key), key, kServerKeys, std::size(kServerKeys), c);
    } else if (key == "governance") {
      read_settings(rd, rd.table(v, key), key, kGovernanceKeys, std::size(kGovernanceKeys), c);
    } else if (key == "models") {
      const toml::array& a = rd.array(v, key);
      for (size_t i = 0; i < a.size(); ++i) c.models.push_back(read_model(rd, a[i], "models[" + std::to_string(i) + "]"));
    } else if (key == "endpoints") {
      const toml::array& a = rd.array(v, key);
      for (size_t i = 0; i < a.size(); ++i)
        c.endpoints.push_back(read_endpoint(rd, a[i], "endpoints[" + std::to_string(i) + "]"));
    } else {
      rd.fail(key, "unknown key (expected [server], [governance], [[models]] or [[endpoints]])");
    }
  }
  return c;
}

ServeConfig load_serve_config(const std::string& file) {
  std::string text;
  try {
    text = read_file(file);
  } catch (const Error& e) {
    bad_input("--config: " + std::string(e.what()));
  }
  return parse_serve_config(text, file);
}

void validate_serve_config(const ServeConfig& c, const std::string& origin) {
  auto fail = [&origin](const std::string& what) { bad_input(origin + ": " + what); };
  std::set<std::string> models, all;
  for (const ServedModelSpec& m : c.models) {
    if (!valid_name(m.name))
      fail("model name '" + m.name + "': use letters, digits and - _ . : @ (at most 256)");
    if (!all.insert(m.name).second) fail("duplicate model name '" + m.name + "'");
    models.insert(m.name);
    std::set<std::string> keys;
    for (const ProvisionedSpec& p : m.provisioned)
      if (!keys.insert(p.key).second) fail("model '" + m.name + "': key '" + p.key + "' is provisioned twice");
  }
  for (const EndpointSpec& e : c.endpoints) {
    if (!valid_name(e.name)) fail("endpoint name '" + e.name + "': use letters, digits and - _ . : @ (at most 256)");
    if (!all.insert(e.name).second) fail("duplicate name '" + e.name + "' (models and endpoints share one namespace)");
  }
  for (const ServedModelSpec& m : c.models)
    for (const std::string& f : m.fallback) {
      if (!models.count(f)) fail("model '" + m.name + "': fallback '" + f + "' is not a declared model");
      if (f == m.name) fail("model '" + m.name + "': a model cannot be its own fallback");
    }
  for (const EndpointSpec& e : c.endpoints) {
    int sum = 0;
    std::set<std::string> seen;
    for (const RouteWeight& r : e.routes) {
      if (!models.count(r.model)) fail("endpoint '" + e.name + "': route to '" + r.model + "', which is not a declared model");
      if (!seen.insert(r.model).second) fail("endpoint '" + e.name + "': model '" + r.model + "' is routed twice");
      sum += r.weight;
    }
    if (sum != 100) fail("endpoint '" + e.name + "': route weights sum to " + std::to_string(sum) + ", not 100");
    for (const std::string& f : e.fallback)
      if (!models.count(f)) fail("endpoint '" + e.name + "': fallback '" + f + "' is not a declared model");
  }
}

std::pair<std::string, std::string> split_model_arg(const std::string& v) {
  const size_t eq = v.find('=');
  if (eq == std::string::npos || eq == 0) return {"", v};
  std::error_code ec;
  if (std::filesystem::exists(v, ec)) return {"", v};  // a file whose name has '='
  const std::string name = v.substr(0, eq);
  if (!valid_name(name)) return {"", v};  // a path that happens to contain '='
  return {name, v.substr(eq + 1)};
}

}  // namespace ms::cli
