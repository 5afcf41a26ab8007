// store.h — where governance state lives: one interface, two implementations
// (SqliteStore: embedded file; PgStore: PostgreSQL shared by replicas).
//
// open_store() connects, applies the versioned migrations (an older schema is
// upgraded; a newer one is refused with Error(BadInput)) and returns the
// store. Every statement is prepared with bound parameters. Methods are
// thread-safe (one connection, serialized by a mutex). Failures throw
// ms::Error: BadInput for what a user caused (bad location, corrupt or
// read-only file, newer schema), Internal for a lost connection or an I/O error.
#pragma once
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "governance/types.h"

namespace ms::gov {

inline constexpr int kSchemaVersion = 5;

class Store {
 public:
  virtual ~Store() = default;
  virtual std::string kind() const = 0;  // "sqlite" | "postgresql"
  virtual int schema_version() = 0;

  virtual void create_key(const KeyRecord& k) = 0;
  virtual std::vector<KeyRecord> list_keys() = 0;
  // false: no such key. Revoking a revoked key keeps the first time.
  virtual bool revoke_key(const std::string& id, int64_t now_ms) = 0;

  // Inserts or replaces the limit of (scope, target).
  virtual void set_limit(const LimitRecord& l) = 0;
  virtual std::vector<LimitRecord> list_limits() = 0;
  virtual void set_price(const Price& p) = 0;
  virtual std::vector<Price> list_prices() = 0;

  // One transaction: all rows or none.
  virtual void insert_usage(const std::vector<UsageRow>& rows, const std::vector<PayloadRow>& payloads) = 0;
  virtual std::vector<UsageTotals> query_usage(const UsageQuery& q) = 0;
  // The rows themselves (since/until/key filters; group-by ignored), oldest first.
  virtual std::vector<UsageRow> list_usage(const UsageQuery& q) = 0;
  // "ok", or what is wrong (SQLite: PRAGMA integrity_check; PostgreSQL: reachable and migrated).
  virtual std::string check() = 0;
  virtual std::vector<PayloadRow> export_payloads(std::optional<int64_t> since_ms, const std::string& model) = 0;
  virtual int64_t prune_payloads(int64_t before_ms) = 0;

  // Shared per-minute counters (PostgreSQL only; replicas share them, atomically).
  virtual bool shared_counters() const { return false; }
  // Leases up to want_requests requests and want_tokens tokens of (scope,
  // target)'s minute, never past a limit (< 0: none). Returns what was
  // granted: both 0 when not even 1 request and min_tokens tokens are left.
  virtual std::pair<int64_t, int64_t> lease_counter(const std::string& scope, const std::string& target,
                                                    int64_t minute, int64_t qpm, int64_t tpm, int64_t want_requests,
                                                    int64_t want_tokens, int64_t min_tokens) {
    return {want_requests, want_tokens};
  }
  // Commits without waiting for the WAL flush (PostgreSQL): for the
  // admission connections, whose counters are soft state.
  virtual void relax_durability() {}
  // Deletes counters of minutes before `minute`.
  virtual void prune_counters(int64_t minute) {}
  // Cheap liveness probe; throws when the database is unreachable.
  virtual void ping() = 0;
};

// LOCATION: a file path (SQLite) or a postgresql:// / postgres:// URL.
std::unique_ptr<Store> open_store(const std::string& location);
bool is_postgres_url(const std::string& location);

// For tests: open a SQLite file and migrate it only up to `version`.
std::unique_ptr<Store> open_sqlite_at_version(const std::string& path, int version);

}  // namespace ms::gov
