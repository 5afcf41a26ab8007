// expert_load_json.h — the "expert_load" object of a response that asked for
// it ("return_expert_load": true; docs/SERVING.md):
//   {"layers": L, "experts": E, "top_k": K,
//    "prompt_tokens": P, "completion_tokens": C,      tokens counted
//    "prompt": [[E counts] x L], "completion": [[E counts] x L],
//    "completion_routes": [[[K experts] x L] per completion token]}  (one choice only)
// Counts are summed over the request's choices; each counted token adds K to
// its layer's row, so a table's total is L * K * its token count.
#pragma once
#include <memory>
#include <vector>

#include <nlohmann/json.hpp>

#include "engine/engine.h"

namespace ms {

// `loads`: one per choice (null entries are skipped). Per-token routes are
// included when there is exactly one choice.
nlohmann::json expert_load_json(const std::vector<std::shared_ptr<const ExpertLoad>>& loads);

}  // namespace ms
