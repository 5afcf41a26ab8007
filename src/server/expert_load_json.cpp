// expert_load_json.cpp — see expert_load_json.h.
#include "server/expert_load_json.h"

namespace ms {

using json = nlohmann::json;

namespace {

json table(const std::vector<int64_t>& counts, int64_t layers, int64_t experts) {
  json rows = json::array();
  for (int64_t l = 0; l < layers; ++l) {
    json row = json::array();
    for (int64_t e = 0; e < experts; ++e) {
      const size_t i = static_cast<size_t>(l * experts + e);
      row.push_back(i < counts.size() ? counts[i] : 0);
    }
    rows.push_back(std::move(row));
  }
  return rows;
}

}  // namespace

json expert_load_json(const std::vector<std::shared_ptr<const ExpertLoad>>& loads) {
  const ExpertLoad* shape = nullptr;
  size_t n_choices = 0;
  for (const auto& l : loads) {
    if (!l) continue;
    ++n_choices;
    if (!shape && l->layers > 0) shape = l.get();
  }
  if (!shape) {  // a model without routing (dense), or nothing ran
    return json{{"layers", 0}, {"experts", 0}, {"top_k", 0}, {"prompt_tokens", 0}, {"completion_tokens", 0},
                {"prompt", json::array()}, {"completion", json::array()}};
  }
  const int64_t L = shape->layers, E = shape->experts, K = shape->top_k;
  std::vector<int64_t> prompt(static_cast<size_t>(L * E), 0), completion(prompt.size(), 0);
  int64_t prompt_tokens = 0, completion_tokens = 0;
  for (const auto& l : loads) {
    if (!l || l->layers != L || l->experts != E || l->top_k != K) continue;
    for (size_t i = 0; i < prompt.size() && i < l->prompt.size(); ++i) prompt[i] += l->prompt[i];
    for (size_t i = 0; i < completion.size() && i < l->completion.size(); ++i) completion[i] += l->completion[i];
    prompt_tokens += l->prompt_tokens;
    completion_tokens += l->completion_tokens;
  }
  json j = {{"layers", L},
            {"experts", E},
            {"top_k", K},
            {"prompt_tokens", prompt_tokens},
            {"completion_tokens", completion_tokens},
            {"prompt", table(prompt, L, E)},
            {"completion", table(completion, L, E)}};
  if (n_choices == 1) {
    const std::vector<int32_t>& r = shape->completion_routes;
    const size_t per = static_cast<size_t>(L * K);
    json toks = json::array();
    for (size_t t = 0; per > 0 && (t + 1) * per <= r.size(); ++t) {
      json layers = json::array();
      for (int64_t l = 0; l < L; ++l) {
        json ks = json::array();
        for (int64_t k = 0; k < K; ++k) ks.push_back(r[t * per + static_cast<size_t>(l * K + k)]);
        layers.push_back(std::move(ks));
      }
      toks.push_back(std::move(layers));
    }
    j["completion_routes"] = std::move(toks);
  }
  return j;
}

}  // namespace ms
