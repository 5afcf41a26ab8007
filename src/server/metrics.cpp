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
  render_samples(out, name, "");
}

void Histogram::render_samples(std::string& out, const std::string& name, const std::string& labels) const {
  const std::string pre = labels.empty() ? std::string() : labels + ",";
  const std::string own = labels.empty() ? std::string() : "{" + labels + "}";
  uint64_t cum = 0;
  for (size_t i = 0; i < bounds_.size(); ++i) {
    cum += buckets_[i].load(std::memory_order_relaxed);
    out += name + "_bucket{" + pre + "le=\"" + num(bounds_[i]) + "\"} " + std::to_string(cum) + "\n";
  }
  cum += buckets_[bounds_.size()].load(std::memory_order_relaxed);
  out += name + "_bucket{" + pre + "le=\"+Inf\"} " + std::to_string(cum) + "\n";
  out += name + "_sum" + own + " " + num(sum_.load(std::memory_order_relaxed)) + "\n";
  out += name + "_count" + own + " " + std::to_string(cum) + "\n";
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

LatencyHistograms::LatencyHistograms()
    : ttft(latency_buckets()), inter_token(latency_buckets()), e2e(latency_buckets()) {}

LatencyHistograms& ServerMetrics::model_latency(const std::string& model) {
  std::lock_guard<std::mutex> lk(models_mu_);
  std::unique_ptr<LatencyHistograms>& h = model_latency_[model];
  if (!h) h = std::make_unique<LatencyHistograms>();
  return *h;
}

void ServerMetrics::count_response(int status) {
  std::lock_guard<std::mutex> lk(mu_);
  responses_[status]++;
}

void ServerMetrics::count_finish(const char* reason) {
  if (!reason) return;
  std::lock_guard<std::mutex> lk(mu_);
  finishes_[reason]++;
}

namespace {

// A label value in the exposition format: backslash, quote and newline escaped.
std::string label_value(const std::string& v) {
  std::string o;
  for (char c : v) {
    if (c == '\\') o += "\\\\";
    else if (c == '"') o += "\\\"";
    else if (c == '\n') o += "\\n";
    else o += c;
  }
  return o;
}

std::string model_label(const ModelMetricsView& m) {
  return m.name.empty() ? std::string() : "model=\"" + label_value(m.name) + "\"";
}

// name, or name{labels}
std::string series(const char* name, const std::string& labels) {
  return labels.empty() ? std::string(name) : std::string(name) + "{" + labels + "}";
}

std::string join(const std::string& a, const std::string& b) { return a.empty() ? b : b.empty() ? a : a + "," + b; }

struct EngineFamily {
  const char* name;
  const char* type;
  const char* help;
  double (*value)(const EngineStats&);
};

const EngineFamily kEngineFamilies[] = {
    {"moeserve_requests_running", "gauge", "Requests in the running batch.",
     [](const EngineStats& s) { return static_cast<double>(s.running); }},
    {"moeserve_requests_waiting", "gauge", "Requests waiting to be scheduled.",
     [](const EngineStats& s) { return static_cast<double>(s.waiting); }},
    {"moeserve_kv_cache_blocks_total", "gauge", "KV-cache blocks in the pool.",
     [](const EngineStats& s) { return static_cast<double>(s.kv_blocks_total); }},
    {"moeserve_kv_cache_blocks_used", "gauge", "KV-cache blocks in use.",
     [](const EngineStats& s) { return static_cast<double>(s.kv_blocks_used); }},
    {"moeserve_kv_cache_usage_ratio", "gauge", "Fraction of KV-cache blocks in use.",
     [](const EngineStats& s) {
       return s.kv_blocks_total > 0 ? static_cast<double>(s.kv_blocks_used) / s.kv_blocks_total : 0.0;
     }},
    {"moeserve_prefix_cache_queries_total", "counter", "Prompt tokens looked up in the prefix cache.",
     [](const EngineStats& s) { return static_cast<double>(s.prefix_queries); }},
    {"moeserve_prefix_cache_hits_total", "counter", "Prompt tokens served from the prefix cache.",
     [](const EngineStats& s) { return static_cast<double>(s.prefix_hits); }},
    {"moeserve_prefix_cache_hit_rate", "gauge", "Prefix-cache hits / queries, in tokens, since start.",
     [](const EngineStats& s) {
       return s.prefix_queries > 0 ? static_cast<double>(s.prefix_hits) / s.prefix_queries : 0.0;
     }},
    {"moeserve_preemptions_total", "counter", "Running requests preempted for lack of KV-cache blocks.",
     [](const EngineStats& s) { return static_cast<double>(s.preemptions); }},
    {"moeserve_prompt_tokens_total", "counter", "Prompt tokens processed.",
     [](const EngineStats& s) { return static_cast<double>(s.prompt_tokens); }},
    {"moeserve_generation_tokens_total", "counter", "Tokens generated.",
     [](const EngineStats& s) { return static_cast<double>(s.generation_tokens); }},
    {"moeserve_engine_steps_total", "counter", "Engine steps (forward passes).",
     [](const EngineStats& s) { return static_cast<double>(s.steps); }},
};

// Per priority class (engine/request.h): queue depth, running, admissions,
// preemptions and tokens, labelled class="provisioned|standard|batch".
struct ClassFamily {
  const char* name;
  const char* type;
  const char* help;
  int64_t ClassStats::*field;
};

const ClassFamily kClassFamilies[] = {
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

// The engine families, each with one sample per model (unlabelled when the
// one model has no name).
void render_engines(std::string& out, const std::vector<ModelMetricsView>& models) {
  if (models.empty()) return;
  for (const EngineFamily& f : kEngineFamilies) {
    header(out, f.name, f.type, f.help);
    for (const ModelMetricsView& m : models) out += series(f.name, model_label(m)) + " " + num(f.value(m.stats)) + "\n";
  }
  for (const ClassFamily& f : kClassFamilies) {
    header(out, f.name, f.type, f.help);
    for (const ModelMetricsView& m : models)
      for (int c = 0; c < kNumPriorities; ++c)
        out += series(f.name, join(model_label(m), std::string("class=\"") + priority_name(static_cast<Priority>(c)) +
                                                       "\"")) +
               " " + std::to_string(m.stats.classes[c].*f.field) + "\n";
  }
}

void render_experts(std::string& out, const std::vector<ModelMetricsView>& models) {
  bool headed = false;
  for (const ModelMetricsView& m : models) {
    const EngineStats& st = m.stats;
    if (m.num_experts <= 0 || st.expert_tokens.empty()) continue;
    if (!headed) header(out, "moeserve_expert_tokens_total", "counter", "Tokens routed to each expert of each layer.");
    headed = true;
    const int64_t layers =
        m.num_layers > 0 ? m.num_layers : static_cast<int64_t>(st.expert_tokens.size()) / m.num_experts;
    const std::string ml = model_label(m);
    for (int64_t l = 0; l < layers; ++l)
      for (int64_t e = 0; e < m.num_experts; ++e) {
        size_t i = static_cast<size_t>(l * m.num_experts + e);
        if (i >= st.expert_tokens.size()) break;
        out += series("moeserve_expert_tokens_total",
                      join(ml, "layer=\"" + std::to_string(l) + "\",expert=\"" + std::to_string(e) + "\"")) +
               " " + std::to_string(st.expert_tokens[i]) + "\n";
      }
  }
}

const char* const kTtftHelp = "Time from request arrival to the first token.";
const char* const kItlHelp = "Time between consecutive tokens of a sequence.";
const char* const kE2eHelp = "Time from request arrival to the last token.";

}  // namespace

void ServerMetrics::render_http(std::string& out, bool ready) const {
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
  std::lock_guard<std::mutex> lk(mu_);
  header(out, "moeserve_http_responses_total", "counter", "HTTP responses by status code.");
  for (const auto& [status, n] : responses_)
    out += "moeserve_http_responses_total{status=\"" + std::to_string(status) + "\"} " + std::to_string(n) + "\n";
  header(out, "moeserve_request_finished_total", "counter", "Finished generations by finish reason.");
  for (const auto& [reason, n] : finishes_)
    out += "moeserve_request_finished_total{finish_reason=\"" + reason + "\"} " + std::to_string(n) + "\n";
}

std::string ServerMetrics::render(const EngineStats* st, int64_t num_layers, int64_t num_experts, bool ready) const {
  std::string out;
  out.reserve(16384);
  render_http(out, ready);
  std::vector<ModelMetricsView> one;
  if (st) one.push_back(ModelMetricsView{std::string(), *st, num_layers, num_experts});
  render_engines(out, one);
  ttft.render(out, "moeserve_time_to_first_token_seconds", kTtftHelp);
  inter_token.render(out, "moeserve_inter_token_latency_seconds", kItlHelp);
  e2e.render(out, "moeserve_e2e_request_latency_seconds", kE2eHelp);
  admission.render(out, "moeserve_admission_seconds",
                   "Routing of a generation request: parsing, tokenization and governance (auth, limits).");
  render_experts(out, one);
  return out;
}

std::string ServerMetrics::render_models(const std::vector<ModelMetricsView>& models, bool ready) const {
  std::string out;
  out.reserve(16384 * (1 + models.size()));
  render_http(out, ready);
  std::vector<ModelMetricsView> named;
  for (const ModelMetricsView& m : models)
    if (!m.name.empty()) named.push_back(m);
  render_engines(out, named);
  {
    std::lock_guard<std::mutex> lk(models_mu_);
    struct Fam {
      const char* name;
      const char* help;
      Histogram LatencyHistograms::*h;
    };
    static const Fam fams[] = {{"moeserve_time_to_first_token_seconds", kTtftHelp, &LatencyHistograms::ttft},
                               {"moeserve_inter_token_latency_seconds", kItlHelp, &LatencyHistograms::inter_token},
                               {"moeserve_e2e_request_latency_seconds", kE2eHelp, &LatencyHistograms::e2e}};
    for (const Fam& f : fams) {
      header(out, f.name, "histogram", f.help);
      for (const auto& [name, h] : model_latency_)
        ((*h).*f.h).render_samples(out, f.name, "model=\"" + label_value(name) + "\"");
    }
  }
  admission.render(out, "moeserve_admission_seconds",
                   "Routing of a generation request: parsing, tokenization and governance (auth, limits).");
  render_experts(out, named);
  return out;
}

}  // namespace ms
