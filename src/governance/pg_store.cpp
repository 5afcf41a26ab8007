// pg_store.cpp — the shared store: PostgreSQL through pgsql/pg_conn.h, every
// statement with its parameters bound, never spliced. A lost connection is
// reset on the next call; until it comes back calls throw Error(Internal),
// which the server turns into 503 (fail closed).
#include <limits>
#include <mutex>

#include "core/error.h"
#include "governance/schema.h"
#include "governance/store.h"
#include "pgsql/pg_conn.h"

namespace ms::gov {

namespace {

using pg::Result;

class PgStore final : public Store {
 public:
  explicit PgStore(const std::string& url) : db_(url) { migrate(); }

  std::string kind() const override { return "postgresql"; }

  int schema_version() override {
    std::lock_guard<std::mutex> lk(mu_);
    Result r = q("SELECT COALESCE(MAX(version), 0) FROM schema_version", {});
    return static_cast<int>(r.i64(0, 0));
  }

  void create_key(const KeyRecord& k) override {
    std::lock_guard<std::mutex> lk(mu_);
    q("INSERT INTO api_keys (id, name, prefix, secret_hash, role, models, grp, qpm, tpm, created_ms, expires_ms, "
      "revoked_ms) VALUES ($1, $2, $3, $4, $5, $6, $7, $8::bigint, $9::bigint, $10::bigint, $11::bigint, 0)",
      {k.id, k.name, k.prefix, k.secret_hash, k.role, join_models(k.models), k.group, n(k.qpm), n(k.tpm),
       n(k.created_ms), n(k.expires_ms)});
  }

  std::vector<KeyRecord> list_keys() override {
    std::lock_guard<std::mutex> lk(mu_);
    Result r = q("SELECT id, name, prefix, secret_hash, role, models, grp, qpm, tpm, created_ms, expires_ms, "
                 "revoked_ms FROM api_keys ORDER BY created_ms, id",
                 {});
    std::vector<KeyRecord> out;
    for (int i = 0; i < r.rows(); ++i) {
      KeyRecord k;
      k.id = r.str(i, 0), k.name = r.str(i, 1), k.prefix = r.str(i, 2), k.secret_hash = r.str(i, 3);
      k.role = r.str(i, 4), k.models = split_models(r.str(i, 5)), k.group = r.str(i, 6);
      k.qpm = r.i64(i, 7), k.tpm = r.i64(i, 8), k.created_ms = r.i64(i, 9), k.expires_ms = r.i64(i, 10);
      k.revoked_ms = r.i64(i, 11);
      out.push_back(std::move(k));
    }
    return out;
  }

  bool revoke_key(const std::string& id, int64_t now_ms) override {
    std::lock_guard<std::mutex> lk(mu_);
    Result r = q("UPDATE api_keys SET revoked_ms = CASE WHEN revoked_ms = 0 THEN $2::bigint ELSE revoked_ms END "
                 "WHERE id = $1 RETURNING id",
                 {id, n(now_ms)});
    return r.rows() > 0;
  }

  void set_limit(const LimitRecord& l) override {
    std::lock_guard<std::mutex> lk(mu_);
    q("INSERT INTO limits (scope, target, qpm, tpm, provisioned_tps) VALUES ($1, $2, $3::bigint, $4::bigint, "
      "$5::bigint) ON CONFLICT (scope, target) DO UPDATE SET qpm = EXCLUDED.qpm, tpm = EXCLUDED.tpm, "
      "provisioned_tps = EXCLUDED.provisioned_tps",
      {l.scope, l.target, n(l.qpm), n(l.tpm), n(l.provisioned_tps)});
  }

  std::vector<LimitRecord> list_limits() override {
    std::lock_guard<std::mutex> lk(mu_);
    Result r = q("SELECT scope, target, qpm, tpm, provisioned_tps FROM limits ORDER BY scope, target", {});
    std::vector<LimitRecord> out;
    for (int i = 0; i < r.rows(); ++i)
      out.push_back({r.str(i, 0), r.str(i, 1), r.i64(i, 2), r.i64(i, 3), r.i64(i, 4)});
    return out;
  }

  void set_price(const Price& p) override {
    std::lock_guard<std::mutex> lk(mu_);
    q("INSERT INTO prices (model, input_per_mtok, output_per_mtok) VALUES ($1, $2::float8, $3::float8) ON CONFLICT "
      "(model) DO UPDATE SET input_per_mtok = EXCLUDED.input_per_mtok, output_per_mtok = EXCLUDED.output_per_mtok",
      {p.model, d(p.input_per_mtok), d(p.output_per_mtok)});
  }

