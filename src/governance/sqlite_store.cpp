// sqlite_store.cpp — the embedded store: one SQLite file in WAL mode, created
// 0600, every statement prepared with bound parameters (see store.h).
#include <fcntl.h>
#include <sqlite3.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <limits>
#include <mutex>

#include "core/error.h"
#include "governance/schema.h"
#include "governance/store.h"
#include "sqlitedb/stmt.h"

namespace ms::gov {

namespace {

using sqlitedb::Stmt;

class SqliteStore final : public Store {
 public:
  SqliteStore(const std::string& path, int target_version) : path_(path) {
    // Create the file 0600 ourselves: SQLite would use the umask. Its -wal and
    // -shm files copy the database file's permissions.
    int fd = ::open(path.c_str(), O_RDWR | O_CREAT | O_CLOEXEC, 0600);
    if (fd < 0) {
      if (errno == EACCES || errno == EROFS) {
        fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
        if (fd >= 0) {
          ::close(fd);
          bad_input("state file " + path + " is read-only: moeserve needs to write it (chmod u+w, or another --state)");
        }
      }
      bad_input("cannot open state file " + path + ": " + std::strerror(errno));
    }
    ::close(fd);
    if (sqlite3_open_v2(path.c_str(), &db_, SQLITE_OPEN_READWRITE | SQLITE_OPEN_FULLMUTEX, nullptr) != SQLITE_OK) {
      std::string m = db_ ? sqlite3_errmsg(db_) : "out of memory";
      sqlite3_close(db_);
      bad_input("cannot open state file " + path + ": " + m);
    }
    try {
      sqlite3_busy_timeout(db_, 5000);
      exec_simple("PRAGMA journal_mode=WAL");
      exec_simple("PRAGMA synchronous=FULL");
      migrate(target_version);
    } catch (const Error& e) {
      sqlite3_close(db_);
      db_ = nullptr;
      std::string m = e.what();
      if (m.find("not a database") != std::string::npos || m.find("malformed") != std::string::npos)
        bad_input("state file " + path + " is not a usable moeserve state database (" + m + ")");
      if (m.find("readonly") != std::string::npos || m.find("read-only") != std::string::npos)
        bad_input("state file " + path + " is read-only: moeserve needs to write it");
      throw;
    }
  }
  ~SqliteStore() override {
    if (db_) sqlite3_close(db_);
  }

  std::string kind() const override { return "sqlite"; }

  int schema_version() override {
    std::lock_guard<std::mutex> lk(mu_);
    return version_locked();
  }

  void create_key(const KeyRecord& k) override {
    std::lock_guard<std::mutex> lk(mu_);
    Stmt s(db_,
           "INSERT INTO api_keys (id, name, prefix, secret_hash, role, models, grp, qpm, tpm, created_ms, expires_ms, "
           "revoked_ms) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, 0)",
           where("create key"));
    s.bind(1, k.id).bind(2, k.name).bind(3, k.prefix).bind(4, k.secret_hash).bind(5, k.role);
    s.bind(6, join_models(k.models)).bind(7, k.group).bind(8, k.qpm).bind(9, k.tpm).bind(10, k.created_ms);
    s.bind(11, k.expires_ms).run();
  }

  std::vector<KeyRecord> list_keys() override {
    std::lock_guard<std::mutex> lk(mu_);
    Stmt s(db_,
           "SELECT id, name, prefix, secret_hash, role, models, grp, qpm, tpm, created_ms, expires_ms, revoked_ms "
           "FROM api_keys ORDER BY created_ms, id",
           where("list keys"));
    std::vector<KeyRecord> out;
    while (s.step()) {
      KeyRecord k;
      k.id = s.str(0), k.name = s.str(1), k.prefix = s.str(2), k.secret_hash = s.str(3), k.role = s.str(4);
      k.models = split_models(s.str(5));
      k.group = s.str(6), k.qpm = s.i64(7), k.tpm = s.i64(8);
      k.created_ms = s.i64(9), k.expires_ms = s.i64(10), k.revoked_ms = s.i64(11);
      out.push_back(std::move(k));
    }
    return out;
  }

  bool revoke_key(const std::string& id, int64_t now_ms) override {
    std::lock_guard<std::mutex> lk(mu_);
    Stmt s(db_, "UPDATE api_keys SET revoked_ms = CASE WHEN revoked_ms = 0 THEN ?2 ELSE revoked_ms END WHERE id = ?1",
           where("revoke key"));
    s.bind(1, id).bind(2, now_ms).run();
    return sqlite3_changes(db_) > 0;
  }

