// cmd_gov.cpp — governance administration on a state store (docs/GOVERNANCE.md):
//   moeserve keys create|list|revoke, limits set|list, prices set|list,
//   usage, payloads export.
// Each opens --state directly (SQLite file or postgresql:// URL; the schema is
// migrated like `serve` does), so it works with or without a running server;
// servers see changes within a second.
#include <cstdio>
#include <iostream>
#include <limits>
#include <memory>
#include <string>

#include <nlohmann/json.hpp>

#include "commands.h"
#include "core/error.h"
#include "governance/admin.h"
#include "governance/store.h"

namespace ms::cli {

namespace {

using json = nlohmann::json;

void print_json(const json& j) {
  std::string s = j.dump(-1, ' ', false, json::error_handler_t::replace) + "\n";
  std::fwrite(s.data(), 1, s.size(), stdout);
}

void add_state(CLI::App* c, std::string& state) {
  c->add_option("--state", state, "State store: a SQLite file or a postgresql:// URL")->required();
}

// CLI limits: "not given" is kNotGiven, so an explicit -1 is refused like any negative.
constexpr int64_t kNotGiven = std::numeric_limits<int64_t>::min();
int64_t limit_arg(int64_t v, const char* flag) {
  if (v == kNotGiven) return gov::kUnset;
  if (v < 0) bad_input(std::string(flag) + ": expected >= 0, got " + std::to_string(v));
  return gov::check_limit(v, flag);
}

std::string num_or_dash(int64_t v) { return v == gov::kUnset ? "-" : std::to_string(v); }

void add_keys(CLI::App& app) {
  CLI::App* keys = app.add_subcommand("keys", "Create, list and revoke API keys");
  keys->require_subcommand(1);

  struct Create {
    std::string state;
    gov::KeySpec spec;
    int64_t qpm = kNotGiven, tpm = kNotGiven;
  };
  auto c = std::make_shared<Create>();
  CLI::App* create = keys->add_subcommand("create", "Create a key; prints {\"id\", \"key\"} (the secret is shown once)");
  add_state(create, c->state);
  create->add_option("--name", c->spec.name, "A name for the key")->required();
  create->add_option("--models", c->spec.models, "Models it may query: a,b or *")->capture_default_str();
  create->add_option("--role", c->spec.role, "query | manage (manage may call /admin/v1/)")->capture_default_str();
  create->add_option("--group", c->spec.group, "Group whose limits it shares");
  create->add_option("--qpm", c->qpm, "Its own queries per minute (overrides group and default)");
  create->add_option("--tpm", c->tpm, "Its own tokens per minute (overrides group and default)");
  create->add_option("--expires-in", c->spec.expires_in, "Lifetime: 30d, 12h, 90m, 3600s");
  create->callback([c] {
    c->spec.qpm = limit_arg(c->qpm, "--qpm");
    c->spec.tpm = limit_arg(c->tpm, "--tpm");
    auto st = gov::open_store(c->state);
    gov::CreatedKey k = gov::create_key(*st, c->spec);
    print_json({{"id", k.record.id}, {"key", k.secret}});
  });

  auto ls = std::make_shared<std::pair<std::string, bool>>();
  CLI::App* list = keys->add_subcommand("list", "List keys (never their secrets)");
  add_state(list, ls->first);
  list->add_flag("--json", ls->second, "One JSON array");
  list->callback([ls] {
    auto st = gov::open_store(ls->first);
    auto keys = st->list_keys();
    if (ls->second) {
      json arr = json::array();
      for (const auto& k : keys) arr.push_back(gov::key_json(k));
      print_json(arr);
      return;
    }
    std::printf("%-22s %-20s %-12s %-7s %-8s %-12s %-6s %-8s %s\n", "ID", "NAME", "PREFIX", "ROLE", "STATUS", "GROUP",
                "QPM", "TPM", "MODELS");
    for (const auto& k : keys) {
      json j = gov::key_json(k);
      std::printf("%-22s %-20s %-12s %-7s %-8s %-12s %-6s %-8s %s\n", k.id.c_str(), k.name.c_str(), k.prefix.c_str(),
                  k.role.c_str(), j["status"].get<std::string>().c_str(), k.group.empty() ? "-" : k.group.c_str(),
                  num_or_dash(k.qpm).c_str(), num_or_dash(k.tpm).c_str(), j["models"].dump().c_str());
    }
  });

  auto rv = std::make_shared<std::pair<std::string, std::string>>();
  CLI::App* revoke = keys->add_subcommand("revoke", "Revoke a key (refused from the next request on)");
  add_state(revoke, rv->first);
  revoke->add_option("id", rv->second, "Key id (key_...)")->required();
  revoke->callback([rv] {
    auto st = gov::open_store(rv->first);
    if (!st->revoke_key(rv->second, gov::now_ms())) bad_input("no API key with id '" + rv->second + "'");
    print_json({{"id", rv->second}, {"revoked", true}});
  });
}

void add_limits(CLI::App& app) {
  CLI::App* limits = app.add_subcommand(
      "limits", "Rate limits (QPM, TPM) and provisioned throughput per model, default per key, group, or key");
  limits->require_subcommand(1);
  struct Set {
    std::string state, model, group, key;
    bool def = false;
    int64_t qpm = kNotGiven, tpm = kNotGiven, provisioned = kNotGiven;
  };
  auto s = std::make_shared<Set>();
  CLI::App* set = limits->add_subcommand("set", "Set the limit of one level");
  add_state(set, s->state);
  auto* om = set->add_option("--model", s->model, "A model's limit (all its callers together)");
  auto* od = set->add_flag("--default", s->def, "The default limit of every key (each key on its own)");
  auto* og = set->add_option("--group", s->group, "A group's limit (its members together)");
  auto* ok = set->add_option("--key", s->key, "A key's provisioned reservation (key id; --provisioned-tokens-per-s only)");
  om->excludes(od)->excludes(og)->excludes(ok);
  od->excludes(og)->excludes(ok);
  og->excludes(ok);
  set->add_option("--qpm", s->qpm, "Queries per minute");
  set->add_option("--tpm", s->tpm, "Tokens per minute (prompt + max_tokens reserved at admission)");
  set->add_option("--provisioned-tokens-per-s", s->provisioned,
                  "Provisioned throughput: tokens/s served in the Provisioned class, before best-effort traffic");
  set->callback([s] {
    std::string scope = !s->model.empty() ? "model"
                        : s->def          ? "default"
                        : !s->group.empty() ? "group"
                        : !s->key.empty()   ? "key"
                                            : "";
    if (scope.empty()) bad_input("limits set: give one of --model M, --default, --group G, --key ID");
    const std::string target = scope == "model" ? s->model : scope == "group" ? s->group : s->key;
    gov::LimitRecord l = gov::make_limit(scope, target, limit_arg(s->qpm, "--qpm"), limit_arg(s->tpm, "--tpm"),
                                         limit_arg(s->provisioned, "--provisioned-tokens-per-s"));
    auto st = gov::open_store(s->state);
    st->set_limit(l);
    print_json(gov::limit_json(l));
  });
  auto ls = std::make_shared<std::pair<std::string, bool>>();
  CLI::App* list = limits->add_subcommand("list", "List limits");
  add_state(list, ls->first);
  list->add_flag("--json", ls->second, "One JSON array");
  list->callback([ls] {
    auto st = gov::open_store(ls->first);
    auto all = st->list_limits();
    if (ls->second) {
      json arr = json::array();
      for (const auto& l : all) arr.push_back(gov::limit_json(l));
      print_json(arr);
      return;
    }
    std::printf("%-8s %-24s %-10s %-12s %s\n", "SCOPE", "TARGET", "QPM", "TPM", "PROVISIONED/S");
    for (const auto& l : all)
      std::printf("%-8s %-24s %-10s %-12s %s\n", l.scope.c_str(), l.target.empty() ? "-" : l.target.c_str(),
                  num_or_dash(l.qpm).c_str(), num_or_dash(l.tpm).c_str(), num_or_dash(l.provisioned_tps).c_str());
  });
}

void add_prices(CLI::App& app) {
  CLI::App* prices = app.add_subcommand("prices", "Pay-per-token prices per model");
  prices->require_subcommand(1);
  struct Set {
    std::string state, model;
    double in = -1, out = -1;
  };
  auto s = std::make_shared<Set>();
  CLI::App* set = prices->add_subcommand("set", "Set a model's price per million tokens");
  add_state(set, s->state);
  set->add_option("--model", s->model, "Model")->required();
  set->add_option("--input-per-mtok", s->in, "Price of a million prompt tokens")->required();
  set->add_option("--output-per-mtok", s->out, "Price of a million completion tokens")->required();
  set->callback([s] {
    gov::Price p = gov::make_price(s->model, s->in, s->out);
    auto st = gov::open_store(s->state);
    st->set_price(p);
    print_json({{"model", p.model}, {"input_per_mtok", p.input_per_mtok}, {"output_per_mtok", p.output_per_mtok}});
  });
  auto ls = std::make_shared<std::string>();
  CLI::App* list = prices->add_subcommand("list", "List prices (JSON)");
  add_state(list, *ls);
  list->callback([ls] {
    auto st = gov::open_store(*ls);
    json arr = json::array();
    for (const auto& p : st->list_prices())
      arr.push_back({{"model", p.model}, {"input_per_mtok", p.input_per_mtok}, {"output_per_mtok", p.output_per_mtok}});
    print_json(arr);
  });
}

std::string csv_field(const std::string& s) {
  if (s.find_first_of(",\"\n") == std::string::npos) return s;
  std::string o = "\"";
  for (char c : s) o += c == '"' ? std::string("\"\"") : std::string(1, c);
  return o + "\"";
}

void add_usage(CLI::App& app) {
  struct U {
    std::string state, by, since, until, format = "table", key, context;
    bool rows = false;
  };
  auto u = std::make_shared<U>();
  CLI::App* usage = app.add_subcommand("usage", "Usage totals (requests, tokens, cost), grouped");
  add_state(usage, u->state);
  usage->add_option("--by", u->by, "Group by any of key,model,day,context");
  usage->add_option("--since", u->since, "From (YYYY-MM-DD, YYYY-MM-DDTHH:MM:SSZ or unix seconds)");
  usage->add_option("--until", u->until, "Until, exclusive");
  usage->add_option("--key", u->key, "Only this key id");
  usage->add_option("--context", u->context, "Only requests sent online or by the Batch API: online | batch");
  usage->add_option("--format", u->format, "table | csv | json")->capture_default_str();
  usage->add_flag("--rows", u->rows, "The rows themselves, one JSON object a line (no grouping)");
  usage->callback([u] {
    if (u->format != "table" && u->format != "csv" && u->format != "json")
      bad_input("--format: expected table, csv or json");
    gov::UsageQuery q;
    gov::parse_group_by(u->by, q);
    if (!u->since.empty()) q.since_ms = gov::parse_time_ms(u->since, "--since");
    if (!u->until.empty()) q.until_ms = gov::parse_time_ms(u->until, "--until");
    q.key_id = u->key;
    q.context = gov::parse_usage_context(u->context);
    auto st = gov::open_store(u->state);
    if (u->rows) {
      for (const auto& r : st->list_usage(q)) print_json(gov::usage_row_json(r));
      return;
    }
    auto rows = st->query_usage(q);
    if (u->format == "json") {
      json arr = json::array();
      for (const auto& t : rows) arr.push_back(gov::usage_json(t, q));
      print_json(arr);
      return;
    }
    std::vector<std::string> cols;
    if (q.by_key) cols.push_back("key_id");
    if (q.by_model) cols.push_back("model");
    if (q.by_day) cols.push_back("day");
    if (q.by_context) cols.push_back("context");
    for (const char* c : {"requests", "prompt_tokens", "cached_tokens", "completion_tokens", "cost"}) cols.push_back(c);
    const bool csv = u->format == "csv";
    auto line = [&](const std::vector<std::string>& v) {
      std::string s;
      for (size_t i = 0; i < v.size(); ++i) {
        if (csv) s += (i ? "," : "") + csv_field(v[i]);
        else {
          char b[64];
          std::snprintf(b, sizeof b, i + 5 < v.size() ? "%-24s " : "%18s ", v[i].c_str());
          s += b;
        }
      }
      std::printf("%s\n", s.c_str());
    };
    line(cols);
    for (const auto& t : rows) {
      std::vector<std::string> v;
      if (q.by_key) v.push_back(t.key_id);
      if (q.by_model) v.push_back(t.model);
      if (q.by_day) v.push_back(t.day);
      if (q.by_context) v.push_back(t.context);
      char cost[64];
      std::snprintf(cost, sizeof cost, "%.6f", t.cost);
      for (int64_t x : {t.requests, t.prompt_tokens, t.cached_tokens, t.completion_tokens}) v.push_back(std::to_string(x));
      v.push_back(cost);
      line(v);
    }
  });
}

void add_payloads(CLI::App& app) {
  CLI::App* payloads = app.add_subcommand("payloads", "Inference tables: logged request/response payloads");
  payloads->require_subcommand(1);
  struct E {
    std::string state, since, model;
  };
  auto e = std::make_shared<E>();
  CLI::App* exp = payloads->add_subcommand("export", "Write payload rows as JSONL on stdout");
  add_state(exp, e->state);
  exp->add_option("--since", e->since, "From (YYYY-MM-DD, ... or unix seconds)");
  exp->add_option("--model", e->model, "Only this model");
  exp->callback([e] {
    std::optional<int64_t> since;
    if (!e->since.empty()) since = gov::parse_time_ms(e->since, "--since");
    auto st = gov::open_store(e->state);
    for (const auto& p : st->export_payloads(since, e->model)) print_json(gov::payload_json(p));
  });
}

void add_state_check(CLI::App& app) {
  CLI::App* state = app.add_subcommand("state", "The governance state store itself");
  state->require_subcommand(1);
  auto s = std::make_shared<std::string>();
  CLI::App* check = state->add_subcommand("check", "Open (and migrate) the store and check it; prints ok or the problems");
  add_state(check, *s);
  check->callback([s] {
    auto st = gov::open_store(*s);
    std::string r = st->check();
    std::printf("%s\n", r.c_str());
    if (r != "ok") throw Error(ErrorKind::BadInput, "state check failed: " + r);
  });
}

}  // namespace

void add_governance(CLI::App& app) {
  add_state_check(app);
  add_keys(app);
  add_limits(app);
  add_prices(app);
  add_usage(app);
  add_payloads(app);
}

}  // namespace ms::cli
