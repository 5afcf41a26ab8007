// governor.cpp — admission, completion, the snapshot and the writer thread (see governor.h).
#include "governance/governor.h"

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <ctime>
#include <random>

#include <nlohmann/json.hpp>

#include "core/error.h"
#include "governance/admin.h"

namespace ms::gov {

namespace {

double mono_s() {
  return std::chrono::duration<double>(std::chrono::steady_clock::now().time_since_epoch()).count();
}

std::string fmt_secs(double s) {
  char b[32];
  std::snprintf(b, sizeof b, "%.3gs", std::max(0.0, s));
  return b;
}

std::string level_name(const std::string& scope, const std::string& target) {
  if (scope == "model") return "model '" + target + "'";
  if (scope == "group") return "group '" + target + "'";
  if (scope == "default") return "default per-key limit";
  return "key limit";
}

std::string label(const std::string& v) {
  std::string o;
  for (char c : v) {
    if (c == '\\' || c == '"') o += '\\';
    if (c == '\n') {
      o += "\\n";
      continue;
    }
    o += c;
  }
  return o;
}

constexpr size_t kMaxBatch = 2000;
constexpr int kHotConnections = 4;  // PostgreSQL admission connections (I/O threads use them round-robin)
constexpr int64_t kLeaseShare = 20;   // a lease: 1/20 of a level's limit per minute
constexpr int64_t kLeaseUnlimited = int64_t{1} << 40;  // a dimension without a limit
constexpr size_t kMaxQueued = 1'000'000;  // rows held while the store is unreachable

}  // namespace

Governor::Governor(GovernorOptions o) : opts_(std::move(o)) {
  bg_ = open_store(opts_.location);
  if (bg_->shared_counters()) {
    for (int i = 0; i < kHotConnections; ++i) {
      hot_.push_back(open_store(opts_.location));
      hot_.back()->relax_durability();
    }
  }
  reload();
  refresher_ = std::thread([this] { refresher_loop(); });
  writer_ = std::thread([this] { writer_loop(); });
}

Governor::~Governor() {
  {
    std::lock_guard<std::mutex> lk(stop_mu_);
    std::lock_guard<std::mutex> lq(q_mu_);
    stop_ = true;
  }
  stop_cv_.notify_all();
  q_cv_.notify_all();
  if (refresher_.joinable()) refresher_.join();
  if (writer_.joinable()) writer_.join();
}

void Governor::reload() {
  auto s = std::make_shared<Snapshot>();
  for (KeyRecord& k : bg_->list_keys()) {
    std::string h = k.secret_hash;
    s->by_hash.emplace(std::move(h), std::make_shared<const KeyRecord>(std::move(k)));
  }
  for (LimitRecord& l : bg_->list_limits()) s->limits[{l.scope, l.target}] = l;
  for (Price& p : bg_->list_prices()) s->prices[p.model] = p;
  std::lock_guard<std::mutex> lk(snap_mu_);
  snap_ = std::move(s);
}

std::shared_ptr<const Governor::Snapshot> Governor::snapshot() const {
  std::lock_guard<std::mutex> lk(snap_mu_);
  return snap_;
}

void Governor::refresher_loop() {
  bool was_down = false;
  std::unique_lock<std::mutex> lk(stop_mu_);
  while (!stop_) {
    stop_cv_.wait_for(lk, opts_.refresh, [this] { return stop_; });
    if (stop_) break;
    lk.unlock();
    try {
      reload();
      for (auto& h : hot_) h->ping();
      healthy_.store(true);
      if (was_down) std::fprintf(stderr, "moeserve: governance: state store reachable again\n");
      was_down = false;
    } catch (const std::exception& e) {
      healthy_.store(false);
      if (!was_down) std::fprintf(stderr, "moeserve: governance: state store unavailable, refusing requests (503): %s\n", e.what());
      was_down = true;
    }
    lk.lock();
  }
}

Auth Governor::authenticate(const std::string& authorization) {
  Auth a;
  auto refuse = [&](int status, const std::string& code, const std::string& msg) {
    a.verdict = {status, code, msg, 0};
    count_refusal(status == 401 ? "auth" : "unavailable");
    return a;
  };
  if (!healthy_.load()) return refuse(503, "state_unavailable", "The governance state store is unavailable; retry shortly.");
  const std::string bearer = "Bearer ";
  if (authorization.size() <= bearer.size() || authorization.compare(0, bearer.size(), bearer) != 0)
    return refuse(401, "invalid_api_key", authorization.empty() ? "Missing API key: send 'Authorization: Bearer <key>'."
                                                                : "Malformed Authorization header: expected 'Bearer <key>'.");
  const std::string h = hash_secret(authorization.substr(bearer.size()));
  auto s = snapshot();
  auto it = s->by_hash.find(h);
  if (it == s->by_hash.end() || !ct_equal(it->second->secret_hash, h))
    return refuse(401, "invalid_api_key", "Incorrect API key provided.");
  const KeyRecord& k = *it->second;
  if (k.revoked_ms) return refuse(401, "invalid_api_key", "This API key has been revoked.");
  if (!k.active(now_ms())) return refuse(401, "invalid_api_key", "This API key has expired.");
  a.key = it->second;
  return a;
}

Verdict Governor::permit(const KeyRecord& k, const std::string& model) const {
  if (k.allows_model(model)) return {};
  return {403, "permission_denied", "This API key may not use model '" + model + "'.", 0};
}

std::vector<Governor::Level> Governor::levels(const Snapshot& s, const KeyRecord& k, const std::string& model) const {
  auto find = [&](const std::string& scope, const std::string& target) -> const LimitRecord* {
    auto it = s.limits.find({scope, target});
    return it == s.limits.end() ? nullptr : &it->second;
  };
  std::vector<Level> out;
  if (auto* m = find("model", model)) out.push_back({"model", model, m->qpm, m->tpm});
  // The key's own limit overrides group and default, dimension by dimension.
  const bool own_q = k.qpm != kUnset, own_t = k.tpm != kUnset;
  if (own_q || own_t) out.push_back({"key", k.id, k.qpm, k.tpm});
  if (!k.group.empty())
    if (auto* g = find("group", k.group)) out.push_back({"group", k.group, own_q ? kUnset : g->qpm, own_t ? kUnset : g->tpm});
  if (auto* d = find("default", "")) out.push_back({"default", k.id, own_q ? kUnset : d->qpm, own_t ? kUnset : d->tpm});
  out.erase(std::remove_if(out.begin(), out.end(), [](const Level& l) { return l.qpm == kUnset && l.tpm == kUnset; }),
            out.end());
  return out;
}

void Governor::refill(Bucket& b, double now) const {
  const double dt = std::max(0.0, now - b.last);
  b.last = now;
  if (b.qpm >= 0) b.req = std::min<double>(b.qpm, b.req + dt * b.qpm / 60.0);
  if (b.tpm >= 0) b.tok = std::min<double>(b.tpm, b.tok + dt * b.tpm / 60.0);
}

Verdict Governor::admit(const KeyRecord& k, const std::string& model, int64_t tokens, Ticket& t, Headers& headers) {
  t.key_id = k.id;
  t.model = model;
  t.reserved_tokens = tokens;
  if (opts_.log_payloads > 0) {
    thread_local std::mt19937_64 rng{std::random_device{}()};
    t.log_payload = std::uniform_real_distribution<double>(0, 1)(rng) < opts_.log_payloads;
  }
  auto s = snapshot();
  const std::vector<Level> lv = levels(*s, k, model);
  if (lv.empty()) return {};
  const double now = mono_s();
  Verdict v;
  {
    std::lock_guard<std::mutex> lk(bucket_mu_);
    std::vector<Bucket*> bs;
    double retry = 0;
    std::string why;
    for (const Level& l : lv) {
      Bucket& b = buckets_[l.scope + "|" + l.target];
      if (b.last == 0 || b.qpm != l.qpm || b.tpm != l.tpm) {  // new, or the limit changed
        if (b.last == 0 || b.qpm != l.qpm) b.req = std::max<double>(0, l.qpm);
        if (b.last == 0 || b.tpm != l.tpm) b.tok = std::max<double>(0, l.tpm);
        b.qpm = l.qpm, b.tpm = l.tpm, b.last = now;
      }
      refill(b, now);
      bs.push_back(&b);
      if (l.qpm >= 0 && b.req < 1) {
        double r = l.qpm > 0 ? (1 - b.req) * 60.0 / l.qpm : 60;
        if (v.status == 0 || r > retry) why = "qpm";
        retry = std::max(retry, r);
        v = {429, "rate_limit_exceeded",
             "Rate limit reached for requests: " + std::to_string(l.qpm) + " per minute (" +
                 level_name(l.scope, l.target) + ").",
             0};
      }
      if (l.tpm >= 0 && tokens > l.tpm) {
        count_refusal("tpm");
        return {429, "tokens_exceed_limit",
                "This request reserves " + std::to_string(tokens) + " tokens (prompt + max_tokens), more than the " +
                    std::to_string(l.tpm) + " tokens per minute of the " + level_name(l.scope, l.target) +
                    "; lower max_tokens.",
                60};
      }
      if (l.tpm >= 0 && b.tok < tokens) {
        double r = l.tpm > 0 ? (tokens - b.tok) * 60.0 / l.tpm : 60;
        if (v.status == 0 || r > retry) why = "tpm";
        retry = std::max(retry, r);
        v = {429, "rate_limit_exceeded",
             "Rate limit reached for tokens: " + std::to_string(l.tpm) + " per minute (" +
                 level_name(l.scope, l.target) + "); this request reserves " + std::to_string(tokens) + ".",
             0};
      }
    }
    if (v.status == 0) {
      for (size_t i = 0; i < lv.size(); ++i) {
        if (lv[i].qpm >= 0) bs[i]->req -= 1;
        if (lv[i].tpm >= 0) bs[i]->tok -= static_cast<double>(tokens);
        t.local.push_back(lv[i].scope + "|" + lv[i].target);
      }
    } else {
      v.retry_after_s = retry;
    }
    // x-ratelimit-*: the most restrictive level in each dimension.
    const Bucket* rq = nullptr;
    const Bucket* tk = nullptr;
    for (const Bucket* b : bs) {
      if (b->qpm >= 0 && (!rq || b->req < rq->req)) rq = b;
      if (b->tpm >= 0 && (!tk || b->tok < tk->tok)) tk = b;
    }
    if (rq) {
      headers.emplace_back("x-ratelimit-limit-requests", std::to_string(rq->qpm));
      headers.emplace_back("x-ratelimit-remaining-requests", std::to_string(std::max<int64_t>(0, int64_t(rq->req))));
      headers.emplace_back("x-ratelimit-reset-requests", fmt_secs(rq->qpm ? (rq->qpm - rq->req) * 60.0 / rq->qpm : 60));
    }
    if (tk) {
      headers.emplace_back("x-ratelimit-limit-tokens", std::to_string(tk->tpm));
      headers.emplace_back("x-ratelimit-remaining-tokens", std::to_string(std::max<int64_t>(0, int64_t(tk->tok))));
      headers.emplace_back("x-ratelimit-reset-tokens", fmt_secs(tk->tpm ? (tk->tpm - tk->tok) * 60.0 / tk->tpm : 60));
    }
    if (v.status != 0) {
      count_refusal(why);
      return v;
    }
  }
  if (hot_.empty()) return {};
  // Shared across replicas: each level's minute lives in PostgreSQL; this
  // replica leases shares of it (a twentieth of the limit, at least what the
  // request needs) and admits from its leases, so most admissions need no
  // round trip, and the replicas together never pass a limit in a minute.
  const int64_t minute = now_ms() / 60'000;
  t.minute = minute;
  for (int attempt = 0; attempt < 3; ++attempt) {
    std::vector<std::pair<size_t, int64_t>> need;  // levels whose lease cannot take this request, token shortfall
    {
      std::lock_guard<std::mutex> lk(bucket_mu_);
      for (size_t i = 0; i < lv.size(); ++i) {
        Lease& le = leases_[lv[i].scope + "|" + lv[i].target];
        if (le.minute != minute) le = Lease{minute, 0, 0};
        if (le.r < 1 || (lv[i].tpm >= 0 && le.t < tokens))
          need.emplace_back(i, lv[i].tpm >= 0 ? std::max<int64_t>(0, tokens - static_cast<int64_t>(le.t)) : 0);
      }
      if (need.empty()) {
        for (const Level& l : lv) {
          Lease& le = leases_[l.scope + "|" + l.target];
          le.r -= 1;
          le.t -= tokens;
          t.shared.emplace_back(l.scope, l.target);
        }
        return {};
      }
    }
    for (const auto& [i, short_t] : need) {
      const Level& l = lv[i];
      const int64_t want_r = l.qpm >= 0 ? std::max<int64_t>(1, l.qpm / kLeaseShare) : kLeaseUnlimited;
      const int64_t want_t = l.tpm >= 0 ? std::max<int64_t>(short_t, l.tpm / kLeaseShare) : kLeaseUnlimited;
      std::pair<int64_t, int64_t> got;
      try {
        Store& hot = *hot_[hot_next_.fetch_add(1, std::memory_order_relaxed) % hot_.size()];
        got = hot.lease_counter(l.scope, l.target, minute, l.qpm, l.tpm, want_r, want_t, short_t);
      } catch (const std::exception&) {
        undo_local(lv, tokens, t);
        count_refusal("unavailable");
        return {503, "state_unavailable", "The governance state store is unavailable; retry shortly.", 1};
      }
      if (got.first == 0) {
        undo_local(lv, tokens, t);
        const double to_next = 60.0 - static_cast<double>(now_ms() % 60'000) / 1000.0;
        count_refusal(l.qpm >= 0 ? "qpm" : "tpm");
        return {429, "rate_limit_exceeded",
                "Rate limit reached (" + level_name(l.scope, l.target) + ", shared by all replicas) for this minute.",
                to_next};
      }
      std::lock_guard<std::mutex> lk(bucket_mu_);
      Lease& le = leases_[l.scope + "|" + l.target];
      if (le.minute != minute) le = Lease{minute, 0, 0};
      le.r += static_cast<double>(got.first);
      le.t += static_cast<double>(got.second);
    }
  }  // another I/O thread took the fresh lease first: lease again
  undo_local(lv, tokens, t);
  count_refusal("qpm");
  return {429, "rate_limit_exceeded", "Rate limit reached (shared by all replicas); retry shortly.", 1};
}

void Governor::undo_local(const std::vector<Level>& lv, int64_t tokens, Ticket& t) {
  std::lock_guard<std::mutex> lk(bucket_mu_);
  for (const Level& l : lv) {
    Bucket& b = buckets_[l.scope + "|" + l.target];
    if (l.qpm >= 0) b.req = std::min<double>(b.qpm, b.req + 1);
    if (l.tpm >= 0) b.tok = std::min<double>(b.tpm, b.tok + static_cast<double>(tokens));
  }
  t.local.clear();
}

double Governor::cost(const std::string& model, int64_t prompt_tokens, int64_t completion_tokens) const {
  auto s = snapshot();
  auto it = s->prices.find(model);
  if (it == s->prices.end()) return 0;
  return (static_cast<double>(prompt_tokens) * it->second.input_per_mtok +
          static_cast<double>(completion_tokens) * it->second.output_per_mtok) /
         1e6;
}

void Governor::complete(Ticket& t, UsageRow row, std::optional<PayloadRow> payload, OnDurable on_durable,
                        bool hold) {
  if (t.completed) {  // its row was queued before: this call adds none
    if (on_durable) on_durable(true);
    return;
  }
  t.completed = true;
  const int64_t credit = t.reserved_tokens - (row.prompt_tokens + row.completion_tokens);
  if (credit > 0 && (!t.local.empty() || !t.shared.empty())) {
    std::lock_guard<std::mutex> lk(bucket_mu_);
    for (const std::string& id : t.local) {
      auto it = buckets_.find(id);
      if (it != buckets_.end() && it->second.tpm >= 0)
        it->second.tok = std::min<double>(it->second.tpm, it->second.tok + static_cast<double>(credit));
    }
    for (const auto& [scope, target] : t.shared) {  // back to this replica's lease, within its minute
      auto it = leases_.find(scope + "|" + target);
      if (it != leases_.end() && it->second.minute == t.minute) it->second.t += static_cast<double>(credit);
    }
  }
  credit_provisioned(t, row.prompt_tokens + row.completion_tokens);
  row.cost = cost(row.model, row.prompt_tokens, row.completion_tokens);
  {
    std::lock_guard<std::mutex> lk(m_mu_);
    auto& mt = model_tokens_[row.model];
    mt.first += static_cast<uint64_t>(std::max<int64_t>(0, row.prompt_tokens));
    mt.second += static_cast<uint64_t>(std::max<int64_t>(0, row.completion_tokens));
  }
  bool queued = false;
  {
    std::lock_guard<std::mutex> lk(q_mu_);
    if (rows_.size() < kMaxQueued) {
      rows_.push_back(std::move(row));
      ++queued_seq_;
      queued = true;
      if (on_durable) waiters_.push_back({queued_seq_, std::chrono::steady_clock::now(), std::move(on_durable), hold});
    }
    if (payload && payloads_.size() < kMaxQueued) payloads_.push_back(std::move(*payload));
  }
  if (!queued && on_durable) on_durable(false);  // dropped (queue full): nothing to wait for
  q_cv_.notify_one();
}

namespace {
constexpr double kWaitBounds[] = {0.0005, 0.001, 0.002, 0.005, 0.01, 0.02, 0.05, 0.1, 0.5, 1.0};
}

std::vector<std::pair<Governor::OnDurable, bool>> Governor::take_waiters(bool failed, bool stopping) {
  static_assert(sizeof(kWaitBounds) / sizeof(kWaitBounds[0]) == kWaitBuckets);
  std::vector<std::pair<OnDurable, bool>> ready;
  const auto now = std::chrono::steady_clock::now();
  for (auto it = waiters_.begin(); it != waiters_.end();) {
    const bool committed = it->seq <= committed_seq_;
    if (!committed && !stopping && !(failed && !it->hold)) {
      ++it;
      continue;
    }
    const double s = std::chrono::duration<double>(now - it->since).count();
    int b = 0;
    while (b < kWaitBuckets && s > kWaitBounds[b]) ++b;
    ++wait_hist_[static_cast<size_t>(b)];
    wait_sum_s_ += s;
    ready.emplace_back(std::move(it->on_durable), committed);
    it = waiters_.erase(it);
  }
  return ready;
}

void Governor::record(UsageRow row) {
  row.cost = cost(row.model, row.prompt_tokens, row.completion_tokens);
  {
    std::lock_guard<std::mutex> lk(q_mu_);
    if (rows_.size() < kMaxQueued) {
      rows_.push_back(std::move(row));
      ++queued_seq_;
    }
  }
  q_cv_.notify_one();
}

void Governor::count_refusal(const std::string& reason) {
  std::lock_guard<std::mutex> lk(m_mu_);
  ++refused_[reason];
}

size_t Governor::pending() const {
  std::lock_guard<std::mutex> lk(q_mu_);
  return rows_.size() + payloads_.size() + (writing_ ? 1 : 0);
}

void Governor::writer_loop() {
  std::unique_lock<std::mutex> lk(q_mu_);
  auto last_prune = std::chrono::steady_clock::now() - std::chrono::hours(1);
  int failures = 0;
  for (;;) {
    q_cv_.wait_for(lk, opts_.flush, [this] { return stop_ || !rows_.empty() || !payloads_.empty(); });
    const bool stopping = stop_;
    if (!rows_.empty() || !payloads_.empty()) {
      std::vector<UsageRow> rows;
      std::vector<PayloadRow> pls;
      while (!rows_.empty() && rows.size() < kMaxBatch) {
        rows.push_back(std::move(rows_.front()));
        rows_.pop_front();
      }
      while (!payloads_.empty() && pls.size() < 64) {
        pls.push_back(std::move(payloads_.front()));
        payloads_.pop_front();
      }
      writing_ = true;
      lk.unlock();
      bool ok = true;
      try {
        if (!rows.empty() || !pls.empty()) bg_->insert_usage(rows, pls);
        failures = 0;
      } catch (const std::exception& e) {
        ok = false;
        if (++failures == 1) std::fprintf(stderr, "moeserve: governance: usage write failed, will retry: %s\n", e.what());
      }
      lk.lock();
      writing_ = false;
      if (ok) committed_seq_ += rows.size();
      if (auto ready = take_waiters(!ok, false); !ready.empty()) {
        lk.unlock();
        for (auto& [f, committed] : ready) f(committed);
        lk.lock();
      }
      if (!ok) {  // keep them, in order, for the next try
        for (auto it = pls.rbegin(); it != pls.rend(); ++it) payloads_.push_front(std::move(*it));
        for (auto it = rows.rbegin(); it != rows.rend(); ++it) rows_.push_front(std::move(*it));
        if (stopping && failures >= 5) {
          std::fprintf(stderr, "moeserve: governance: %zu usage rows could not be written at shutdown\n", rows_.size());
          for (auto& [f, committed] : take_waiters(true, true)) f(committed);
          return;
        }
        q_cv_.wait_for(lk, std::chrono::milliseconds(500), [] { return false; });
      }
      continue;
    }
    if (stopping) {
      for (auto& [f, committed] : take_waiters(false, true)) f(committed);
      return;
    }
    const auto now = std::chrono::steady_clock::now();
    if (now - last_prune > std::chrono::minutes(10)) {
      last_prune = now;
      lk.unlock();
      try {
        if (opts_.payload_retention_days > 0)
          bg_->prune_payloads(now_ms() - int64_t{opts_.payload_retention_days} * 86'400'000);
        if (bg_->shared_counters()) bg_->prune_counters(now_ms() / 60'000 - 10);
      } catch (const std::exception&) {
      }
      lk.lock();
    }
  }
}

std::string Governor::render_metrics() const {
  std::string o;
  std::lock_guard<std::mutex> lk(m_mu_);
  o += "# HELP moeserve_requests_refused_total Requests refused by governance, by reason.\n";
  o += "# TYPE moeserve_requests_refused_total counter\n";
  for (const char* r : {"auth", "permission", "qpm", "tpm", "unavailable"}) {
    auto it = refused_.find(r);
    o += std::string("moeserve_requests_refused_total{reason=\"") + r + "\"} " +
         std::to_string(it == refused_.end() ? 0 : it->second) + "\n";
  }
  o += "# HELP moeserve_model_prompt_tokens_total Prompt tokens accounted, by model.\n";
  o += "# TYPE moeserve_model_prompt_tokens_total counter\n";
  for (const auto& [m, v] : model_tokens_)
    o += "moeserve_model_prompt_tokens_total{model=\"" + label(m) + "\"} " + std::to_string(v.first) + "\n";
  o += "# HELP moeserve_model_completion_tokens_total Completion tokens accounted, by model.\n";
  o += "# TYPE moeserve_model_completion_tokens_total counter\n";
  for (const auto& [m, v] : model_tokens_)
    o += "moeserve_model_completion_tokens_total{model=\"" + label(m) + "\"} " + std::to_string(v.second) + "\n";
  o += render_provisioned_metrics();
  o += "# HELP moeserve_governance_state_up 1 when the governance state store is reachable.\n";
  o += "# TYPE moeserve_governance_state_up gauge\n";
  o += std::string("moeserve_governance_state_up ") + (healthy_.load() ? "1" : "0") + "\n";
  o += "# HELP moeserve_governance_pending_rows Usage rows queued, not yet written.\n";
  o += "# TYPE moeserve_governance_pending_rows gauge\n";
  {
    std::lock_guard<std::mutex> lq(q_mu_);
    o += "moeserve_governance_pending_rows " + std::to_string(rows_.size()) + "\n";
    o += "# HELP moeserve_governance_commit_wait_seconds How long finished responses waited for their usage row to commit.\n";
    o += "# TYPE moeserve_governance_commit_wait_seconds histogram\n";
    uint64_t cum = 0;
    for (int b = 0; b <= kWaitBuckets; ++b) {
      cum += wait_hist_[static_cast<size_t>(b)];
      char le[32];
      if (b < kWaitBuckets) std::snprintf(le, sizeof le, "%g", kWaitBounds[b]);
      else std::snprintf(le, sizeof le, "+Inf");
      o += std::string("moeserve_governance_commit_wait_seconds_bucket{le=\"") + le + "\"} " + std::to_string(cum) + "\n";
    }
    char sum[48];
    std::snprintf(sum, sizeof sum, "%.6f", wait_sum_s_);
    o += std::string("moeserve_governance_commit_wait_seconds_sum ") + sum + "\n";
    o += "moeserve_governance_commit_wait_seconds_count " + std::to_string(cum) + "\n";
  }
  return o;
}

std::string Governor::usage_me_json(const std::string& key_id) {
  const int64_t now = now_ms();
  std::time_t t = static_cast<std::time_t>(now / 1000);
  std::tm tm{};
  gmtime_r(&t, &tm);
  tm.tm_hour = tm.tm_min = tm.tm_sec = 0;
  const int64_t day0 = static_cast<int64_t>(timegm(&tm)) * 1000;
  tm.tm_mday = 1;
  const int64_t month0 = static_cast<int64_t>(timegm(&tm)) * 1000;
  auto totals = [&](int64_t since) {
    UsageQuery q;
    q.key_id = key_id;
    q.since_ms = since;
    auto r = bg_->query_usage(q);
    UsageTotals u = r.empty() ? UsageTotals{} : r[0];
    return nlohmann::json{{"prompt_tokens", u.prompt_tokens},
                          {"completion_tokens", u.completion_tokens},
                          {"cached_tokens", u.cached_tokens},
                          {"cost", u.cost},
                          {"requests", u.requests}};
  };
  nlohmann::json j = {{"key_id", key_id}, {"today", totals(day0)}, {"month", totals(month0)}};
  return j.dump();
}

}  // namespace ms::gov
