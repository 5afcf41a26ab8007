// TokenConstraint in the engine: masked sampling, EOS only when complete,
// and unconstrained neighbours in a batch unaffected (batch of 1 == batch of N).
#include <gtest/gtest.h>

#include "unit/engine/fake_model.h"
#include "unit/engine/harness.h"

namespace ms {
namespace {

// Step i allows only tokens t >= 3 with t % 5 == i % 5; after `len` tokens
// the output is complete and only EOS is allowed.
class StepConstraint : public TokenConstraint {
 public:
  StepConstraint(int64_t vocab, int32_t eos, int32_t len) : vocab_(vocab), eos_(eos), len_(len) {}
  void allowed(uint64_t* mask) override {
    ++mask_calls;
    for (int64_t w = 0; w < (vocab_ + 63) / 64; ++w) mask[w] = 0;
    if (step_ >= len_) {
      mask[eos_ >> 6] |= uint64_t{1} << (eos_ & 63);
      return;
    }
    for (int64_t t = 3; t < vocab_; ++t)
      if (t % 5 == step_ % 5) mask[t >> 6] |= uint64_t{1} << (t & 63);
  }
  void advance(int32_t token) override {
    taken.push_back(token);
    ++step_;
  }
  bool is_complete() const override { return step_ >= len_; }

  std::vector<int32_t> taken;
  int mask_calls = 0;

 private:
  int64_t vocab_;
  int32_t eos_;
  int32_t len_;
  int32_t step_ = 0;
};

SamplingParams sampled(uint64_t seed, int32_t max_tokens) {
  SamplingParams p;
  p.temperature = 1.0f;
  p.top_p = 0.9f;
  p.has_seed = true;
  p.seed = seed;
  p.max_tokens = max_tokens;
  p.logprobs = 2;
  return p;
}

TEST(EngineConstraint, MaskedTokensOnlyAndEosWhenComplete) {
  test::FakeConfig cfg;
  test::FakeText text;
  test::FakeRunner runner(cfg, 200, 4);
  Engine engine(runner, text, test::options(200, 4));
  test::Collector col(1);
  auto c = std::make_shared<StepConstraint>(cfg.vocab, cfg.eos, 7);
  std::vector<Request> reqs;
  reqs.push_back(Request{test::make_prompt(1, 9, cfg.vocab), sampled(3, 50), col.callback(0), c});
  engine.run_to_completion(std::move(reqs));
  const auto out = col.outcomes()[0];
  ASSERT_EQ(out.finish, FinishReason::Stop);
  ASSERT_EQ(out.tokens.size(), 8u);  // 7 constrained tokens, then EOS
  for (int i = 0; i < 7; ++i) EXPECT_EQ(out.tokens[i] % 5, i % 5) << i;
  EXPECT_EQ(out.tokens[7], cfg.eos);
  EXPECT_EQ(c->taken, out.tokens);
  EXPECT_EQ(c->mask_calls, 8);
}

TEST(EngineConstraint, UnconstrainedNeighboursAreUnaffected) {
  test::FakeConfig cfg;
  test::FakeText text;
  const int kN = 6;
  auto run = [&](const std::vector<int>& which) {
    test::FakeRunner runner(cfg, 400, 4);
    Engine engine(runner, text, test::options(400, 4));
    test::Collector col(which.size());
    std::vector<Request> reqs;
    for (size_t k = 0; k < which.size(); ++k) {
      const int i = which[k];
      std::shared_ptr<TokenConstraint> c;
      if (i % 2 == 1) c = std::make_shared<StepConstraint>(cfg.vocab, cfg.eos, 5 + i);
      reqs.push_back(Request{test::make_prompt(10 + i, 5 + i, cfg.vocab), sampled(100 + i, 20), col.callback(k), c});
    }
    engine.run_to_completion(std::move(reqs));
    return col.outcomes();
  };
  std::vector<int> all;
  for (int i = 0; i < kN; ++i) all.push_back(i);
  const auto batch = run(all);
  for (int i = 0; i < kN; ++i) {
    const auto alone = run({i});
    EXPECT_EQ(batch[i].tokens, alone[0].tokens) << "request " << i;
    EXPECT_EQ(batch[i].logprobs, alone[0].logprobs) << "request " << i;
    if (i % 2 == 1) {
      EXPECT_EQ(batch[i].finish, FinishReason::Stop);
    }
  }
}

}  // namespace
}  // namespace ms
