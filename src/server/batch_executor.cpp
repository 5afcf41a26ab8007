// batch_executor.cpp — batch lines through the generation path (see batch_executor.h).
#include "server/batch_executor.h"

#include <algorithm>
#include <memory>
#include <vector>

#include "governance/admin.h"
#include "governance/governor.h"
#include "engine/engine.h"
#include "server/api_routes.h"
#include "server/generation_job.h"

namespace ms {

BatchExecutor::BatchExecutor(ApiContext& ctx) : ctx_(ctx) {
  online_seen_ = ctx_.metrics.admission.count();
  thread_ = std::thread([this] { loop(); });
}

BatchExecutor::~BatchExecutor() { stop(); }

void BatchExecutor::stop() {
  {
    std::lock_guard<std::mutex> lk(mu_);
    if (stop_ && !thread_.joinable()) return;
    stop_ = true;
  }
  cv_.notify_all();
  if (thread_.joinable()) thread_.join();
}

void BatchExecutor::submit(batch::LineTask t, std::function<void(batch::Outcome)> done) {
  {
    std::lock_guard<std::mutex> lk(mu_);
    if (!stop_) {
      submits_.push_back({next_++, std::move(t), std::move(done)});
      cv_.notify_all();
      return;
    }
  }
  batch::Outcome o;
  o.retry = true;
  done(std::move(o));
}

int BatchExecutor::window(int configured) {
  using namespace std::chrono;
  const auto now = steady_clock::now();
  // Online traffic: requests in the engine beyond this executor's own, or
  // online generation requests admitted since the last look (they pass
  // admission; batch lines do not) when that look was recent enough to date them.
  bool active = false;
  if (ctx_.ready() && ctx_.backend().engine) {  // one model (with several, admissions alone tell)
    const EngineStats st = ctx_.backend().engine->stats();
    std::lock_guard<std::mutex> lk(mu_);
    active = st.running + st.waiting > static_cast<int64_t>(jobs_.size() + submits_.size());
  }
  const uint64_t online = ctx_.metrics.admission.count();
  std::lock_guard<std::mutex> lk(mu_);
  if (online != online_seen_ && now - polled_at_ < milliseconds(500)) active = true;
  online_seen_ = online;
  polled_at_ = now;
  if (active) online_at_ = now;
  if (online_at_.time_since_epoch().count() != 0 && now - online_at_ < seconds(2)) return std::max(1, configured / 4);
  return configured;
}

void BatchExecutor::cancel_batch(const std::string& batch_id) {
  {
    std::lock_guard<std::mutex> lk(mu_);
    cancels_.push_back(batch_id);
  }
  cv_.notify_all();
}

std::shared_ptr<const gov::KeyRecord> BatchExecutor::key_for(const std::string& owner, std::string& err) {
  gov::Governor* g = ctx_.opts.governance;
  if (!g || owner.empty()) return nullptr;
  const int64_t now = gov::now_ms();
  auto it = keys_.find(owner);
  if (it == keys_.end() || now - it->second.second > 1000) {
    std::shared_ptr<const gov::KeyRecord> found;
    for (const gov::KeyRecord& k : g->store().list_keys())
      if (k.id == owner) found = std::make_shared<const gov::KeyRecord>(k);
    it = keys_.insert_or_assign(owner, std::make_pair(found, now)).first;
  }
  const auto& k = it->second.first;
  if (!k || !k->active(now)) err = "The API key that submitted this batch is revoked, expired or unknown.";
  return k;
}

void BatchExecutor::begin(Pending p) {
  batch::Outcome o;
  if (!ctx_.ready() || ctx_.stopping()) {
    o.retry = true;
    return p.done(std::move(o));
  }
  std::string key_err;
  std::shared_ptr<const gov::KeyRecord> key;
  try {
    key = key_for(p.task.owner, key_err);
  } catch (const std::exception& e) {
    o.retry = true;  // the state store is unavailable: try again later
    return p.done(std::move(o));
  }
  if (!key_err.empty()) {
    o.status_code = 401;
    o.body = dump_json(error_json({401, key_err, "invalid_request_error", "", "invalid_api_key"}));
    return p.done(std::move(o));
  }
  // The request id names the batch and the line: one usage row per line,
  // however often it runs (governance/schema.h, usage_insert_sql).
  RouteResult rr =
      batch_line_job(ctx_, p.task.url, p.task.body, key.get(), p.task.batch_id + "-" + std::to_string(p.task.line_no));
  o.request_id = rr.id;
  if (!rr.job) {
    o.status_code = rr.resp.status;
    o.body = rr.resp.body;
    o.retry = rr.resp.status == 503;
    return p.done(std::move(o));
  }
  const uint64_t id = p.id;
  auto err = rr.job->start([this, id] {
    {
      std::lock_guard<std::mutex> lk(mu_);
      ready_.push_back(id);
    }
    cv_.notify_all();
  });
  if (err) {
    rr.job->account(err->status);
    o.status_code = err->status;
    o.body = dump_json(error_json(*err));
    o.retry = err->status == 503 || err->status == 429;  // shutting down, queue full
    return p.done(std::move(o));
  }
  std::lock_guard<std::mutex> lk(mu_);
  jobs_[id] = Job{std::move(rr.job), p.task.batch_id, std::move(p.done)};
}

void BatchExecutor::finish(uint64_t id) {
  Job j;
  {
    std::lock_guard<std::mutex> lk(mu_);
    auto it = jobs_.find(id);
    if (it == jobs_.end()) return;
    j = it->second;
  }
  j.job->drain();
  if (!j.job->done()) return;
  HttpResp r = j.job->final_response();
  batch::Outcome o;
  o.status_code = r.status;
  o.request_id = j.job->id();
  o.body = std::move(r.body);
  o.retry = r.status == 503;  // cancelled by a shutdown: run it again after the restart
  {
    std::lock_guard<std::mutex> lk(mu_);
    jobs_.erase(id);
  }
  // The line is reported (and so committed to the batch's results) only once
  // its usage row is committed, held through failed writes: a kill -9 before
  // that leaves the line uncommitted, so it runs again and its second row is
  // dropped (one row per line id). The other order lost the row of a
  // committed line. A row released unwritten (the server stops during an
  // outage, the queue is full) sends the line back to run again. The
  // callback runs on the governor's writer thread; done() only queues it.
  auto out = std::make_shared<batch::Outcome>(std::move(o));
  auto done = std::move(j.done);
  const bool waits = j.job->account(
      r.status,
      [done, out](bool committed) {
        if (!committed) {
          batch::Outcome again;
          again.retry = true;
          *out = std::move(again);
        }
        done(std::move(*out));
      },
      /*hold=*/true);
  if (!waits) done(std::move(*out));
}

void BatchExecutor::loop() {
  for (;;) {
    std::deque<Pending> subs;
    std::deque<uint64_t> ready;
    std::deque<std::string> cancels;
    bool stopping;
    {
      std::unique_lock<std::mutex> lk(mu_);
      cv_.wait(lk, [this] { return stop_ || !submits_.empty() || !ready_.empty() || !cancels_.empty(); });
      subs.swap(submits_);
      ready.swap(ready_);
      cancels.swap(cancels_);
      stopping = stop_;
    }
    // Cancelled lines (a cancelled batch, or shutting down) answer at once;
    // their jobs' late events find no entry.
    std::vector<Job> dropped;
    {
      std::lock_guard<std::mutex> lk(mu_);
      for (auto it = jobs_.begin(); it != jobs_.end();) {
        bool hit = stopping;
        for (const auto& b : cancels) hit = hit || it->second.batch_id == b;
        if (hit) {
          dropped.push_back(std::move(it->second));
          it = jobs_.erase(it);
        } else {
          ++it;
        }
      }
    }
    for (Job& j : dropped) {
      j.job->cancel(stopping ? 503 : 499);
      batch::Outcome o;
      o.retry = true;
      j.done(std::move(o));
    }
    for (Pending& p : subs) {
      if (stopping) {
        batch::Outcome o;
        o.retry = true;
        p.done(std::move(o));
      } else {
        begin(std::move(p));
      }
    }
    for (uint64_t id : ready) finish(id);
    if (stopping) return;
  }
}

}  // namespace ms