  std::vector<Price> list_prices() override {
    std::lock_guard<std::mutex> lk(mu_);
    Result r = q("SELECT model, input_per_mtok, output_per_mtok FROM prices ORDER BY model", {});
    std::vector<Price> out;
    for (int i = 0; i < r.rows(); ++i) out.push_back({r.str(i, 0), r.f64(i, 1), r.f64(i, 2)});
    return out;
  }

  void insert_usage(const std::vector<UsageRow>& rows, const std::vector<PayloadRow>& payloads) override {
    std::lock_guard<std::mutex> lk(mu_);
    q("BEGIN", {});
    try {
      for (const UsageRow& r : rows)
        q(usage_insert_sql(Dialect::Postgres),
          {r.request_id, n(r.ts_ms), r.key_id, r.model, n(r.prompt_tokens), n(r.cached_tokens), n(r.completion_tokens),
           n(r.status), n(r.stream), d(r.ttft_ms), d(r.duration_ms), r.finish_reason, d(r.cost), r.usage_context});
      for (const PayloadRow& r : payloads)
        q("INSERT INTO payloads (request_id, ts_ms, key_id, model, status, latency_ms, request, response, truncated) "
          "VALUES ($1, $2::bigint, $3, $4, $5::int, $6::float8, $7, $8, $9::int) ON CONFLICT (request_id) DO NOTHING",
          {r.request_id, n(r.ts_ms), r.key_id, r.model, n(r.status), d(r.latency_ms), r.request, r.response,
           n(r.truncated)});
      q("COMMIT", {});
    } catch (...) {
      db_.rollback_quietly();
      throw;
    }
  }

  std::vector<UsageTotals> query_usage(const UsageQuery& uq) override {
    std::lock_guard<std::mutex> lk(mu_);
    Result r = q(usage_sql(uq, Dialect::Postgres),
                 {n(uq.since_ms.value_or(std::numeric_limits<int64_t>::min())),
                  n(uq.until_ms.value_or(std::numeric_limits<int64_t>::max())), uq.key_id, uq.context});
    std::vector<UsageTotals> out;
    for (int i = 0; i < r.rows(); ++i) {
      UsageTotals t;
      int c = 0;
      if (uq.by_key) t.key_id = r.str(i, c++);
      if (uq.by_model) t.model = r.str(i, c++);
      if (uq.by_day) t.day = r.str(i, c++);
      if (uq.by_context) t.context = r.str(i, c++);
      t.requests = r.i64(i, c), t.prompt_tokens = r.i64(i, c + 1), t.cached_tokens = r.i64(i, c + 2);
      t.completion_tokens = r.i64(i, c + 3), t.cost = r.f64(i, c + 4);
      out.push_back(std::move(t));
    }
    return out;
  }

  std::vector<UsageRow> list_usage(const UsageQuery& uq) override {
    std::lock_guard<std::mutex> lk(mu_);
    Result r = q(usage_rows_sql(Dialect::Postgres),
                 {n(uq.since_ms.value_or(std::numeric_limits<int64_t>::min())),
                  n(uq.until_ms.value_or(std::numeric_limits<int64_t>::max())), uq.key_id, uq.context});
    std::vector<UsageRow> out;
    for (int i = 0; i < r.rows(); ++i) {
      UsageRow u;
      u.request_id = r.str(i, 0), u.ts_ms = r.i64(i, 1), u.key_id = r.str(i, 2), u.model = r.str(i, 3);
      u.prompt_tokens = r.i64(i, 4), u.cached_tokens = r.i64(i, 5), u.completion_tokens = r.i64(i, 6);
      u.status = static_cast<int>(r.i64(i, 7)), u.stream = r.i64(i, 8) != 0, u.ttft_ms = r.f64(i, 9);
      u.duration_ms = r.f64(i, 10), u.finish_reason = r.str(i, 11), u.cost = r.f64(i, 12);
      u.usage_context = r.str(i, 13);
      out.push_back(std::move(u));
    }
    return out;
  }

  std::string check() override {
    std::lock_guard<std::mutex> lk(mu_);
    Result r = q("SELECT COALESCE(MAX(version), 0) FROM schema_version", {});
    return r.i64(0, 0) == kSchemaVersion ? "ok" : "schema version " + r.str(0, 0);
  }