  void set_limit(const LimitRecord& l) override {
    std::lock_guard<std::mutex> lk(mu_);
    Stmt s(db_,
           "INSERT INTO limits (scope, target, qpm, tpm, provisioned_tps) VALUES (?1, ?2, ?3, ?4, ?5) ON CONFLICT "
           "(scope, target) DO UPDATE SET qpm = excluded.qpm, tpm = excluded.tpm, provisioned_tps = excluded.provisioned_tps",
           where("set limit"));
    s.bind(1, l.scope).bind(2, l.target).bind(3, l.qpm).bind(4, l.tpm).bind(5, l.provisioned_tps).run();
  }

  std::vector<LimitRecord> list_limits() override {
    std::lock_guard<std::mutex> lk(mu_);
    Stmt s(db_, "SELECT scope, target, qpm, tpm, provisioned_tps FROM limits ORDER BY scope, target",
           where("list limits"));
    std::vector<LimitRecord> out;
    while (s.step()) out.push_back({s.str(0), s.str(1), s.i64(2), s.i64(3), s.i64(4)});
    return out;
  }

  void set_price(const Price& p) override {
    std::lock_guard<std::mutex> lk(mu_);
    Stmt s(db_,
           "INSERT INTO prices (model, input_per_mtok, output_per_mtok) VALUES (?1, ?2, ?3) ON CONFLICT (model) DO "
           "UPDATE SET input_per_mtok = excluded.input_per_mtok, output_per_mtok = excluded.output_per_mtok",
           where("set price"));
    s.bind(1, p.model).bind(2, p.input_per_mtok).bind(3, p.output_per_mtok).run();
  }

  std::vector<Price> list_prices() override {
    std::lock_guard<std::mutex> lk(mu_);
    Stmt s(db_, "SELECT model, input_per_mtok, output_per_mtok FROM prices ORDER BY model", where("list prices"));
    std::vector<Price> out;
    while (s.step()) out.push_back({s.str(0), s.f64(1), s.f64(2)});
    return out;
  }

  void insert_usage(const std::vector<UsageRow>& rows, const std::vector<PayloadRow>& payloads) override {
    std::lock_guard<std::mutex> lk(mu_);
    exec_simple("BEGIN IMMEDIATE");
    try {
      const std::string sql = usage_insert_sql(Dialect::Sqlite);
      Stmt s(db_, sql, where("write usage"));
      for (const UsageRow& r : rows) {
        s.bind(1, r.request_id).bind(2, r.ts_ms).bind(3, r.key_id).bind(4, r.model).bind(5, r.prompt_tokens);
        s.bind(6, r.cached_tokens).bind(7, r.completion_tokens).bind(8, int64_t{r.status});
        s.bind(9, int64_t{r.stream}).bind(10, r.ttft_ms).bind(11, r.duration_ms).bind(12, r.finish_reason);
        s.bind(13, r.cost).bind(14, r.usage_context).run();
        s.reset();
      }
      Stmt p(db_,
             "INSERT OR REPLACE INTO payloads (request_id, ts_ms, key_id, model, status, latency_ms, request, "
             "response, truncated) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9)",
             where("write payloads"));
      for (const PayloadRow& r : payloads) {
        p.bind(1, r.request_id).bind(2, r.ts_ms).bind(3, r.key_id).bind(4, r.model).bind(5, int64_t{r.status});
        p.bind(6, r.latency_ms).bind(7, r.request).bind(8, r.response).bind(9, int64_t{r.truncated}).run();
        p.reset();
      }
      exec_simple("COMMIT");
    } catch (...) {
      sqlite3_exec(db_, "ROLLBACK", nullptr, nullptr, nullptr);
      throw;
    }
  }

  std::vector<UsageTotals> query_usage(const UsageQuery& q) override {
    std::lock_guard<std::mutex> lk(mu_);
    Stmt s(db_, usage_sql(q, Dialect::Sqlite), where("query usage"));
    s.bind(1, q.since_ms.value_or(std::numeric_limits<int64_t>::min()));
    s.bind(2, q.until_ms.value_or(std::numeric_limits<int64_t>::max()));
    s.bind(3, q.key_id);
    s.bind(4, q.context);
    std::vector<UsageTotals> out;
    while (s.step()) {
      UsageTotals t;
      int c = 0;
      if (q.by_key) t.key_id = s.str(c++);
      if (q.by_model) t.model = s.str(c++);
      if (q.by_day) t.day = s.str(c++);
      if (q.by_context) t.context = s.str(c++);
      t.requests = s.i64(c), t.prompt_tokens = s.i64(c + 1), t.cached_tokens = s.i64(c + 2);
      t.completion_tokens = s.i64(c + 3), t.cost = s.f64(c + 4);
      out.push_back(std::move(t));
    }
    return out;
  }

