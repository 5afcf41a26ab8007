// provisioned.cpp — provisioned throughput: which requests a key's reserved
// tokens/s cover (see Governor::provisioned in governor.h).
#include <algorithm>
#include <chrono>
#include <cmath>

#include "governance/governor.h"

namespace ms::gov {

namespace {

double mono_now() {
  return std::chrono::duration<double>(std::chrono::steady_clock::now().time_since_epoch()).count();
}

}  // namespace

void Governor::set_provisioned(const std::string& model, const std::string& key_or_group, double tokens_per_s) {
  std::lock_guard<std::mutex> lk(prov_mu_);
  if (!(tokens_per_s > 0) || !std::isfinite(tokens_per_s))
    prov_mem_.erase({model, key_or_group});
  else
    prov_mem_[{model, key_or_group}] = tokens_per_s;
}

bool Governor::provisioned(const KeyRecord& k, const std::string& model, int64_t tokens, Ticket& t) {
  // Find the reservation: (bucket id, tokens/s).
  std::string id;
  double rate = 0;
  {
    std::lock_guard<std::mutex> lk(prov_mu_);
    for (const std::string& who : {k.id, k.name, k.group.empty() ? std::string() : "group:" + k.group}) {
      if (who.empty()) continue;
      auto it = prov_mem_.find({model, who});
      if (it != prov_mem_.end()) {
        id = "mem|" + model + "|" + who;
        rate = it->second;
        break;
      }
    }
  }
  if (id.empty()) {
    auto s = snapshot();
    auto find = [&](const std::string& scope, const std::string& target) -> int64_t {
      auto it = s->limits.find({scope, target});
      return it == s->limits.end() ? kUnset : it->second.provisioned_tps;
    };
    const std::pair<std::string, std::string> levels[] = {
        {"key", k.id}, {"group", k.group}, {"default", ""}, {"model", model}};
    for (const auto& [scope, target] : levels) {
      if (scope == "group" && target.empty()) continue;
      const int64_t v = find(scope, target);
      if (v > 0) {
        id = scope + "|" + (scope == "default" ? k.id : target);
        rate = static_cast<double>(v);
        break;
      }
    }
  }
  std::lock_guard<std::mutex> lk(prov_mu_);
  if (id.empty()) return false;  // no reservation: best effort, not counted as "beyond"
  const double now = mono_now();
  const double cap = rate * kProvisionedBurstS;
  ProvBucket& b = prov_buckets_[id];
  if (b.last == 0) {
    b.tok = cap;  // a new reservation starts full
  } else {
    b.tok = std::min(cap, b.tok + std::max(0.0, now - b.last) * rate);
  }
  b.rate = rate;
  b.last = now;
  // Within the reservation: the bucket holds the request's tokens, or it is
  // full (a request larger than the burst passes once per refill).
  if (b.tok >= static_cast<double>(tokens) || b.tok >= cap) {
    b.tok -= static_cast<double>(tokens);
    t.prov_bucket = id;
    t.prov_tokens = tokens;
    ++prov_admitted_;
    return true;
  }
  ++prov_beyond_;
  return false;
}

void Governor::credit_provisioned(const Ticket& t, int64_t used) {
  if (t.prov_bucket.empty()) return;
  const int64_t credit = t.prov_tokens - std::max<int64_t>(0, used);
  if (credit <= 0) return;
  std::lock_guard<std::mutex> lk(prov_mu_);
  auto it = prov_buckets_.find(t.prov_bucket);
  if (it == prov_buckets_.end()) return;
  ProvBucket& b = it->second;
  b.tok = std::min(b.rate * kProvisionedBurstS, b.tok + static_cast<double>(credit));
}

std::string Governor::render_provisioned_metrics() const {
  std::lock_guard<std::mutex> lk(prov_mu_);
  std::string o;
  o += "# HELP moeserve_provisioned_decisions_total Requests of keys with a provisioned reservation: within it "
       "(Provisioned class) or beyond it (best effort).\n";
  o += "# TYPE moeserve_provisioned_decisions_total counter\n";
  o += "moeserve_provisioned_decisions_total{outcome=\"within\"} " + std::to_string(prov_admitted_) + "\n";
  o += "moeserve_provisioned_decisions_total{outcome=\"beyond\"} " + std::to_string(prov_beyond_) + "\n";
  return o;
}

}  // namespace ms::gov
