// governor.h — governance at run time: what the server calls at admission
// (authenticate, permit, admit) and at completion (complete). The engine
// never sees it.
//
// In memory: a snapshot of keys, limits and prices, reloaded from the store
// every second (so a key revoked on another replica is refused within ~1 s)
// and right after an admin change made here; token buckets per (level, id);
// refusal and token counters for /metrics. On PostgreSQL, admission also
// draws on leases of each level's per-minute counter (ms_lease: a share of
// the limit granted atomically), so replicas together never pass a limit in a
// minute and most admissions need no round trip (docs/GOVERNANCE.md). Usage rows are queued and written by one writer thread in batched
// transactions (a row is durable within ~1 s); the request path never waits
// for a write. When the store is unreachable, admission fails closed (503).
#pragma once
#include <array>
#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <deque>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <thread>
#include <unordered_map>
#include <utility>
#include <vector>

#include "governance/store.h"

namespace ms::gov {

struct GovernorOptions {
  std::string location;             // --state
  double log_payloads = 0;          // sampled share of requests with payloads stored
  int payload_retention_days = 0;   // 0 = keep
  int64_t default_reservation = 0;  // TPM reservation when a request has no max_tokens (0: prompt + max_tokens only)
  bool metrics_require_key = false;
  std::chrono::milliseconds refresh{1000};
  std::chrono::milliseconds flush{200};  // the writer's batching interval
};

using Headers = std::vector<std::pair<std::string, std::string>>;

// The outcome of a check: status 0 = passed; else the HTTP status (401, 403,
// 429, 503) with OpenAI's error code and a message.
struct Verdict {
  int status = 0;
  std::string code, message;
  double retry_after_s = 0;
  explicit operator bool() const { return status == 0; }
};

struct Auth {
  Verdict verdict;
  std::shared_ptr<const KeyRecord> key;  // set when the verdict passed
};

// A request admitted: what it charged, to be credited back at completion.
struct Ticket {
  std::string key_id, model;
  int64_t reserved_tokens = 0;
  int64_t minute = 0;  // the shared counters' minute
  std::vector<std::string> local;                             // bucket ids charged
  std::vector<std::pair<std::string, std::string>> shared;   // (scope, target) counters charged
  bool log_payload = false;
  bool completed = false;
  std::string prov_bucket;   // the provisioned reservation charged ("" = best effort)
  int64_t prov_tokens = 0;   // what it charged (credited back at completion, less what was used)
};

class Governor {
 public:
  explicit Governor(GovernorOptions o);  // opens the store (throws Error), loads the snapshot, starts the threads
  ~Governor();                           // flushes queued rows, stops the threads
  Governor(const Governor&) = delete;
  Governor& operator=(const Governor&) = delete;

  const GovernorOptions& options() const { return opts_; }
  Store& store() { return *bg_; }  // admin operations (serialized inside the store)
  void reload();                   // re-reads the snapshot now (after an admin change)

  // The Authorization header -> the key, or 401 invalid_api_key (503 when
  // the state cannot be read).
  Auth authenticate(const std::string& authorization);
  Verdict permit(const KeyRecord& k, const std::string& model) const;
  // Charges one request and `tokens` (prompt + max_tokens) to every level
  // that applies; refuses with 429 (Retry-After) when one cannot take it.
  // `headers` gets the x-ratelimit-* headers either way.
  Verdict admit(const KeyRecord& k, const std::string& model, int64_t tokens, Ticket& t, Headers& headers);
  // Credits back what the request did not use and queues its usage row (and
  // payload when sampled). Idempotent per ticket. `on_durable`, when given,
  // runs once (on the writer thread; it must not block) when the row is
  // committed, with true — the server holds a response's last bytes until
  // then, so a client never sees a finished response whose row a crash could
  // lose. It runs with false when it is released without that: the queue
  // was full (the row is dropped), the governor stops with the row unwritten,
  // or a write failed (store unreachable) and `hold` is false — a response is
  // not held hostage by an outage; the row stays queued and is retried. With
  // `hold` (Batch API lines: nobody waits on the line, and it must not be
  // committed before its row) it waits through failed writes.
  using OnDurable = std::function<void(bool committed)>;
  void complete(Ticket& t, UsageRow row, std::optional<PayloadRow> payload, OnDurable on_durable = {},
                bool hold = false);
  // Provisioned throughput (docs/GOVERNANCE.md, docs/SERVING.md). After
  // admit(): true when the request, `tokens` = prompt + max_tokens, is within
  // a reservation that applies to (key, model): it charges that
  // reservation's token bucket (refilled at tokens_per_s, holding up to
  // kProvisionedBurstS seconds of it) and the server schedules the request in
  // the Provisioned class; false (no reservation, or beyond it): best effort.
  // The first reservation that applies counts, most specific first: this
  // model's in-memory reservation for the key (id or name), then for
  // "group:NAME"; then the stored ones (`limits set --provisioned-tokens-per-s`,
  // on every model): key, group, default (each key its own), model (all
  // callers of the model together).
  bool provisioned(const KeyRecord& k, const std::string& model, int64_t tokens, Ticket& t);
  // The in-memory reservations (the TOML config's `provisioned` lists):
  // `key_or_group` is a key id, a key name, or "group:NAME"; tokens_per_s <= 0
  // removes the reservation. Thread-safe; takes effect at the next admission.
  void set_provisioned(const std::string& model, const std::string& key_or_group, double tokens_per_s);
  static constexpr double kProvisionedBurstS = 2.0;
  // A request refused before admission (auth aside): its usage row only.
  void record(UsageRow row);
  // Counts a refusal for /metrics: "auth", "permission", "qpm", "tpm", "unavailable".
  void count_refusal(const std::string& reason);

