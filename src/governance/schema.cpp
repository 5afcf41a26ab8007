// schema.cpp — migrations and the usage query (see schema.h).
#include "governance/schema.h"

namespace ms::gov {

const std::vector<std::vector<std::string>>& migrations() {
  static const std::vector<std::vector<std::string>> m = {
      // 1: keys, limits, prices, usage.
      {"CREATE TABLE api_keys (id TEXT PRIMARY KEY, name TEXT NOT NULL, prefix TEXT NOT NULL, "
       "secret_hash TEXT NOT NULL UNIQUE, role TEXT NOT NULL, models TEXT NOT NULL, grp TEXT NOT NULL DEFAULT '', "
       "qpm BIGINT NOT NULL DEFAULT -1, tpm BIGINT NOT NULL DEFAULT -1, created_ms BIGINT NOT NULL, "
       "expires_ms BIGINT NOT NULL DEFAULT 0, revoked_ms BIGINT NOT NULL DEFAULT 0)",
       "CREATE TABLE limits (scope TEXT NOT NULL, target TEXT NOT NULL, qpm BIGINT NOT NULL DEFAULT -1, "
       "tpm BIGINT NOT NULL DEFAULT -1, PRIMARY KEY (scope, target))",
       "CREATE TABLE prices (model TEXT PRIMARY KEY, input_per_mtok DOUBLE PRECISION NOT NULL, "
       "output_per_mtok DOUBLE PRECISION NOT NULL)",
       "CREATE TABLE usage_log (request_id TEXT NOT NULL, ts_ms BIGINT NOT NULL, key_id TEXT NOT NULL, "
       "model TEXT NOT NULL, prompt_tokens BIGINT NOT NULL, cached_tokens BIGINT NOT NULL, "
       "completion_tokens BIGINT NOT NULL, status INTEGER NOT NULL, stream INTEGER NOT NULL, "
       "ttft_ms DOUBLE PRECISION NOT NULL, duration_ms DOUBLE PRECISION NOT NULL, finish_reason TEXT NOT NULL, "
       "cost DOUBLE PRECISION NOT NULL)",
       "CREATE INDEX usage_log_ts ON usage_log (ts_ms)",
       "CREATE INDEX usage_log_key_ts ON usage_log (key_id, ts_ms)"},
      // 2: inference tables (payloads) and the replicas' shared rate counters.
      {"CREATE TABLE payloads (request_id TEXT PRIMARY KEY, ts_ms BIGINT NOT NULL, key_id TEXT NOT NULL, "
       "model TEXT NOT NULL, status INTEGER NOT NULL, latency_ms DOUBLE PRECISION NOT NULL, request TEXT NOT NULL, "
       "response TEXT NOT NULL, truncated INTEGER NOT NULL)",
       "CREATE INDEX payloads_ts ON payloads (ts_ms)",
       "CREATE TABLE rate_counters (scope TEXT NOT NULL, target TEXT NOT NULL, minute BIGINT NOT NULL, "
       "requests BIGINT NOT NULL, tokens BIGINT NOT NULL, PRIMARY KEY (scope, target, minute))",
       // Admission on PostgreSQL: a replica leases a share of a level's minute
       // (atomically, under the row lock), never more than the limit leaves.
       "pg:CREATE FUNCTION ms_lease(s TEXT, t TEXT, m BIGINT, qpm BIGINT, tpm BIGINT, want_r BIGINT, "
       "want_t BIGINT, min_t BIGINT, OUT got_r BIGINT, OUT got_t BIGINT) LANGUAGE plpgsql AS $fn$\n"
       "DECLARE cr BIGINT; ct BIGINT;\n"
       "BEGIN\n"
       "  INSERT INTO rate_counters (scope, target, minute, requests, tokens) VALUES (s, t, m, 0, 0)\n"
       "    ON CONFLICT DO NOTHING;\n"
       "  SELECT requests, tokens INTO cr, ct FROM rate_counters\n"
       "    WHERE scope = s AND target = t AND minute = m FOR UPDATE;\n"
       "  got_r := CASE WHEN qpm < 0 THEN want_r ELSE LEAST(want_r, qpm - cr) END;\n"
       "  got_t := CASE WHEN tpm < 0 THEN want_t ELSE LEAST(want_t, tpm - ct) END;\n"
       "  IF got_r < 1 OR got_t < min_t THEN got_r := 0; got_t := 0; RETURN; END IF;\n"
       "  UPDATE rate_counters SET requests = requests + got_r, tokens = tokens + got_t\n"
       "    WHERE scope = s AND target = t AND minute = m;\n"
       "END $fn$"},
      // 3: provisioned throughput (reserved tokens/s) on a limit level.
      {"ALTER TABLE limits ADD COLUMN provisioned_tps BIGINT NOT NULL DEFAULT -1"},
      // 4: where a usage row came from: "" online, "batch" (Batch API, moeserve batch).
      {"ALTER TABLE usage_log ADD COLUMN usage_context TEXT NOT NULL DEFAULT ''"},
      // 5: one usage row per batch line (its request id names the batch and
      // the line): a line run again after a crash is not billed twice
      // (usage_insert_sql in schema.h).
      {"CREATE UNIQUE INDEX usage_log_batch_line ON usage_log (request_id) WHERE usage_context = 'batch'"},
  };
  return m;
}

std::string usage_insert_sql(Dialect d) {
  const bool pg = d == Dialect::Postgres;
  return std::string("INSERT INTO usage_log (request_id, ts_ms, key_id, model, prompt_tokens, cached_tokens, "
                     "completion_tokens, status, stream, ttft_ms, duration_ms, finish_reason, cost, usage_context) ") +
         (pg ? "VALUES ($1, $2::bigint, $3, $4, $5::bigint, $6::bigint, $7::bigint, $8::int, $9::int, $10::float8, "
               "$11::float8, $12, $13::float8, $14) "
             : "VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14) ") +
         "ON CONFLICT (request_id) WHERE usage_context = 'batch' DO UPDATE SET ts_ms = excluded.ts_ms, "
         "key_id = excluded.key_id, model = excluded.model, prompt_tokens = excluded.prompt_tokens, "
         "cached_tokens = excluded.cached_tokens, completion_tokens = excluded.completion_tokens, "
         "status = excluded.status, stream = excluded.stream, ttft_ms = excluded.ttft_ms, "
         "duration_ms = excluded.duration_ms, finish_reason = excluded.finish_reason, cost = excluded.cost "
         "WHERE usage_log.status <> 200 AND excluded.status = 200";
}

std::string join_models(const std::vector<std::string>& m) {
  std::string s;
  for (size_t i = 0; i < m.size(); ++i) s += (i ? "," : "") + m[i];
  return s;
}

std::vector<std::string> split_models(const std::string& s) {
  std::vector<std::string> out;
  size_t start = 0;
  while (start <= s.size()) {
    size_t c = s.find(',', start);
    if (c == std::string::npos) c = s.size();
    if (c > start) out.push_back(s.substr(start, c - start));
    start = c + 1;
  }
  return out;
}

namespace {
// The row's usage context as reported: "online" for requests sent online (stored as '').
constexpr const char* kContext = "(CASE WHEN usage_context = '' THEN 'online' ELSE usage_context END)";
}  // namespace

std::string usage_sql(const UsageQuery& q, Dialect d) {
  const bool pg = d == Dialect::Postgres;
  const std::string day = pg ? "to_char(to_timestamp(ts_ms / 1000.0) AT TIME ZONE 'UTC', 'YYYY-MM-DD')"
                             : "strftime('%Y-%m-%d', ts_ms / 1000, 'unixepoch')";
  std::string cols, group;
  auto add = [&](const std::string& expr, const std::string& name) {
    cols += expr + " AS " + name + ", ";
    group += (group.empty() ? "" : ", ") + name;
  };
  if (q.by_key) add("key_id", "key_id");
  if (q.by_model) add("model", "model");
  if (q.by_day) add(day, "day");
  if (q.by_context) add(kContext, "context");
  const std::string p1 = pg ? "$1::bigint" : "?1", p2 = pg ? "$2::bigint" : "?2", p3 = pg ? "$3::text" : "?3";
  const std::string p4 = pg ? "$4::text" : "?4";
  std::string sql = "SELECT " + cols +
                    "COUNT(*), COALESCE(SUM(prompt_tokens), 0), COALESCE(SUM(cached_tokens), 0), "
                    "COALESCE(SUM(completion_tokens), 0), COALESCE(SUM(cost), 0) FROM usage_log WHERE ts_ms >= " +
                    p1 + " AND ts_ms < " + p2 + " AND (" + p3 + " = '' OR key_id = " + p3 + ") AND (" + p4 +
                    " = '' OR " + kContext + " = " + p4 + ")";
  if (!group.empty()) sql += " GROUP BY " + group + " ORDER BY " + group;
  return sql;
}

std::string usage_rows_sql(Dialect d) {
  const bool pg = d == Dialect::Postgres;
  const std::string p1 = pg ? "$1::bigint" : "?1", p2 = pg ? "$2::bigint" : "?2", p3 = pg ? "$3::text" : "?3";
  const std::string p4 = pg ? "$4::text" : "?4";
  return "SELECT request_id, ts_ms, key_id, model, prompt_tokens, cached_tokens, completion_tokens, status, stream, "
         "ttft_ms, duration_ms, finish_reason, cost, usage_context FROM usage_log WHERE ts_ms >= " +
         p1 + " AND ts_ms < " + p2 + " AND (" + p3 + " = '' OR key_id = " + p3 + ") AND (" + p4 + " = '' OR " +
         kContext + " = " + p4 + ") ORDER BY ts_ms, request_id";
}

bool KeyRecord::allows_model(const std::string& m) const {
  for (const auto& x : models)
    if (x == "*" || x == m) return true;
  return false;
}

}  // namespace ms::gov
