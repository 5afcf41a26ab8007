// metrics.h — the server's Prometheus metrics (text exposition format 0.0.4).
//
// Latency histograms and HTTP counters are recorded by the server as requests
// run (lock-free: atomics); engine gauges and counters (running/waiting,
// KV-cache use, prefix-cache hits, preemptions, token totals, routed tokens
// per layer and expert) are read from EngineStats when /metrics is scraped.
// Every name starts with "moeserve_".
//
// A multi-model server labels each model's series: the engine gauges and
// counters, the priority-class series, the expert counters and the latency
// histograms (TTFT, inter-token, end-to-end) carry model="NAME", one series
// per model under the same family names (sum over `model` for the server).
// A single-model server keeps them unlabelled.
#pragma once
#include <atomic>
#include <cstdint>
#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <vector>

#include "engine/engine.h"

namespace ms {

class Histogram {
 public:
  explicit Histogram(std::vector<double> upper_bounds);
  void observe(double v);
  uint64_t count() const { return count_.load(std::memory_order_relaxed); }
  // Appends HELP/TYPE lines, the cumulative buckets, _sum and _count.
  void render(std::string& out, const std::string& name, const std::string& help) const;
  // Only the samples, with `labels` (e.g. model="a") before le.
  void render_samples(std::string& out, const std::string& name, const std::string& labels) const;

 private:
  std::vector<double> bounds_;
  std::unique_ptr<std::atomic<uint64_t>[]> buckets_;  // bounds_.size() + 1 (the last is +Inf)
  std::atomic<uint64_t> count_{0};
  std::atomic<double> sum_{0.0};
};

// Latency buckets in seconds, 1 ms .. 60 s.
std::vector<double> latency_buckets();

// One model's request latencies (multi-model servers).
struct LatencyHistograms {
  LatencyHistograms();
  Histogram ttft, inter_token, e2e;
};

// What /metrics shows of one loaded model.
struct ModelMetricsView {
  std::string name;
  EngineStats stats;
  int64_t num_layers = 0, num_experts = 0;
};

class ServerMetrics {
 public:
  ServerMetrics();

  Histogram ttft;          // request arrival -> first generated token
  Histogram inter_token;   // between consecutive tokens of one sequence
  Histogram e2e;           // request arrival -> last token
  Histogram admission;     // a generation request's routing: parse, tokenize, governance (auth, limits)
  std::atomic<int64_t> open_connections{0};
  std::atomic<uint64_t> connections_total{0};
  std::atomic<uint64_t> timeouts_total{0};
  std::atomic<int64_t> jobs_in_flight{0};  // generation requests not finished yet (what a drain waits for)

  void count_response(int status);
  void count_finish(const char* reason);

  // A model's own latency histograms, created on first use and kept (with
  // their counts) for the life of the server, across unloads.
  LatencyHistograms& model_latency(const std::string& model);

  // The whole exposition of a single-model server (unlabelled series).
  // `stats` is null while the model is loading.
  std::string render(const EngineStats* stats, int64_t num_layers, int64_t num_experts, bool ready) const;
  // The whole exposition of a multi-model server: the engine series of each
  // loaded model, and the latency histograms of every model that has served
  // a request, labelled model="NAME".
  std::string render_models(const std::vector<ModelMetricsView>& models, bool ready) const;

 private:
  void render_http(std::string& out, bool ready) const;
  mutable std::mutex mu_;
  std::map<int, uint64_t> responses_;           // by HTTP status
  std::map<std::string, uint64_t> finishes_;    // by finish reason
  mutable std::mutex models_mu_;
  std::map<std::string, std::unique_ptr<LatencyHistograms>> model_latency_;
};

}  // namespace ms
