// metrics.cpp — histograms and the Prometheus text exposition (see metrics.h).
#include "server/metrics.h"

#include <cmath>
#include <cstdio>

namespace ms {

Histogram::Histogram(std::vector<double> upper_bounds)
    : bounds_(std::move(upper_bounds)), buckets_(new std::atomic<uint64_t>[bounds_.size() + 1]) {
  for (size_t i = 0; i <= bounds_.size(); ++i) buckets_[i].store(0);
}

void Histogram::observe(double v) {
  if (!std::isfinite(v)) return;
  size_t i = 0;
  while (i < bounds_.size() && v > bounds_[i]) ++i;
  buckets_[i].fetch_add(1, std::memory_order_relaxed);
  sum_.fetch_add(v, std::memory_order_relaxed);
  count_.fetch_add(1, std::memory_order_relaxed);
}

static std::string num(double v) {
  char buf[64];
  std::snprintf(buf, sizeof buf, "%.9g", v);
  return buf;
}

static void header(std::string& out, const std::string& name, const char* type, const std::string& help) {
  out += "# HELP " + name + " " + help + "\n# TYPE " + name + " " + type + "\n";
}

void Histogram::render(std::string& out, const std::string& name, const std::string& help) const {
  header(out, name, "histogram", help);
  uint64_t cum = 0;
  for (size_t i = 0; i < bounds_.size(); ++i) {
    cum += buckets_[i].load(std::memory_order_relaxed);
    out += name + "_bucket{le=\"" + num(bounds_[i]) + "\"} " + std::to_string(cum) + "\n";
  }
  cum += buckets_[bounds_.size()].load(std::memory_order_relaxed);
  out += name + "_bucket{le=\"+Inf\"} " + std::to_string(cum) + "\n";
  out += name + "_sum " + num(sum_.load(std::memory_order_relaxed)) + "\n";
  out += name + "_count " + std::to_string(cum) + "\n";
}

std::vector<double> latency_buckets() {
  return {0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.075, 0.1, 0.15, 0.2, 0.3, 0.5,
          0.75,  1.0,    2.5,   5.0,  10.0,  20.0, 40.0,  60.0};
}

ServerMetrics::ServerMetrics()
    : ttft(latency_buckets()),
      inter_token(latency_buckets()),
      e2e(latency_buckets()),
      admission({10e-6, 25e-6, 50e-6, 100e-6, 250e-6, 500e-6, 1e-3, 2.5e-3, 5e-3, 10e-3, 25e-3, 100e-3}) {}

void ServerMetrics::count_response(int status) {
  std::lock_guard<std::mutex> lk(mu_);
  responses_[status]++;
}

void ServerMetrics::count_finish(const char* reason) {
  if (!reason) return;
  std::lock_guard<std::mutex> lk(mu_);
  finishes_[reason]++;
}

// Per priority class (engine/request.h): queue depth, running, admissions,
// preemptions and tokens, labelled class="provisioned|standard|batch".
static void render_classes(std::string& out, const EngineStats& st) {
  struct Family {
    const char* name;
    const char* type;
    const char* help;
    int64_t ClassStats::*field;
  };
  static const Family fams[] = {
      {"moeserve_class_requests_waiting", "gauge", "Requests waiting, by priority class.", &ClassStats::waiting},
      {"moeserve_class_requests_running", "gauge", "Requests running, by priority class.", &ClassStats::running},
      {"moeserve_class_admitted_total", "counter", "Requests admitted to the running batch, by priority class.",
       &ClassStats::admitted},
      {"moeserve_class_preemptions_total", "counter", "Running requests preempted, by priority class.",
       &ClassStats::preempted},
      {"moeserve_class_prompt_tokens_total", "counter", "Prompt tokens admitted, by priority class.",
       &ClassStats::prompt_tokens},
      {"moeserve_class_generation_tokens_total", "counter", "Tokens generated, by priority class.",
       &ClassStats::generation_tokens},
  };
  for (const Family& f : fams) {
    header(out, f.name, f.type, f.help);
    for (int c = 0; c < kNumPriorities; ++c)
      out += std::string(f.name) + "{class=\"" + priority_name(static_cast<Priority>(c)) + "\"} " +
             std::to_string(st.classes[c].*f.field) + "\n";
  }
}

std::string ServerMetrics::render(const EngineStats* st, int64_t num_layers, int64_t num_experts, bool ready) const {
  std::string out;
  out.reserve(16384);
  auto gauge = [&](const char* name, const char* help, double v) {
    header(out, name, "gauge", help);
    out += std::string(name) + " " + num(v) + "\n";
  };
  auto counter = [&](const char* name, const char* help, double v) {
    header(out, name, "counter", help);
    out += std::string(name) + " " + num(v) + "\n";
  };

  gauge("moeserve_ready", "1 once the model is loaded and requests are served.", ready ? 1 : 0);
  gauge("moeserve_http_connections", "Open HTTP connections.", static_cast<double>(open_connections.load()));
  counter("moeserve_http_connections_total", "HTTP connections accepted.",
          static_cast<double>(connections_total.load()));
  counter("moeserve_http_timeouts_total", "Connections closed for a read or write timeout.",
          static_cast<double>(timeouts_total.load()));
  {
    std::lock_guard<std::mutex> lk(mu_);
    header(out, "moeserve_http_responses_total", "counter", "HTTP responses by status code.");
    for (const auto& [status, n] : responses_)
      out += "moeserve_http_responses_total{status=\"" + std::to_string(status) + "\"} " + std::to_string(n) + "\n";
    header(out, "moeserve_request_finished_total", "counter", "Finished generations by finish reason.");
    for (const auto& [reason, n] : finishes_)
      out += "moeserve_request_finished_total{finish_reason=\"" + reason + "\"} " + std::to_string(n) + "\n";
  }

  if (st) {
    gauge("moeserve_requests_running", "Requests in the running batch.", static_cast<double>(st->running));
    gauge("moeserve_requests_waiting", "Requests waiting to be scheduled.", static_cast<double>(st->waiting));
    gauge("moeserve_kv_cache_blocks_total", "KV-cache blocks in the pool.", static_cast<double>(st->kv_blocks_total));
    gauge("moeserve_kv_cache_blocks_used", "KV-cache blocks in use.", static_cast<double>(st->kv_blocks_used));
    gauge("moeserve_kv_cache_usage_ratio", "Fraction of KV-cache blocks in use.",
          st->kv_blocks_total > 0 ? static_cast<double>(st->kv_blocks_used) / st->kv_blocks_total : 0.0);
    counter("moeserve_prefix_cache_queries_total", "Prompt tokens looked up in the prefix cache.",
            static_cast<double>(st->prefix_queries));
    counter("moeserve_prefix_cache_hits_total", "Prompt tokens served from the prefix cache.",
            static_cast<double>(st->prefix_hits));
    gauge("moeserve_prefix_cache_hit_rate", "Prefix-cache hits / queries, in tokens, since start.",
          st->prefix_queries > 0 ? static_cast<double>(st->prefix_hits) / st->prefix_queries : 0.0);
    counter("moeserve_preemptions_total", "Running requests preempted for lack of KV-cache blocks.",
            static_cast<double>(st->preemptions));
    counter("moeserve_prompt_tokens_total", "Prompt tokens processed.", static_cast<double>(st->prompt_tokens));
    counter("moeserve_generation_tokens_total", "Tokens generated.", static_cast<double>(st->generation_tokens));
    counter("moeserve_engine_steps_total", "Engine steps (forward passes).", static_cast<double>(st->steps));
    render_classes(out, *st);
  }

  ttft.render(out, "moeserve_time_to_first_token_seconds", "Time from request arrival to the first token.");
  inter_token.render(out, "moeserve_inter_token_latency_seconds", "Time between consecutive tokens of a sequence.");
  e2e.render(out, "moeserve_e2e_request_latency_seconds", "Time from request arrival to the last token.");
  admission.render(out, "moeserve_admission_seconds",
                   "Routing of a generation request: parsing, tokenization and governance (auth, limits).");

  if (st && num_experts > 0 && !st->expert_tokens.empty()) {
    header(out, "moeserve_expert_tokens_total", "counter", "Tokens routed to each expert of each layer.");
    const int64_t layers = num_layers > 0 ? num_layers : static_cast<int64_t>(st->expert_tokens.size()) / num_experts;
    for (int64_t l = 0; l < layers; ++l)
      for (int64_t e = 0; e < num_experts; ++e) {
        size_t i = static_cast<size_t>(l * num_experts + e);
        if (i >= st->expert_tokens.size()) break;
        out += "moeserve_expert_tokens_total{layer=\"" + std::to_string(l) + "\",expert=\"" + std::to_string(e) +
               "\"} " + std::to_string(st->expert_tokens[i]) + "\n";
      }
  }
  return out;
}

}  // namespace ms
