// engine.h — the generation engine: requests in, token streams out.
//
// One engine thread runs the loop  schedule() -> StepPlan -> runner.forward()
// -> update(). Requests join the running batch between steps and leave when
// finished (iteration-level continuous batching); prefill chunks and decode
// tokens share a step. The KV cache is a pool of fixed-size blocks with
// refcounts and prefix hashes (block_pool.h); when it runs dry the newest
// running request is preempted and later recomputed.
//
// Thread-safety: submit()/cancel()/stats() may be called from any thread.
// Callbacks run on the engine thread (or the StepDriver's, for an engine
// started on one) and must not block.
// Request and event types: engine/request.h; the model and tokenizer
// interfaces it drives: engine/model_runner.h.
#pragma once
#include <atomic>
#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <unordered_map>
#include <vector>

#include "engine/model_runner.h"
#include "engine/request.h"
#include "model/batch.h"

namespace ms {

class StepDriver;  // engine/step_driver.h

struct EngineOptions {
  int32_t block_size = 16;
  int32_t num_blocks = 0;           // KV pool size in blocks (from --kv-cache-mb)
  int32_t max_batch = 64;           // max running sequences
  int32_t max_step_tokens = 512;    // token budget per step (prefill chunking)
  int32_t max_queue = 1024;         // waiting requests beyond this are refused
  bool prefix_caching = true;
};

enum class SubmitStatus { Ok, QueueFull, TooLong, Invalid, ShuttingDown };

struct SubmitResult {
  SubmitStatus status = SubmitStatus::Ok;
  uint64_t id = 0;
  std::string message;
};

// One priority class's share of the engine (EngineStats::classes[Priority]).
struct ClassStats {
  int64_t waiting = 0, running = 0;
  int64_t admitted = 0;           // first admissions
  int64_t preempted = 0;          // preemptions of its sequences
  int64_t prompt_tokens = 0, generation_tokens = 0;
};

struct EngineStats {
  int64_t running = 0, waiting = 0;
  int64_t kv_blocks_total = 0, kv_blocks_used = 0;
  int64_t prefix_queries = 0, prefix_hits = 0;   // in tokens
  int64_t preemptions = 0;
  int64_t prompt_tokens = 0, generation_tokens = 0;
  int64_t steps = 0;
  std::vector<int64_t> expert_tokens;           // [layer * n_experts + e], cumulative
  ClassStats classes[kNumPriorities];           // per priority class (index: Priority)
};

class Engine {
 public:
  Engine(ModelRunner& runner, const TokenText& text, EngineOptions opts);
  ~Engine();
  Engine(const Engine&) = delete;
  Engine& operator=(const Engine&) = delete;

  void start();                  // launches the engine thread
  // No thread of its own: the steps run on `driver`'s thread, in turn with
  // the other engines started on it (engine/step_driver.h).
  void start(StepDriver& driver);
  void stop();                   // cancels everything, joins the thread (or leaves the driver)
  SubmitResult submit(Request r);
  void cancel(uint64_t id);      // safe for unknown/finished ids
  EngineStats stats() const;

  // Runs requests to completion on the calling thread (no engine thread): for
  // the CLI and tests. Each request's events arrive through its callback.
  void run_to_completion(std::vector<Request> requests);

 private:
  friend class StepDriver;
  // One round on the driver's thread (intake, cancels, at most one step);
  // false when there was nothing to do.
  bool drive_step();

  struct Impl;
  std::unique_ptr<Impl> impl_;
};

}  // namespace ms