  double cost(const std::string& model, int64_t prompt_tokens, int64_t completion_tokens) const;
  std::string render_metrics() const;
  // The key's totals today and this month (UTC): {"key_id","today":{...},"month":{...}}.
  std::string usage_me_json(const std::string& key_id);
  // Rows queued, not yet written (tests, shutdown).
  size_t pending() const;
  bool healthy() const { return healthy_.load(); }

 private:
  struct Snapshot {
    std::unordered_map<std::string, std::shared_ptr<const KeyRecord>> by_hash;
    std::map<std::pair<std::string, std::string>, LimitRecord> limits;
    std::map<std::string, Price> prices;
  };
  struct Bucket {
    int64_t qpm = kUnset, tpm = kUnset;
    double req = 0, tok = 0;  // available
    double last = 0;          // seconds (steady clock)
  };
  struct Level {
    std::string scope, target;
    int64_t qpm, tpm;
  };

  std::shared_ptr<const Snapshot> snapshot() const;
  std::vector<Level> levels(const Snapshot& s, const KeyRecord& k, const std::string& model) const;
  void refill(Bucket& b, double now) const;
  void undo_local(const std::vector<Level>& lv, int64_t tokens, Ticket& t);
  void refresher_loop();
  void writer_loop();
  void write_batch(std::unique_lock<std::mutex>& lk);
  // Pops the waiters whose rows are committed (true), and with `failed` those
  // that do not hold through a failed write, with `stopping` every other one
  // (false); the caller runs them without q_mu_ held.
  std::vector<std::pair<OnDurable, bool>> take_waiters(bool failed, bool stopping);

  GovernorOptions opts_;
  std::unique_ptr<Store> bg_;   // snapshot reloads, usage writes, admin
  std::vector<std::unique_ptr<Store>> hot_;  // admission's shared counters (PostgreSQL only)
  std::atomic<size_t> hot_next_{0};
  std::atomic<bool> healthy_{true};

  mutable std::mutex snap_mu_;
  std::shared_ptr<const Snapshot> snap_;

  mutable std::mutex bucket_mu_;
  std::unordered_map<std::string, Bucket> buckets_;
  struct Lease {  // this replica's share of a level's minute (PostgreSQL)
    int64_t minute = -1;
    double r = 0, t = 0;
  };
  std::unordered_map<std::string, Lease> leases_;

  mutable std::mutex q_mu_;
  std::condition_variable q_cv_;
  std::deque<UsageRow> rows_;
  std::deque<PayloadRow> payloads_;
  uint64_t queued_seq_ = 0;     // rows ever queued (rows_ is FIFO)
  uint64_t committed_seq_ = 0;  // rows ever taken off the queue and committed
  struct Waiter {
    uint64_t seq;  // the row's
    std::chrono::steady_clock::time_point since;
    OnDurable on_durable;
    bool hold;  // through failed writes
  };
  std::deque<Waiter> waiters_;
  // How long responses waited for their rows to commit (/metrics histogram).
  static constexpr int kWaitBuckets = 10;
  std::array<uint64_t, kWaitBuckets + 1> wait_hist_{};  // last: +Inf
  double wait_sum_s_ = 0;
  bool stop_ = false;
  bool writing_ = false;

  mutable std::mutex m_mu_;
  std::map<std::string, uint64_t> refused_;
  std::map<std::string, std::pair<uint64_t, uint64_t>> model_tokens_;  // prompt, completion

  struct ProvBucket {
    double rate = 0, tok = 0, last = 0;  // tokens/s, available, seconds (steady clock)
  };
  void credit_provisioned(const Ticket& t, int64_t used);
  std::string render_provisioned_metrics() const;
  mutable std::mutex prov_mu_;
  std::map<std::pair<std::string, std::string>, double> prov_mem_;  // (model, key_or_group) -> tokens/s
  std::unordered_map<std::string, ProvBucket> prov_buckets_;
  uint64_t prov_admitted_ = 0, prov_beyond_ = 0;  // requests: within a reservation, beyond it (best effort)

  std::mutex stop_mu_;
  std::condition_variable stop_cv_;
  std::thread refresher_, writer_;
};

}  // namespace ms::gov
