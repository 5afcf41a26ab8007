// Engine end to end with the fake model: outputs must not depend on batching,
// pool size, chunking or prefix caching; the stream contract; threading.
#include <gtest/gtest.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <memory>
#include <thread>

#include "unit/engine/harness.h"

namespace ms {
namespace {

using test::FakeConfig;
using test::Job;
using test::Outcome;
using test::RunResult;

// The stream contract every finished request must satisfy.
void check_stream(const Outcome& o, const Job& j, const std::string& what) {
  SCOPED_TRACE(what);
  EXPECT_EQ(o.finals, 1);
  EXPECT_EQ(o.events_after_final, 0);
  EXPECT_EQ(o.token_events, o.last.completion_tokens);
  EXPECT_EQ(o.last.prompt_tokens, static_cast<int32_t>(j.prompt.size()));
  EXPECT_LE(o.last.completion_tokens, j.params.max_tokens);
  EXPECT_NE(o.finish, FinishReason::Error) << o.error;
}

void check_run(const RunResult& r, const std::vector<Job>& jobs, const std::string& what) {
  ASSERT_EQ(r.outcomes.size(), jobs.size());
  for (size_t i = 0; i < jobs.size(); ++i) check_stream(r.outcomes[i], jobs[i], what + " #" + std::to_string(i));
  EXPECT_TRUE(r.runner_errors.empty()) << what << ": " << r.runner_errors[0];
  EXPECT_EQ(r.stats.kv_blocks_used, 0) << what;
  EXPECT_EQ(r.stats.running, 0);
  EXPECT_EQ(r.stats.waiting, 0);
}

void expect_same_outputs(const RunResult& a, const RunResult& b, const std::string& what) {
  ASSERT_EQ(a.outcomes.size(), b.outcomes.size());
  for (size_t i = 0; i < a.outcomes.size(); ++i) {
    EXPECT_EQ(a.outcomes[i].tokens, b.outcomes[i].tokens) << what << " request " << i;
    EXPECT_EQ(a.outcomes[i].text, b.outcomes[i].text) << what << " request " << i;
    EXPECT_EQ(a.outcomes[i].finish, b.outcomes[i].finish) << what << " request " << i;
  }
}

// A mixed workload: many prompt lengths, some sharing a prefix, some sampled with seeds.
std::vector<Job> workload(int n, int64_t vocab, bool sampled_too) {
  std::vector<Job> jobs;
  const auto shared = test::make_prompt(4242, 21, vocab);
  for (int i = 0; i < n; ++i) {
    Job j;
    j.prompt = test::make_prompt(i + 1, 1 + (i * 37) % 90, vocab);
    if (i % 4 == 0) j.prompt.insert(j.prompt.begin(), shared.begin(), shared.end());
    j.params = test::greedy(4 + (i * 13) % 29);
    if (sampled_too && i % 3 == 1) {
      j.params.temperature = 0.9f;
      j.params.top_p = 0.95f;
      j.params.has_seed = true;
      j.params.seed = 1000 + i;
    }
    jobs.push_back(j);
  }
  return jobs;
}

TEST(Engine, GreedyAloneEqualsBatchedWithOthers) {
  FakeConfig cfg;
  test::FakeText text;
  const auto jobs = workload(24, cfg.vocab, false);
  RunResult batched = test::run_jobs(cfg, test::options(2000, 4, 64, 128), jobs, text);
  check_run(batched, jobs, "batched");
  EXPECT_GT(batched.runner_max_chunks, 8);
  EXPECT_GT(batched.runner_mixed_steps, 0);
  for (size_t i = 0; i < jobs.size(); ++i) {
    RunResult alone = test::run_jobs(cfg, test::options(2000, 4, 64, 128), {jobs[i]}, text);
    EXPECT_EQ(alone.outcomes[0].tokens, batched.outcomes[i].tokens) << "request " << i;
    EXPECT_EQ(alone.outcomes[0].text, batched.outcomes[i].text) << "request " << i;
  }
}

TEST(Engine, TinyPoolForcesPreemptionWithoutChangingOutputs) {
  FakeConfig cfg;
  test::FakeText text;
  const auto jobs = workload(20, cfg.vocab, true);
  RunResult big = test::run_jobs(cfg, test::options(4000, 4), jobs, text);
  check_run(big, jobs, "big pool");
  EXPECT_EQ(big.stats.preemptions, 0);
  // The longest request needs (21 + 89 + 32) / 4 = 36 blocks.
  for (int32_t blocks : {36, 40, 60}) {
    RunResult tiny = test::run_jobs(cfg, test::options(blocks, 4), jobs, text);
    check_run(tiny, jobs, "tiny pool");
    EXPECT_GT(tiny.stats.preemptions, 0) << blocks << " blocks";
    expect_same_outputs(big, tiny, "pool of " + std::to_string(blocks));
  }
}

TEST(Engine, ChunkedPrefillEqualsUnchunked) {
  FakeConfig cfg;
  test::FakeText text;
  const auto jobs = workload(16, cfg.vocab, true);
  RunResult whole = test::run_jobs(cfg, test::options(4000, 4, 64, 100000), jobs, text);
  check_run(whole, jobs, "unchunked");
  for (int32_t budget : {1, 3, 7, 64}) {
    RunResult chunked = test::run_jobs(cfg, test::options(4000, 4, 64, budget), jobs, text);
    check_run(chunked, jobs, "chunked");
    EXPECT_LE(chunked.runner_max_step_tokens, budget);
    expect_same_outputs(whole, chunked, "budget " + std::to_string(budget));
  }
}

TEST(Engine, BlockSizeAndBatchLimitDoNotChangeOutputs) {
  FakeConfig cfg;
  test::FakeText text;
  const auto jobs = workload(12, cfg.vocab, true);
  RunResult ref = test::run_jobs(cfg, test::options(4000, 16), jobs, text);
  check_run(ref, jobs, "ref");
  for (int32_t bs : {1, 2, 5}) {
    RunResult r = test::run_jobs(cfg, test::options(8000 / bs + 100, bs, 3, 50), jobs, text);
    check_run(r, jobs, "block size");
    EXPECT_LE(r.runner_max_chunks, 3);
    expect_same_outputs(ref, r, "block size " + std::to_string(bs));
  }
}

TEST(Engine, PrefixCacheHitsAreCountedAndOutputsUnchanged) {
  FakeConfig cfg;
  test::FakeText text;
  const auto system = test::make_prompt(7, 40, cfg.vocab);
  std::vector<Job> jobs;
  for (int i = 0; i < 6; ++i) {
    Job j;
    j.prompt = system;
    const auto tail = test::make_prompt(100 + i, 3 + i, cfg.vocab);
    j.prompt.insert(j.prompt.end(), tail.begin(), tail.end());
    j.params = test::greedy(10);
    jobs.push_back(j);
  }
  // Reference: caching off.
  RunResult off = test::run_jobs(cfg, test::options(1000, 4, 64, 512, false), jobs, text);
  check_run(off, jobs, "caching off");
  EXPECT_EQ(off.stats.prefix_hits, 0);

  // Caching on, requests one after the other on one engine: the later ones hit.
  test::FakeRunner runner(cfg, 1000, 4);
  Engine engine(runner, text, test::options(1000, 4));
  test::Collector col(jobs.size());
  for (size_t i = 0; i < jobs.size(); ++i)
    engine.run_to_completion({Request{jobs[i].prompt, jobs[i].params, col.callback(i)}});
  const auto outs = col.outcomes();
  const EngineStats st = engine.stats();
  EXPECT_TRUE(runner.errors().empty());
  EXPECT_EQ(st.kv_blocks_used, 0);
  EXPECT_EQ(outs[0].last.cached_tokens, 0);
  for (size_t i = 0; i < jobs.size(); ++i) {
    check_stream(outs[i], jobs[i], "cached");
    EXPECT_EQ(outs[i].tokens, off.outcomes[i].tokens) << i;
    if (i > 0) {
      EXPECT_EQ(outs[i].last.cached_tokens, 40) << i;  // the 10 full blocks of the shared prefix
    }
  }
  EXPECT_EQ(st.prefix_hits, 40 * 5);
  int64_t queried = 0;
  for (const auto& j : jobs) queried += static_cast<int64_t>(j.prompt.size());
  EXPECT_EQ(st.prefix_queries, queried);
  EXPECT_EQ(st.prompt_tokens, queried);
  // The cached tokens were not computed again.
  EXPECT_EQ(runner.total_tokens(), queried - 40 * 5 + 6 * 9);
}

TEST(Engine, ChoicesOfOnePromptSubmittedTogetherShareItsBlocks) {
  FakeConfig cfg;
  test::FakeText text;
  Job j{test::make_prompt(8, 40, cfg.vocab), test::greedy(12)};
  j.params.ignore_eos = true;
  std::vector<Job> jobs(4, j);
  for (int i = 1; i < 4; ++i) {  // sampled choices, as n > 1 usually is
    jobs[i].params.temperature = 1.0f;
    jobs[i].params.has_seed = true;
    jobs[i].params.seed = i;
  }
  RunResult r = test::run_jobs(cfg, test::options(200, 4, 64, 512), jobs, text);
  check_run(r, jobs, "choices");
  // The first computes the prompt; the others find its 9 full blocks (never the
  // last prompt token).
  EXPECT_EQ(r.stats.prefix_hits, 3 * 36);
  for (int i = 1; i < 4; ++i) EXPECT_EQ(r.outcomes[i].last.cached_tokens, 36);
  RunResult off = test::run_jobs(cfg, test::options(200, 4, 64, 512, false), jobs, text);
  expect_same_outputs(r, off, "choices, caching off");
}

TEST(Engine, SameSeedSameTokensAloneOrInABatch) {
  FakeConfig cfg;
  test::FakeText text;
  Job j;
  j.prompt = test::make_prompt(3, 17, cfg.vocab);
  j.params.temperature = 1.0f;
  j.params.top_k = 50;
  j.params.max_tokens = 25;
  j.params.has_seed = true;
  j.params.seed = 99;
  j.params.ignore_eos = true;
  RunResult alone = test::run_jobs(cfg, test::options(500, 4), {j}, text);
  auto jobs = workload(10, cfg.vocab, true);
  jobs.insert(jobs.begin() + 5, j);
  RunResult batch = test::run_jobs(cfg, test::options(60, 4, 64, 16), jobs, text);
  check_run(batch, jobs, "batch");
  EXPECT_EQ(alone.outcomes[0].tokens, batch.outcomes[5].tokens);
  EXPECT_EQ(alone.outcomes[0].tokens.size(), 25u);
  j.params.seed = 100;
  RunResult other = test::run_jobs(cfg, test::options(500, 4), {j}, text);
  EXPECT_NE(alone.outcomes[0].tokens, other.outcomes[0].tokens);
}

TEST(Engine, EosStopsAndIsNotTextUnlessIgnored) {
  FakeConfig cfg;
  cfg.eos_after = 10;  // from position 10 on the model wants EOS
  test::WordText text;
  Job j{test::make_prompt(1, 6, cfg.vocab), test::greedy(20)};
  RunResult r = test::run_jobs(cfg, test::options(100, 4), {j}, text);
  const Outcome& o = r.outcomes[0];
  check_stream(o, j, "eos");
  EXPECT_EQ(o.finish, FinishReason::Stop);
  // The logits at positions 5..9 give words, those at position 10 give EOS.
  ASSERT_EQ(o.tokens.size(), 6u);
  EXPECT_EQ(o.tokens.back(), cfg.eos);
  EXPECT_EQ(o.last.completion_tokens, 6);
  std::string words;
  for (int k = 0; k < 5; ++k) words += text.token_bytes(o.tokens[k]);
  EXPECT_EQ(o.text, words.substr(1));  // EOS adds no text

  j.params.ignore_eos = true;
  RunResult ig = test::run_jobs(cfg, test::options(100, 4), {j}, text);
  EXPECT_EQ(ig.outcomes[0].finish, FinishReason::Length);
  EXPECT_EQ(ig.outcomes[0].tokens.size(), 20u);

  j.params.ignore_eos = false;
  j.params.stop_token_ids = {o.tokens[2]};
  RunResult st = test::run_jobs(cfg, test::options(100, 4), {j}, text);
  EXPECT_EQ(st.outcomes[0].finish, FinishReason::Stop);
  EXPECT_EQ(st.outcomes[0].tokens.size(), 3u);
  EXPECT_EQ(st.outcomes[0].text.find("w" + std::to_string(o.tokens[2])), std::string::npos);
}

TEST(Engine, StopStringEndsTheTextBeforeIt) {
  FakeConfig cfg;
  test::WordText text;
  Job j{test::make_prompt(11, 9, cfg.vocab), test::greedy(12)};
  j.params.ignore_eos = true;
  RunResult full = test::run_jobs(cfg, test::options(100, 4), {j}, text);
  const Outcome& f = full.outcomes[0];
  ASSERT_EQ(f.tokens.size(), 12u);
  EXPECT_EQ(f.text[0], 'w');  // the leading space of the first piece is dropped
  // A stop string spanning the 5th and 6th tokens' text: the last character
  // of the 5th word, then the 6th word without its last character.
  size_t len5 = 0;
  for (int k = 0; k < 5; ++k) len5 += text.token_bytes(f.tokens[k]).size();
  len5 -= 1;  // the stripped leading space
  const std::string sixth = text.token_bytes(f.tokens[5]);
  const std::string stop = f.text.substr(len5 - 1, sixth.size());
  j.params.stop = {"never", stop};
  RunResult r = test::run_jobs(cfg, test::options(100, 4), {j}, text);
  const Outcome& o = r.outcomes[0];
  check_stream(o, j, "stop string");
  EXPECT_EQ(o.finish, FinishReason::Stop);
  EXPECT_EQ(o.text, f.text.substr(0, f.text.find(stop)));
  if (f.text.find(stop) == len5 - 1) {
    EXPECT_EQ(o.tokens.size(), 6u);
  }
}

TEST(Engine, LogprobsComeFromTheRawModelLogits) {
  FakeConfig cfg;
  test::FakeText text;
  Job j{test::make_prompt(5, 7, cfg.vocab), test::greedy(4)};
  j.params.logprobs = 2;
  j.params.ignore_eos = true;
  test::FakeRunner runner(cfg, 100, 4);
  Engine engine(runner, text, test::options(100, 4));
  std::vector<StreamEvent> events;
  engine.run_to_completion({Request{j.prompt, j.params, [&](const StreamEvent& e) { events.push_back(e); }}});
  ASSERT_EQ(events.size(), 4u);
  std::vector<int32_t> seq = j.prompt;
  for (const auto& e : events) {
    std::vector<float> l(cfg.vocab);
    test::fake_logits(cfg, seq.data(), static_cast<int64_t>(seq.size()), l.data());
    double z = 0;
    float m = *std::max_element(l.begin(), l.end());
    for (float x : l) z += std::exp(static_cast<double>(x - m));
    const double lse = m + std::log(z);
    EXPECT_NEAR(e.logprob, l[e.token] - lse, 1e-4);
    ASSERT_EQ(e.top_logprobs.size(), 2u);
    EXPECT_EQ(e.top_logprobs[0].token, e.token);  // greedy picks the top one
    EXPECT_GE(e.top_logprobs[0].logprob, e.top_logprobs[1].logprob);
    seq.push_back(e.token);
  }
}

// Only plain greedy rows without logprobs are asked for as token-only rows
// (the fake runner then returns NaN logits for them, which would derail any
// sampler that read them); logprobs, a logit bias or sampling get logits.
TEST(Engine, OnlyPlainGreedyRowsSkipTheirLogits) {
  FakeConfig cfg;
  test::FakeText text;
  const auto prompt = test::make_prompt(5, 7, cfg.vocab);
  // A grammar that allows tokens 9 and 11 only, and never ends.
  struct NineOrEleven : TokenConstraint {
    explicit NineOrEleven(int64_t v) : vocab(v) {}
    void allowed(uint64_t* mask) override {
      std::fill(mask, mask + (vocab + 63) / 64, 0);
      mask[0] = (uint64_t(1) << 9) | (uint64_t(1) << 11);
    }
    void advance(int32_t) override {}
    bool is_complete() const override { return false; }
    int64_t vocab;
  };
  auto rows_for = [&](SamplingParams p, bool grammar = false) {
    p.ignore_eos = true;
    test::FakeRunner runner(cfg, 100, 4);
    Engine engine(runner, text, test::options(100, 4));
    std::vector<int32_t> tokens;
    Request r{prompt, p, [&](const StreamEvent& e) { tokens.push_back(e.token); }};
    if (grammar) r.constraint = std::make_shared<NineOrEleven>(cfg.vocab);
    engine.run_to_completion({std::move(r)});
    EXPECT_EQ(tokens.size(), 4u);
    if (grammar) {
      for (int32_t t : tokens) EXPECT_TRUE(t == 9 || t == 11) << t;
    }
    return runner.greedy_rows();
  };
  EXPECT_EQ(rows_for(test::greedy(4)), 4);
  SamplingParams lp = test::greedy(4);
  lp.logprobs = 0;
  EXPECT_EQ(rows_for(lp), 0);
  SamplingParams bias = test::greedy(4);
  bias.logit_bias[3] = 1.0f;
  EXPECT_EQ(rows_for(bias), 0);
  SamplingParams sampled = test::greedy(4);
  sampled.temperature = 0.7f;
  EXPECT_EQ(rows_for(sampled), 0);
  // A grammar masks the logits before the argmax: they must be computed.
  EXPECT_EQ(rows_for(test::greedy(4), true), 0);
}

TEST(Engine, SubmitRefusesBadRequests) {
  FakeConfig cfg;
  cfg.max_context = 64;
  test::FakeRunner runner(cfg, 10, 4);  // 40 token slots
  test::FakeText text;
  EngineOptions o = test::options(10, 4);
  o.max_queue = 3;
  Engine engine(runner, text, o);
  auto req = [&](int32_t len, int32_t max_tokens) {
    return Request{test::make_prompt(len, len, cfg.vocab), test::greedy(max_tokens), {}};
  };
  EXPECT_EQ(engine.submit(Request{{}, test::greedy(4), {}}).status, SubmitStatus::Invalid);
  EXPECT_EQ(engine.submit(Request{{1, 999}, test::greedy(4), {}}).status, SubmitStatus::Invalid);
  EXPECT_EQ(engine.submit(Request{{1, -1}, test::greedy(4), {}}).status, SubmitStatus::Invalid);
  EXPECT_EQ(engine.submit(req(5, 0)).status, SubmitStatus::Invalid);
  Request bad_p = req(5, 4);
  bad_p.sampling.top_p = 0.0f;
  EXPECT_EQ(engine.submit(bad_p).status, SubmitStatus::Invalid);
  Request bad_bias = req(5, 4);
  bad_bias.sampling.logit_bias[100000] = 1.0f;
  EXPECT_EQ(engine.submit(bad_bias).status, SubmitStatus::Invalid);

  SubmitResult too_long = engine.submit(req(30, 40));  // 70 > 64
  EXPECT_EQ(too_long.status, SubmitStatus::TooLong);
  EXPECT_NE(too_long.message.find("64"), std::string::npos) << too_long.message;
  SubmitResult pool = engine.submit(req(41, 4));  // 41 > 40 slots
  EXPECT_EQ(pool.status, SubmitStatus::TooLong);
  EXPECT_NE(pool.message.find("KV cache"), std::string::npos) << pool.message;
  EXPECT_EQ(engine.submit(req(40, 4)).status, SubmitStatus::Ok);

  // Not started: requests wait; the queue limit is 3.
  EXPECT_EQ(engine.submit(req(5, 4)).status, SubmitStatus::Ok);
  EXPECT_EQ(engine.submit(req(6, 4)).status, SubmitStatus::Ok);
  SubmitResult full = engine.submit(req(7, 4));
  EXPECT_EQ(full.status, SubmitStatus::QueueFull);
  EXPECT_EQ(engine.stats().waiting, 3);
  engine.stop();
  EXPECT_EQ(engine.submit(req(5, 4)).status, SubmitStatus::ShuttingDown);
}

TEST(Engine, RunToCompletionReportsRefusedRequestsThroughTheirCallback) {
  FakeConfig cfg;
  test::FakeRunner runner(cfg, 10, 4);
  test::FakeText text;
  Engine engine(runner, text, test::options(10, 4));
  test::Collector col(2);
  engine.run_to_completion({Request{{}, test::greedy(3), col.callback(0)},
                            Request{test::make_prompt(1, 4, cfg.vocab), test::greedy(3), col.callback(1)}});
  const auto o = col.outcomes();
  EXPECT_EQ(o[0].finish, FinishReason::Error);
  EXPECT_FALSE(o[0].error.empty());
  EXPECT_EQ(o[1].finals, 1);
  EXPECT_EQ(o[1].tokens.size(), 3u);
}

TEST(Engine, RunnerFailureFailsThatStepOnly) {
  FakeConfig cfg;
  test::FakeRunner runner(cfg, 100, 4);
  runner.throw_on_step(2);
  test::FakeText text;
  Engine engine(runner, text, test::options(100, 4));
  test::Collector col(2);
  engine.run_to_completion({Request{test::make_prompt(1, 4, cfg.vocab), test::greedy(5), col.callback(0)}});
  engine.run_to_completion({Request{test::make_prompt(2, 4, cfg.vocab), test::greedy(5), col.callback(1)}});
  const auto o = col.outcomes();
  EXPECT_EQ(o[0].finish, FinishReason::Error);
  EXPECT_NE(o[0].error.find("injected failure"), std::string::npos);
  EXPECT_EQ(o[1].finals, 1);
  EXPECT_NE(o[1].finish, FinishReason::Error);
  EXPECT_EQ(engine.stats().kv_blocks_used, 0);
}

TEST(Engine, StatsCountTokensStepsAndExperts) {
  FakeConfig cfg;
  test::FakeText text;
  std::vector<Job> jobs;
  for (int i = 0; i < 4; ++i) {
    Job j{test::make_prompt(i, 5 + i, cfg.vocab), test::greedy(6)};
    j.params.ignore_eos = true;
    jobs.push_back(j);
  }
  RunResult r = test::run_jobs(cfg, test::options(100, 4, 64, 512, false), jobs, text);
  check_run(r, jobs, "stats");
  EXPECT_EQ(r.stats.prompt_tokens, 5 + 6 + 7 + 8);
  EXPECT_EQ(r.stats.generation_tokens, 24);
  EXPECT_EQ(r.stats.kv_blocks_total, 100);
  EXPECT_GT(r.stats.steps, 5);
  ASSERT_EQ(r.stats.expert_tokens.size(), 8u);
  int64_t routed = 0;
  for (int64_t e : r.stats.expert_tokens) routed += e;
  // Every computed token is routed once per layer: prompts + all generated but the last.
  EXPECT_EQ(routed, 2 * (26 + 4 * 5));
}

TEST(Engine, CancelFromAnotherThreadEndsTheStreamAndFreesBlocks) {
  FakeConfig cfg;
  test::FakeRunner runner(cfg, 200, 4);
  test::FakeText text;
  Engine engine(runner, text, test::options(200, 4));
  engine.start();
  test::Collector col(2);
  SamplingParams p = test::greedy(3000);
  p.ignore_eos = true;
  std::atomic<int> seen{0};
  std::atomic<bool> cancel_sent{false};
  auto cb = col.callback(0);
  // The 5th event holds the engine thread until the cancel is in, so the
  // request cannot finish on its own first.
  const SubmitResult a = engine.submit(Request{test::make_prompt(1, 30, cfg.vocab), p, [&](const StreamEvent& e) {
                                                 cb(e);
                                                 if (++seen == 5)
                                                   while (!cancel_sent) std::this_thread::yield();
                                               }});
  ASSERT_EQ(a.status, SubmitStatus::Ok);
  while (seen.load() < 5) std::this_thread::sleep_for(std::chrono::milliseconds(1));
  engine.cancel(a.id);
  cancel_sent = true;
  col.wait_done(1);
  const Outcome o = col.outcomes()[0];
  EXPECT_EQ(o.finish, FinishReason::Cancelled);
  EXPECT_EQ(o.finals, 1);
  EXPECT_EQ(o.last.token, -1);
  EXPECT_EQ(o.token_events, o.last.completion_tokens);
  EXPECT_GE(o.token_events, 5);
  EXPECT_LE(o.token_events, 6);
  // The engine goes on serving.
  const SubmitResult b = engine.submit(Request{test::make_prompt(2, 5, cfg.vocab), test::greedy(4), col.callback(1)});
  ASSERT_EQ(b.status, SubmitStatus::Ok);
  col.wait_done(2);
  engine.cancel(a.id);  // finished / unknown ids are fine
  engine.cancel(12345);
  engine.stop();
  EXPECT_EQ(engine.stats().kv_blocks_used, 0);
  EXPECT_TRUE(runner.errors().empty());
}

TEST(Engine, StopCancelsEverythingStillRunningOrWaiting) {
  FakeConfig cfg;
  test::FakeRunner runner(cfg, 1100, 4);
  test::FakeText text;
  Engine engine(runner, text, test::options(1100, 4, 2));
  const int n = 10;
  test::Collector col(n);
  SamplingParams p = test::greedy(4000);
  p.ignore_eos = true;
  for (int i = 0; i < n; ++i)
    ASSERT_EQ(engine.submit(Request{test::make_prompt(i, 8, cfg.vocab), p, col.callback(i)}).status, SubmitStatus::Ok);
  engine.start();
  while (engine.stats().steps < 3) std::this_thread::sleep_for(std::chrono::milliseconds(1));
  engine.stop();
  EXPECT_EQ(col.done(), static_cast<size_t>(n));
  int cancelled = 0;
  for (const auto& o : col.outcomes()) {
    EXPECT_EQ(o.finals, 1);
    EXPECT_TRUE(o.finish == FinishReason::Cancelled || o.finish == FinishReason::Length);
    cancelled += o.finish == FinishReason::Cancelled;
  }
  // Each request needs 4000 steps and at most two run at once: the last ones
  // are still waiting when stop() comes (however slow this thread is).
  EXPECT_GE(cancelled, 1);
  EXPECT_EQ(engine.stats().kv_blocks_used, 0);
  EXPECT_EQ(engine.stats().running + engine.stats().waiting, 0);
}

TEST(Engine, ThreadedSubmitAndCancelStress) {
  FakeConfig cfg;
  cfg.eos_bias = -1.0f;
  test::FakeRunner runner(cfg, 120, 4);  // small: preemption happens
  test::FakeText text;
  EngineOptions o = test::options(120, 4, 12, 24);
  o.max_queue = 100000;
  Engine engine(runner, text, o);
  engine.start();
  const int threads = 4, per_thread = 40;
  test::Collector col(threads * per_thread);
  std::vector<std::thread> ts;
  std::atomic<int> refused{0};
  for (int t = 0; t < threads; ++t) {
    ts.emplace_back([&, t] {
      std::mt19937 rng(t);
      std::vector<uint64_t> mine;
      for (int i = 0; i < per_thread; ++i) {
        const size_t slot = static_cast<size_t>(t * per_thread + i);
        SamplingParams p = test::greedy(1 + rng() % 30);
        if (rng() % 2) {
          p.temperature = 1.0f;
          p.min_p = 0.05f;
        }
        if (rng() % 5 == 0) p.stop = {"w3"};
        const SubmitResult r =
            engine.submit(Request{test::make_prompt(slot, 1 + rng() % 40, cfg.vocab), p, col.callback(slot)});
        if (r.status != SubmitStatus::Ok) {
          ++refused;
          continue;
        }
        mine.push_back(r.id);
        if (rng() % 3 == 0) engine.cancel(rng() % 2 ? mine.back() : mine[rng() % mine.size()]);
        if (rng() % 4 == 0) std::this_thread::sleep_for(std::chrono::microseconds(rng() % 500));
        (void)engine.stats();
      }
    });
  }
  for (auto& th : ts) th.join();
  EXPECT_EQ(refused.load(), 0);
  col.wait_done(threads * per_thread);
  const auto outs = col.outcomes();
  int cancelled = 0;
  for (const auto& out : outs) {
    EXPECT_EQ(out.finals, 1);
    EXPECT_EQ(out.events_after_final, 0);
    EXPECT_EQ(out.token_events, out.last.completion_tokens);
    EXPECT_NE(out.finish, FinishReason::Error) << out.error;
    cancelled += out.finish == FinishReason::Cancelled;
  }
  EXPECT_GT(cancelled, 0);
  // Let the engine settle, then everything must be back in the pool.
  for (int i = 0; i < 1000 && (engine.stats().running + engine.stats().waiting) > 0; ++i)
    std::this_thread::sleep_for(std::chrono::milliseconds(1));
  const EngineStats st = engine.stats();
  EXPECT_EQ(st.running, 0);
  EXPECT_EQ(st.waiting, 0);
  EXPECT_EQ(st.kv_blocks_used, 0);
  engine.stop();
  EXPECT_TRUE(runner.errors().empty()) << runner.errors()[0];
}

TEST(Engine, FinishReasonNames) {
  EXPECT_STREQ(finish_reason_name(FinishReason::Stop), "stop");
  EXPECT_STREQ(finish_reason_name(FinishReason::Length), "length");
  EXPECT_STREQ(finish_reason_name(FinishReason::Cancelled), "cancelled");
  EXPECT_STREQ(finish_reason_name(FinishReason::Error), "error");
}

}  // namespace
}  // namespace ms
