// model_host.h — builds the served models of a multi-model server: the
// loader behind ModelRegistry (server/model_registry.h).
//
// Compute threads are shared, not multiplied: one ThreadPool serves every
// model, and every model's engine runs on one StepDriver (engine/
// step_driver.h): a single thread steps the engines that have work in turn
// (schedule, forward pass, sampling), one step each, so a step uses the
// whole pool and two busy models on 2 cores run 2 compute threads (the
// driver and one pool worker). Each model keeps its own engine (scheduler,
// KV pool).
//
// Served names over the same weights (same file, same --quant) share one
// mapping: the desc, the Mixtral built over it, and the tokenizer are held
// by every instance using them and released with the last one.
#pragma once
#include <cstdint>
#include <map>
#include <memory>
#include <mutex>
#include <string>

#include "core/thread_pool.h"
#include "engine/step_driver.h"
#include "runtime.h"
#include "serve_config.h"
#include "server/model_registry.h"

namespace ms::cli {

// Per-model values the flags give when the config does not.
struct ModelDefaults {
  std::string quant = "none";
  std::string kv_dtype = "auto";
  int64_t kv_cache_mb = 0;
  int64_t max_batch = 64;
  int64_t max_queue = 1024;
  int64_t max_step_tokens = 512;
};

class ModelHost {
 public:
  // threads: the shared pool's size (0: physical cores).
  explicit ModelHost(int threads);
  ~ModelHost();

  // Checks the model's file (one-line Error(BadInput) otherwise) and returns
  // its registry entry with the memory estimate the budget counts.
  ModelEntry declare(const ServedModelSpec& spec, const ModelDefaults& d);
  // The registry's loader: a started engine over shared weights.
  std::shared_ptr<ModelInstance> load(const std::string& name);
  // Provisioned throughput declared for a model (empty if none or unknown).
  std::vector<ProvisionedSpec> provisioned(const std::string& name) const;
  ThreadPool& pool() { return *pool_; }

 private:
  struct Weights;
  struct Instance;
  struct Plan {
    ServedModelSpec spec;
    RuntimeOptions ro;  // resolved per-model options
    std::string weights_key;
  };
  std::shared_ptr<Weights> weights_for(const Plan& p);

  std::unique_ptr<ThreadPool> pool_;
  std::shared_ptr<StepDriver> driver_;  // steps every model's engine, in turn
  mutable std::mutex mu_;
  std::map<std::string, Plan> plans_;
  std::map<std::string, std::weak_ptr<Weights>> weights_;
  std::mutex build_mu_;  // one weights build at a time
};

}  // namespace ms::cli
