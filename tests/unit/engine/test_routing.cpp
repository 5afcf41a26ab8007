// Per-request expert routing (Request::record_routing): counts per layer and
// expert for the prompt and the completion, each token counted exactly once
// whatever the batching, chunking, prefix caching or preemption.
#include <gtest/gtest.h>

#include "unit/engine/harness.h"

namespace ms {
namespace {

using test::Collector;
using test::FakeConfig;
using test::FakeRunner;

struct Routed {
  std::vector<int32_t> tokens;  // generated
  std::shared_ptr<const ExpertLoad> load;
};

// Runs the prompts (each with record_routing as given) through one engine.
std::vector<Routed> run(const FakeConfig& cfg, const EngineOptions& opts, const std::vector<std::vector<int32_t>>& prompts,
                        int32_t max_tokens, const std::vector<bool>& record, int64_t* preemptions = nullptr) {
  FakeRunner runner(cfg, opts.num_blocks, opts.block_size);
  test::FakeText text;
  Engine engine(runner, text, opts);
  std::vector<Routed> out(prompts.size());
  std::vector<Request> reqs;
  for (size_t i = 0; i < prompts.size(); ++i) {
    Request r{prompts[i], test::greedy(max_tokens), [&out, i](const StreamEvent& ev) {
                if (ev.token >= 0) out[i].tokens.push_back(ev.token);
                if (ev.finish != FinishReason::None) out[i].load = ev.expert_load;
              }};
    r.sampling.ignore_eos = true;
    r.record_routing = record[i];
    reqs.push_back(std::move(r));
  }
  engine.run_to_completion(std::move(reqs));
  EXPECT_TRUE(runner.errors().empty());
  if (preemptions) *preemptions = engine.stats().preemptions;
  return out;
}

// The counts the fake model's routing gives: token t -> expert (t + l) % E in layer l.
std::vector<int64_t> expected_counts(const FakeConfig& cfg, const std::vector<int32_t>& toks) {
  std::vector<int64_t> c(static_cast<size_t>(cfg.num_layers) * cfg.num_experts, 0);
  for (int32_t t : toks)
    for (int32_t l = 0; l < cfg.num_layers; ++l) c[static_cast<size_t>(l) * cfg.num_experts + (t + l) % cfg.num_experts]++;
  return c;
}

void check(const FakeConfig& cfg, const std::vector<int32_t>& prompt, const Routed& r, const std::string& what) {
  SCOPED_TRACE(what);
  ASSERT_TRUE(r.load);
  const ExpertLoad& L = *r.load;
  EXPECT_EQ(L.layers, cfg.num_layers);
  EXPECT_EQ(L.experts, cfg.num_experts);
  EXPECT_EQ(L.top_k, 1);
  EXPECT_EQ(L.prompt_tokens, static_cast<int32_t>(prompt.size()));
  ASSERT_FALSE(r.tokens.empty());
  EXPECT_EQ(L.completion_tokens, static_cast<int32_t>(r.tokens.size()) - 1);  // the last is never run
  EXPECT_EQ(L.prompt, expected_counts(cfg, prompt));
  std::vector<int32_t> ran(r.tokens.begin(), r.tokens.end() - 1);
  EXPECT_EQ(L.completion, expected_counts(cfg, ran));
  ASSERT_EQ(L.completion_routes.size(), ran.size() * static_cast<size_t>(cfg.num_layers));
  for (size_t i = 0; i < ran.size(); ++i)
    for (int32_t l = 0; l < cfg.num_layers; ++l)
      EXPECT_EQ(L.completion_routes[i * cfg.num_layers + l], (ran[i] + l) % cfg.num_experts);
}

TEST(Routing, CountsEveryTokenOnceAndOnlyWhenAsked) {
  FakeConfig cfg;
  const auto a = test::make_prompt(11, 37, cfg.vocab);
  const auto b = test::make_prompt(12, 5, cfg.vocab);
  auto r = run(cfg, test::options(400, 4), {a, b, a}, 9, {true, false, true});
  check(cfg, a, r[0], "first");
  EXPECT_FALSE(r[1].load) << "not asked: no routing";
  // The third shares the first's prompt: the prefix cache would skip its
  // blocks, but a recording request computes (and counts) them all.
  check(cfg, a, r[2], "same prompt again");
  EXPECT_EQ(r[0].tokens, r[2].tokens);
}

TEST(Routing, ChunkedPrefillAndPreemptionCountOnce) {
  FakeConfig cfg;
  std::vector<std::vector<int32_t>> prompts;
  for (int i = 0; i < 6; ++i) prompts.push_back(test::make_prompt(100 + i, 20 + 7 * i, cfg.vocab));
  // A small pool and step budget: chunked prefills and preemptions (recomputation).
  int64_t preemptions = 0;
  auto r = run(cfg, test::options(40, 4, 64, 16), prompts, 24, std::vector<bool>(6, true), &preemptions);
  EXPECT_GT(preemptions, 0) << "the test must exercise recomputation";
  for (size_t i = 0; i < prompts.size(); ++i) check(cfg, prompts[i], r[i], "request " + std::to_string(i));
  // The same requests alone, unconstrained: the same routing.
  for (size_t i = 0; i < prompts.size(); ++i) {
    auto alone = run(cfg, test::options(400, 4), {prompts[i]}, 24, {true});
    EXPECT_EQ(alone[0].load->prompt, r[i].load->prompt);
    EXPECT_EQ(alone[0].load->completion, r[i].load->completion);
  }
}

TEST(Routing, CancelledRequestStillReportsWhatRan) {
  FakeConfig cfg;
  FakeRunner runner(cfg, 400, 4);
  test::FakeText text;
  Engine engine(runner, text, test::options(400, 4));
  engine.start();
  std::mutex mu;
  std::condition_variable cv;
  std::shared_ptr<const ExpertLoad> load;
  int tokens = 0;
  bool done = false;
  Request r{test::make_prompt(5, 12, cfg.vocab), test::greedy(1000), [&](const StreamEvent& ev) {
              std::lock_guard<std::mutex> lk(mu);
              if (ev.token >= 0) ++tokens;
              if (ev.finish != FinishReason::None) {
                load = ev.expert_load;
                done = true;
                cv.notify_all();
              }
            }};
  r.sampling.ignore_eos = true;
  r.record_routing = true;
  auto res = engine.submit(std::move(r));
  ASSERT_EQ(res.status, SubmitStatus::Ok);
  engine.cancel(res.id);
  std::unique_lock<std::mutex> lk(mu);
  ASSERT_TRUE(cv.wait_for(lk, std::chrono::seconds(30), [&] { return done; }));
  ASSERT_TRUE(load);
  // Whatever ran before the cancel is reported, and adds up.
  int64_t sum = 0;
  for (int64_t c : load->prompt) sum += c;
  EXPECT_EQ(sum, int64_t(load->prompt_tokens) * cfg.num_layers);
  EXPECT_LE(load->completion_tokens, std::max(0, tokens - 0));
}

}  // namespace
}  // namespace ms
