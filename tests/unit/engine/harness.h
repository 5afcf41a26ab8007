// harness.h — helpers for engine tests: collecting stream events per request,
// making prompts, running a workload through an Engine.
#pragma once
#include <condition_variable>
#include <cstdint>
#include <mutex>
#include <random>
#include <string>
#include <vector>

#include "engine/engine.h"
#include "unit/engine/fake_model.h"

namespace ms::test {

struct Outcome {
  std::vector<int32_t> tokens;     // tokens carried by events
  std::string text;                // concatenated event text
  std::vector<float> logprobs;
  FinishReason finish = FinishReason::None;
  std::string error;
  int finals = 0;                  // events with finish != None (must be 1)
  int events_after_final = 0;
  int token_events = 0;
  StreamEvent last;
};

class Collector {
 public:
  explicit Collector(size_t n) : out_(n) {}

  std::function<void(const StreamEvent&)> callback(size_t i) {
    return [this, i](const StreamEvent& ev) {
      std::lock_guard<std::mutex> lk(mu_);
      Outcome& o = out_[i];
      if (o.finals > 0) ++o.events_after_final;
      if (ev.token >= 0) {
        o.tokens.push_back(ev.token);
        o.logprobs.push_back(ev.logprob);
        ++o.token_events;
      }
      o.text += ev.text;
      o.last = ev;
      if (ev.finish != FinishReason::None) {
        ++o.finals;
        o.finish = ev.finish;
        o.error = ev.error;
        ++done_;
        cv_.notify_all();
      }
    };
  }
  // Waits until `n` requests have finished.
  void wait_done(size_t n) {
    std::unique_lock<std::mutex> lk(mu_);
    cv_.wait(lk, [&] { return static_cast<size_t>(done_) >= n; });
  }
  std::vector<Outcome> outcomes() {
    std::lock_guard<std::mutex> lk(mu_);
    return out_;
  }
  size_t done() {
    std::lock_guard<std::mutex> lk(mu_);
    return static_cast<size_t>(done_);
  }

 private:
  std::mutex mu_;
  std::condition_variable cv_;
  std::vector<Outcome> out_;
  int done_ = 0;
};

inline std::vector<int32_t> make_prompt(uint64_t seed, int32_t len, int64_t vocab) {
  std::mt19937_64 rng(seed);
  std::vector<int32_t> p(len);
  for (auto& t : p) t = 3 + static_cast<int32_t>(rng() % static_cast<uint64_t>(vocab - 3));
  return p;
}

struct Job {
  std::vector<int32_t> prompt;
  SamplingParams params;
};

inline SamplingParams greedy(int32_t max_tokens) {
  SamplingParams p;
  p.temperature = 0.0f;
  p.max_tokens = max_tokens;
  return p;
}

struct RunResult {
  std::vector<Outcome> outcomes;
  EngineStats stats;
  std::vector<std::string> runner_errors;
  int64_t runner_max_step_tokens = 0;
  int64_t runner_max_chunks = 0;
  int64_t runner_mixed_steps = 0;
};

// Runs jobs through a fresh engine with run_to_completion.
inline RunResult run_jobs(const FakeConfig& cfg, const EngineOptions& opts, const std::vector<Job>& jobs,
                          const TokenText& text) {
  FakeRunner runner(cfg, opts.num_blocks, opts.block_size);
  Engine engine(runner, text, opts);
  Collector col(jobs.size());
  std::vector<Request> reqs;
  for (size_t i = 0; i < jobs.size(); ++i) reqs.push_back(Request{jobs[i].prompt, jobs[i].params, col.callback(i)});
  engine.run_to_completion(std::move(reqs));
  RunResult r;
  r.outcomes = col.outcomes();
  r.stats = engine.stats();
  r.runner_errors = runner.errors();
  r.runner_max_step_tokens = runner.max_step_tokens();
  r.runner_max_chunks = runner.max_chunks();
  r.runner_mixed_steps = runner.mixed_steps();
  return r;
}

inline EngineOptions options(int32_t num_blocks, int32_t block_size = 4, int32_t max_batch = 64,
                             int32_t max_step_tokens = 512, bool prefix_caching = true) {
  EngineOptions o;
  o.num_blocks = num_blocks;
  o.block_size = block_size;
  o.max_batch = max_batch;
  o.max_step_tokens = max_step_tokens;
  o.prefix_caching = prefix_caching;
  return o;
}

}  // namespace ms::test
