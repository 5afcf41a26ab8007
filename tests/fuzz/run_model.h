// run_model.h — the whole path a downloaded model takes, for the model-file
// fuzzers: description (bounds), tokenizer, weights, KV cache, engine, and
// one greedy step of a two-token prompt on one thread.
#pragma once
#include <string>

#include "core/error.h"
#include "runtime.h"

namespace ms::fuzz {

inline void run_model(const std::string& path) {
  RuntimeOptions ro;
  ro.model_path = path;
  ro.threads = 1;
  ro.kv_cache_mb = 1;
  ro.max_batch = 1;
  ro.max_step_tokens = 16;
  try {
    auto rt = load_runtime(ro);
    Request r;
    r.prompt = {int32_t(rt->desc.cfg.bos_id), 0};
    r.sampling.temperature = 0.0f;
    r.sampling.max_tokens = 2;
    r.sampling.ignore_eos = true;
    r.on_event = [](const StreamEvent&) {};
    std::vector<Request> reqs;
    reqs.push_back(std::move(r));
    rt->engine->run_to_completion(std::move(reqs));
  } catch (const Error&) {
    // refused: the expected outcome for bad files
  }
}

}  // namespace ms::fuzz
