// StepDriver: several engines stepped by one thread, in turn. Outputs equal
// each engine run alone; while two engines are busy their steps alternate
// (neither starves); an idle engine does not slow a busy one; an engine on a
// driver starts no thread of its own; stopping one leaves the other serving.
#include <gtest/gtest.h>

#include <atomic>
#include <chrono>
#include <dirent.h>
#include <mutex>
#include <thread>

#include "engine/step_driver.h"
#include "unit/engine/harness.h"

namespace ms {
namespace {

using test::FakeConfig;
using test::Job;

// Logs which engine each forward pass belongs to.
class LoggingRunner : public test::FakeRunner {
 public:
  LoggingRunner(FakeConfig cfg, int32_t blocks, int32_t bs, int id, std::vector<int>& log, std::mutex& mu)
      : FakeRunner(cfg, blocks, bs), id_(id), log_(log), mu_(mu) {}
  void forward(const std::vector<SeqChunk>& chunks, ForwardOutput& out) override {
    while (gate && !gate->load()) std::this_thread::yield();
    {
      std::lock_guard<std::mutex> lk(mu_);
      log_.push_back(id_);
    }
    FakeRunner::forward(chunks, out);
  }

  const std::atomic<bool>* gate = nullptr;  // forward passes wait until it opens

 private:
  int id_;
  std::vector<int>& log_;
  std::mutex& mu_;
};

int threads_in_process() {
  int n = 0;
  if (DIR* d = opendir("/proc/self/task")) {
    while (dirent* e = readdir(d))
      if (e->d_name[0] != '.') ++n;
    closedir(d);
  }
  return n;
}

std::vector<Job> jobs(int n, int64_t vocab, int max_tokens, uint64_t seed) {
  std::vector<Job> js;
  for (int i = 0; i < n; ++i) {
    Job j;
    j.prompt = test::make_prompt(seed + i, 3 + i % 7, vocab);
    j.params = test::greedy(max_tokens);
    j.params.ignore_eos = true;
    js.push_back(j);
  }
  return js;
}

void submit_all(Engine& e, const std::vector<Job>& js, test::Collector& col) {
  for (size_t i = 0; i < js.size(); ++i)
    ASSERT_EQ(e.submit(Request{js[i].prompt, js[i].params, col.callback(i)}).status, SubmitStatus::Ok);
}

TEST(StepDriver, TwoBusyEnginesAlternateAndMatchRunningAlone) {
  FakeConfig ca, cb;
  cb.salt = 77;  // a different model
  std::vector<int> log;
  std::mutex log_mu;
  const EngineOptions o = test::options(400, 4, 4);
  LoggingRunner ra(ca, o.num_blocks, o.block_size, 0, log, log_mu), rb(cb, o.num_blocks, o.block_size, 1, log, log_mu);
  test::FakeText text;
  const auto ja = jobs(8, ca.vocab, 40, 1), jb = jobs(8, cb.vocab, 40, 100);
  test::Collector col_a(ja.size()), col_b(jb.size());
  {
    StepDriver driver;
    Engine ea(ra, text, o), eb(rb, text, o);
    // Both queues are full, and no step runs until both are attached, so
    // both are busy from the start.
    std::atomic<bool> gate{false};
    ra.gate = rb.gate = &gate;
    submit_all(ea, ja, col_a);
    submit_all(eb, jb, col_b);
    const int before = threads_in_process();
    ea.start(driver);
    eb.start(driver);
    gate = true;
    EXPECT_EQ(threads_in_process(), before) << "an engine on a driver starts no thread";
    EXPECT_EQ(driver.num_engines(), 2u);
    col_a.wait_done(ja.size());
    col_b.wait_done(jb.size());
    ea.stop();
    eb.stop();
    EXPECT_EQ(driver.num_engines(), 0u);
  }
  // Same outputs as each engine alone.
  const auto alone_a = test::run_jobs(ca, o, ja, text), alone_b = test::run_jobs(cb, o, jb, text);
  const auto out_a = col_a.outcomes(), out_b = col_b.outcomes();
  for (size_t i = 0; i < ja.size(); ++i) {
    EXPECT_EQ(out_a[i].tokens, alone_a.outcomes[i].tokens) << "a #" << i;
    EXPECT_EQ(out_b[i].tokens, alone_b.outcomes[i].tokens) << "b #" << i;
    EXPECT_EQ(out_a[i].finish, FinishReason::Length);
  }
  EXPECT_NE(out_a[0].tokens, out_b[0].tokens);
  // While both had work, the steps alternated: from the first step of the
  // second engine to the last step of the one that finished first.
  std::lock_guard<std::mutex> lk(log_mu);
  size_t first_b = log.size(), last_a = 0, last_b = 0;
  for (size_t i = 0; i < log.size(); ++i) {
    if (log[i] == 1 && first_b == log.size()) first_b = i;
    (log[i] == 0 ? last_a : last_b) = i;
  }
  const size_t end = std::min(last_a, last_b);
  ASSERT_GT(end, first_b + 20) << "both engines ran many steps side by side";
  for (size_t i = first_b + 1; i <= end; ++i) ASSERT_NE(log[i], log[i - 1]) << "step " << i << ": an engine went twice";
}

TEST(StepDriver, IdleEngineLeavesTheBusyOneAllSteps) {
  FakeConfig cfg;
  std::vector<int> log;
  std::mutex log_mu;
  const EngineOptions o = test::options(400, 4, 4);
  LoggingRunner ra(cfg, o.num_blocks, o.block_size, 0, log, log_mu), rb(cfg, o.num_blocks, o.block_size, 1, log, log_mu);
  test::FakeText text;
  StepDriver driver;
  Engine ea(ra, text, o), eb(rb, text, o);
  ea.start(driver);
  eb.start(driver);
  const auto ja = jobs(4, cfg.vocab, 30, 5);
  test::Collector col(ja.size());
  submit_all(ea, ja, col);
  col.wait_done(ja.size());
  {
    std::lock_guard<std::mutex> lk(log_mu);
    EXPECT_EQ(std::count(log.begin(), log.end(), 1), 0);
    EXPECT_GE(log.size(), 30u);
  }
  // Work arriving at the idle one later is served too (the driver wakes).
  const auto jb = jobs(2, cfg.vocab, 5, 9);
  test::Collector col_b(jb.size());
  submit_all(eb, jb, col_b);
  col_b.wait_done(jb.size());
  EXPECT_EQ(col_b.outcomes()[1].finish, FinishReason::Length);
}

TEST(StepDriver, StoppingOneEngineLeavesTheOtherServing) {
  FakeConfig cfg;
  const EngineOptions o = test::options(1100, 4, 2);
  test::FakeRunner ra(cfg, o.num_blocks, o.block_size), rb(cfg, o.num_blocks, o.block_size);
  test::FakeText text;
  StepDriver driver;
  Engine eb(rb, text, o);
  eb.start(driver);
  const auto long_jobs = jobs(6, cfg.vocab, 4000, 11);
  test::Collector col_a(long_jobs.size());
  {
    Engine ea(ra, text, o);
    ea.start(driver);
    submit_all(ea, long_jobs, col_a);
    while (ea.stats().steps < 3) std::this_thread::sleep_for(std::chrono::milliseconds(1));
    ea.stop();  // mid-step on the driver's thread: waits for the step, then cancels everything
    EXPECT_EQ(col_a.done(), long_jobs.size());
    EXPECT_EQ(ea.stats().kv_blocks_used, 0);
    EXPECT_EQ(ea.submit(Request{long_jobs[0].prompt, long_jobs[0].params, nullptr}).status, SubmitStatus::ShuttingDown);
  }
  EXPECT_EQ(driver.num_engines(), 1u);
  for (const auto& out : col_a.outcomes()) EXPECT_EQ(out.finals, 1);
  const auto jb = jobs(3, cfg.vocab, 7, 21);
  test::Collector col_b(jb.size());
  submit_all(eb, jb, col_b);
  col_b.wait_done(jb.size());
  for (const auto& out : col_b.outcomes()) EXPECT_EQ(out.last.completion_tokens, 7);
  eb.stop();
}

}  // namespace
}  // namespace ms