  std::vector<UsageRow> list_usage(const UsageQuery& q) override {
    std::lock_guard<std::mutex> lk(mu_);
    Stmt s(db_, usage_rows_sql(Dialect::Sqlite), where("list usage"));
    s.bind(1, q.since_ms.value_or(std::numeric_limits<int64_t>::min()));
    s.bind(2, q.until_ms.value_or(std::numeric_limits<int64_t>::max()));
    s.bind(3, q.key_id);
    s.bind(4, q.context);
    std::vector<UsageRow> out;
    while (s.step()) {
      UsageRow r;
      r.request_id = s.str(0), r.ts_ms = s.i64(1), r.key_id = s.str(2), r.model = s.str(3);
      r.prompt_tokens = s.i64(4), r.cached_tokens = s.i64(5), r.completion_tokens = s.i64(6);
      r.status = static_cast<int>(s.i64(7)), r.stream = s.i64(8) != 0, r.ttft_ms = s.f64(9);
      r.duration_ms = s.f64(10), r.finish_reason = s.str(11), r.cost = s.f64(12);
      r.usage_context = s.str(13);
      out.push_back(std::move(r));
    }
    return out;
  }

  std::string check() override {
    std::lock_guard<std::mutex> lk(mu_);
    Stmt s(db_, "PRAGMA integrity_check", where("integrity check"));
    std::string out;
    while (s.step()) out += (out.empty() ? "" : "; ") + s.str(0);
    return out;
  }

  std::vector<PayloadRow> export_payloads(std::optional<int64_t> since_ms, const std::string& model) override {
    std::lock_guard<std::mutex> lk(mu_);
    Stmt s(db_,
           "SELECT request_id, ts_ms, key_id, model, status, latency_ms, request, response, truncated FROM payloads "
           "WHERE ts_ms >= ?1 AND (?2 = '' OR model = ?2) ORDER BY ts_ms, request_id",
           where("export payloads"));
    s.bind(1, since_ms.value_or(std::numeric_limits<int64_t>::min())).bind(2, model);
    std::vector<PayloadRow> out;
    while (s.step()) {
      PayloadRow r;
      r.request_id = s.str(0), r.ts_ms = s.i64(1), r.key_id = s.str(2), r.model = s.str(3);
      r.status = static_cast<int>(s.i64(4)), r.latency_ms = s.f64(5), r.request = s.str(6);
      r.response = s.str(7), r.truncated = s.i64(8) != 0;
      out.push_back(std::move(r));
    }
    return out;
  }

  int64_t prune_payloads(int64_t before_ms) override {
    std::lock_guard<std::mutex> lk(mu_);
    Stmt s(db_, "DELETE FROM payloads WHERE ts_ms < ?1", where("prune payloads"));
    s.bind(1, before_ms).run();
    return sqlite3_changes(db_);
  }

  void ping() override {
    std::lock_guard<std::mutex> lk(mu_);
    Stmt s(db_, "SELECT 1", where("ping"));
    s.run();
  }

 private:
  std::string where(const char* op) const { return "state " + path_ + " (" + op + ")"; }

  void exec_simple(const char* sql) {  // constant SQL only
    Stmt s(db_, sql, where("setup"));
    s.run();
  }

  int version_locked() {
    Stmt s(db_, "SELECT COALESCE(MAX(version), 0) FROM schema_version", where("schema version"));
    return s.step() ? static_cast<int>(s.i64(0)) : 0;
  }

  void migrate(int target) {
    std::lock_guard<std::mutex> lk(mu_);
    exec_simple("BEGIN IMMEDIATE");
    try {
      exec_simple("CREATE TABLE IF NOT EXISTS schema_version (version INTEGER NOT NULL)");
      const int have = version_locked();
      const int supported = static_cast<int>(migrations().size());
      if (have > supported)
        bad_input("state file " + path_ + " has schema version " + std::to_string(have) +
                  ", newer than this moeserve supports (" + std::to_string(supported) +
                  "); use a newer moeserve or another --state");
      for (int v = have + 1; v <= target; ++v) {
        for (const std::string& sql : migrations()[v - 1]) {
          if (sql.rfind("pg:", 0) == 0) continue;
          Stmt s(db_, sql, where("migrate"));
          s.run();
        }
        Stmt d(db_, "DELETE FROM schema_version", where("migrate"));
        d.run();
        Stmt i(db_, "INSERT INTO schema_version (version) VALUES (?1)", where("migrate"));
        i.bind(1, int64_t{v}).run();
      }
      exec_simple("COMMIT");
    } catch (...) {
      sqlite3_exec(db_, "ROLLBACK", nullptr, nullptr, nullptr);
      throw;
    }
  }

  std::string path_;
  sqlite3* db_ = nullptr;
  std::mutex mu_;
};

}  // namespace

std::unique_ptr<Store> make_sqlite_store(const std::string& path) {
  return std::make_unique<SqliteStore>(path, kSchemaVersion);
}

std::unique_ptr<Store> open_sqlite_at_version(const std::string& path, int version) {
  return std::make_unique<SqliteStore>(path, version);
}

}  // namespace ms::gov
