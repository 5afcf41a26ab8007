// Prometheus exposition: histogram buckets are cumulative and consistent,
// engine statistics appear under their names, expert counters are labelled.
#include "server/metrics.h"

#include <gtest/gtest.h>

#include <map>
#include <sstream>

namespace ms {
namespace {

// name{labels} -> value, for every sample line.
std::map<std::string, double> samples(const std::string& text) {
  std::map<std::string, double> out;
  std::istringstream is(text);
  std::string line;
  while (std::getline(is, line)) {
    if (line.empty() || line[0] == '#') continue;
    auto sp = line.rfind(' ');
    out[line.substr(0, sp)] = std::stod(line.substr(sp + 1));
  }
  return out;
}

TEST(Histogram, CumulativeBuckets) {
  Histogram h({0.1, 1.0, 10.0});
  for (double v : {0.05, 0.1, 0.5, 2.0, 20.0, 30.0}) h.observe(v);
  EXPECT_EQ(h.count(), 6u);
  std::string out;
  h.render(out, "x_seconds", "help");
  auto s = samples(out);
  EXPECT_EQ(s["x_seconds_bucket{le=\"0.1\"}"], 2);  // le is inclusive
  EXPECT_EQ(s["x_seconds_bucket{le=\"1\"}"], 3);
  EXPECT_EQ(s["x_seconds_bucket{le=\"10\"}"], 4);
  EXPECT_EQ(s["x_seconds_bucket{le=\"+Inf\"}"], 6);
  EXPECT_EQ(s["x_seconds_count"], 6);
  EXPECT_NEAR(s["x_seconds_sum"], 52.65, 1e-9);
  EXPECT_NE(out.find("# TYPE x_seconds histogram"), std::string::npos);
}

TEST(ServerMetrics, RendersEngineStatsAndExperts) {
  ServerMetrics m;
  m.ttft.observe(0.02);
  m.inter_token.observe(0.004);
  m.e2e.observe(0.3);
  m.count_response(200);
  m.count_response(200);
  m.count_response(429);
  m.count_finish("stop");
  EngineStats st;
  st.running = 3;
  st.waiting = 5;
  st.kv_blocks_total = 200;
  st.kv_blocks_used = 50;
  st.prefix_queries = 100;
  st.prefix_hits = 25;
  st.preemptions = 2;
  st.prompt_tokens = 1000;
  st.generation_tokens = 400;
  st.expert_tokens = {1, 2, 3, 4, 5, 6};  // 2 layers x 3 experts
  auto s = samples(m.render(&st, 2, 3, true));
  EXPECT_EQ(s["moeserve_ready"], 1);
  EXPECT_EQ(s["moeserve_requests_running"], 3);
  EXPECT_EQ(s["moeserve_requests_waiting"], 5);
  EXPECT_DOUBLE_EQ(s["moeserve_kv_cache_usage_ratio"], 0.25);
  EXPECT_DOUBLE_EQ(s["moeserve_prefix_cache_hit_rate"], 0.25);
  EXPECT_EQ(s["moeserve_prefix_cache_hits_total"], 25);
  EXPECT_EQ(s["moeserve_preemptions_total"], 2);
  EXPECT_EQ(s["moeserve_prompt_tokens_total"], 1000);
  EXPECT_EQ(s["moeserve_generation_tokens_total"], 400);
  EXPECT_EQ(s["moeserve_time_to_first_token_seconds_count"], 1);
  EXPECT_EQ(s["moeserve_inter_token_latency_seconds_count"], 1);
  EXPECT_EQ(s["moeserve_e2e_request_latency_seconds_count"], 1);
  EXPECT_EQ(s["moeserve_http_responses_total{status=\"200\"}"], 2);
  EXPECT_EQ(s["moeserve_http_responses_total{status=\"429\"}"], 1);
  EXPECT_EQ(s["moeserve_request_finished_total{finish_reason=\"stop\"}"], 1);
  EXPECT_EQ(s["moeserve_expert_tokens_total{layer=\"0\",expert=\"0\"}"], 1);
  EXPECT_EQ(s["moeserve_expert_tokens_total{layer=\"1\",expert=\"2\"}"], 6);
  EXPECT_EQ(s.count("moeserve_expert_tokens_total{layer=\"2\",expert=\"0\"}"), 0u);
}

TEST(ServerMetrics, LoadingHasNoEngineStats) {
  ServerMetrics m;
  std::string text = m.render(nullptr, 0, 0, false);
  auto s = samples(text);
  EXPECT_EQ(s["moeserve_ready"], 0);
  EXPECT_EQ(s.count("moeserve_requests_running"), 0u);
  EXPECT_EQ(s["moeserve_time_to_first_token_seconds_count"], 0);
  // Every sample line belongs to a declared metric family.
  std::istringstream is(text);
  std::string line;
  while (std::getline(is, line))
    if (!line.empty() && line[0] != '#') {
      EXPECT_EQ(line.rfind("moeserve_", 0), 0u) << line;
    }
}

TEST(ServerMetrics, SeveralModelsAreLabelledPerModel) {
  ServerMetrics m;
  m.model_latency("a").ttft.observe(0.02);
  m.model_latency("a").ttft.observe(0.03);
  m.model_latency("b").ttft.observe(0.5);
  m.model_latency("b").inter_token.observe(0.004);
  m.model_latency("gone").e2e.observe(1.0);  // served, then unloaded: its histograms stay
  ModelMetricsView a, b;
  a.name = "a";
  a.stats.running = 2;
  a.stats.generation_tokens = 70;
  a.stats.classes[static_cast<int>(Priority::Provisioned)].admitted = 4;
  a.stats.expert_tokens = {1, 2, 3, 4};
  a.num_layers = 2;
  a.num_experts = 2;
  b.name = "b\"x";  // quoted in the label
  b.stats.waiting = 9;
  b.stats.generation_tokens = 30;
  const std::string text = m.render_models({a, b}, true);
  auto s = samples(text);
  EXPECT_EQ(s["moeserve_ready"], 1);
  EXPECT_EQ(s["moeserve_requests_running{model=\"a\"}"], 2);
  EXPECT_EQ(s["moeserve_requests_waiting{model=\"b\\\"x\"}"], 9);
  EXPECT_EQ(s["moeserve_generation_tokens_total{model=\"a\"}"], 70);
  EXPECT_EQ(s["moeserve_generation_tokens_total{model=\"b\\\"x\"}"], 30);
  EXPECT_EQ(s["moeserve_class_admitted_total{model=\"a\",class=\"provisioned\"}"], 4);
  EXPECT_EQ(s["moeserve_expert_tokens_total{model=\"a\",layer=\"1\",expert=\"1\"}"], 4);
  EXPECT_EQ(s["moeserve_time_to_first_token_seconds_count{model=\"a\"}"], 2);
  EXPECT_EQ(s["moeserve_time_to_first_token_seconds_bucket{model=\"a\",le=\"0.025\"}"], 1);
  EXPECT_EQ(s["moeserve_time_to_first_token_seconds_count{model=\"b\"}"], 1);
  EXPECT_EQ(s["moeserve_inter_token_latency_seconds_count{model=\"b\"}"], 1);
  EXPECT_EQ(s["moeserve_e2e_request_latency_seconds_count{model=\"gone\"}"], 1);
  // No unlabelled engine or latency series beside the labelled ones (a sum
  // over `model` would count them twice); each family declared once.
  EXPECT_EQ(s.count("moeserve_requests_running"), 0u);
  EXPECT_EQ(s.count("moeserve_generation_tokens_total"), 0u);
  EXPECT_EQ(s.count("moeserve_time_to_first_token_seconds_count"), 0u);
  size_t types = 0;
  for (size_t p = text.find("# TYPE moeserve_requests_running "); p != std::string::npos;
       p = text.find("# TYPE moeserve_requests_running ", p + 1))
    ++types;
  EXPECT_EQ(types, 1u);
}

}  // namespace
}  // namespace ms
