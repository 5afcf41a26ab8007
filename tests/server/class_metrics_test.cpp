// The per-priority-class families of /metrics (EngineStats::classes).
#include <gtest/gtest.h>

#include <map>
#include <sstream>

#include "server/metrics.h"

namespace ms {
namespace {

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

TEST(ClassMetrics, EveryFamilyHasEveryClass) {
  EngineStats st;
  st.classes[0] = {1, 2, 3, 0, 40, 50};
  st.classes[1] = {7, 8, 9, 4, 100, 200};
  st.classes[2] = {11, 0, 5, 6, 60, 70};
  ServerMetrics m;
  const auto s = samples(m.render(&st, 0, 0, true));
  EXPECT_EQ(s.at("moeserve_class_requests_waiting{class=\"provisioned\"}"), 1);
  EXPECT_EQ(s.at("moeserve_class_requests_running{class=\"standard\"}"), 8);
  EXPECT_EQ(s.at("moeserve_class_admitted_total{class=\"batch\"}"), 5);
  EXPECT_EQ(s.at("moeserve_class_preemptions_total{class=\"standard\"}"), 4);
  EXPECT_EQ(s.at("moeserve_class_prompt_tokens_total{class=\"provisioned\"}"), 40);
  EXPECT_EQ(s.at("moeserve_class_generation_tokens_total{class=\"batch\"}"), 70);
  int n = 0;
  for (const auto& [k, v] : s) n += k.rfind("moeserve_class_", 0) == 0;
  EXPECT_EQ(n, 6 * kNumPriorities);
  EXPECT_EQ(samples(m.render(nullptr, 0, 0, false)).count("moeserve_class_requests_waiting{class=\"standard\"}"), 0u);
}

}  // namespace
}  // namespace ms