  std::vector<PayloadRow> export_payloads(std::optional<int64_t> since_ms, const std::string& model) override {
    std::lock_guard<std::mutex> lk(mu_);
    Result r = q("SELECT request_id, ts_ms, key_id, model, status, latency_ms, request, response, truncated FROM "
                 "payloads WHERE ts_ms >= $1::bigint AND ($2::text = '' OR model = $2::text) ORDER BY ts_ms, request_id",
                 {n(since_ms.value_or(std::numeric_limits<int64_t>::min())), model});
    std::vector<PayloadRow> out;
    for (int i = 0; i < r.rows(); ++i) {
      PayloadRow p;
      p.request_id = r.str(i, 0), p.ts_ms = r.i64(i, 1), p.key_id = r.str(i, 2), p.model = r.str(i, 3);
      p.status = static_cast<int>(r.i64(i, 4)), p.latency_ms = r.f64(i, 5), p.request = r.str(i, 6);
      p.response = r.str(i, 7), p.truncated = r.i64(i, 8) != 0;
      out.push_back(std::move(p));
    }
    return out;
  }

  int64_t prune_payloads(int64_t before_ms) override {
    std::lock_guard<std::mutex> lk(mu_);
    Result r = q("DELETE FROM payloads WHERE ts_ms < $1::bigint RETURNING request_id", {n(before_ms)});
    return r.rows();
  }

  bool shared_counters() const override { return true; }

  std::pair<int64_t, int64_t> lease_counter(const std::string& scope, const std::string& target, int64_t minute,
                                            int64_t qpm, int64_t tpm, int64_t want_r, int64_t want_t,
                                            int64_t min_t) override {
    std::lock_guard<std::mutex> lk(mu_);
    Result r = q("SELECT got_r, got_t FROM ms_lease($1, $2, $3::bigint, $4::bigint, $5::bigint, $6::bigint, "
                 "$7::bigint, $8::bigint)",
                 {scope, target, n(minute), n(qpm), n(tpm), n(want_r), n(want_t), n(min_t)});
    return {r.i64(0, 0), r.i64(0, 1)};
  }

  void relax_durability() override {
    std::lock_guard<std::mutex> lk(mu_);
    q("SET synchronous_commit TO off", {});
  }

  void prune_counters(int64_t minute) override {
    std::lock_guard<std::mutex> lk(mu_);
    q("DELETE FROM rate_counters WHERE minute < $1::bigint", {n(minute)});
  }

  void ping() override {
    std::lock_guard<std::mutex> lk(mu_);
    q("SELECT 1", {});
  }

 private:
  static std::string n(int64_t v) { return std::to_string(v); }
  static std::string d(double v) {
    char b[64];
    std::snprintf(b, sizeof b, "%.17g", v);
    return b;
  }

  Result q(const std::string& sql, const std::vector<pg::Param>& params) { return db_.q(sql, params); }

  void migrate() {
    std::lock_guard<std::mutex> lk(mu_);
    q("BEGIN", {});
    try {
      q("SELECT pg_advisory_xact_lock(7461734)", {});  // replicas starting together migrate one at a time
      q("CREATE TABLE IF NOT EXISTS schema_version (version INTEGER NOT NULL)", {});
      const int have = static_cast<int>(q("SELECT COALESCE(MAX(version), 0) FROM schema_version", {}).i64(0, 0));
      const int supported = static_cast<int>(migrations().size());
      if (have > supported)
        bad_input("the PostgreSQL state at " + db_.shown() + " has schema version " + std::to_string(have) +
                  ", newer than this moeserve supports (" + std::to_string(supported) + "); use a newer moeserve");
      for (int v = have + 1; v <= supported; ++v) {
        for (const std::string& sql : migrations()[v - 1]) q(sql.rfind("pg:", 0) == 0 ? sql.substr(3) : sql, {});
        q("DELETE FROM schema_version", {});
        q("INSERT INTO schema_version (version) VALUES ($1::int)", {n(v)});
      }
      q("COMMIT", {});
    } catch (...) {
      db_.rollback_quietly();
      throw;
    }
  }

  pg::Conn db_;
  std::mutex mu_;
};

}  // namespace

std::unique_ptr<Store> make_pg_store(const std::string& url) { return std::make_unique<PgStore>(url); }

}  // namespace ms::gov
