#include <gtest/gtest.h>

#include <cmath>
#include <limits>
#include <map>
#include <random>

#include "engine/sampler.h"

namespace ms {
namespace {

std::vector<float> log_probs(const std::vector<double>& p) {
  std::vector<float> l;
  for (double x : p) l.push_back(static_cast<float>(std::log(x)));
  return l;
}

std::map<int32_t, int> histogram(SamplingParams p, const std::vector<float>& logits, int n) {
  p.has_seed = true;
  p.seed = 1234;
  Sampler s(p, {}, static_cast<int64_t>(logits.size()));
  std::map<int32_t, int> h;
  for (int i = 0; i < n; ++i) ++h[s.sample(logits.data()).token];
  return h;
}

SamplingParams sampled() {
  SamplingParams p;
  p.temperature = 1.0f;
  return p;
}

// Without a seed each request gets its own (one random_device draw per
// process, then splitmix64 over a counter): two samplers over a flat
// distribution of 1000 tokens draw different sequences.
TEST(Sampler, UnseededRequestsDrawIndependently) {
  const std::vector<float> flat(1000, 0.0f);
  std::vector<std::vector<int32_t>> seqs;
  for (int k = 0; k < 3; ++k) {
    Sampler s(sampled(), {}, 1000);
    std::vector<int32_t> v;
    for (int i = 0; i < 16; ++i) v.push_back(s.sample(flat.data()).token);
    seqs.push_back(v);
  }
  EXPECT_NE(seqs[0], seqs[1]);
  EXPECT_NE(seqs[1], seqs[2]);
  EXPECT_NE(seqs[0], seqs[2]);
}

TEST(Sampler, GreedyTakesArgmaxAndLowestIdOnTies) {
  SamplingParams p;
  p.temperature = 0.0f;
  Sampler s(p, {}, 5);
  const std::vector<float> a = {0.1f, 2.0f, -1.0f, 2.0f, 1.0f};
  EXPECT_EQ(s.sample(a.data()).token, 1);
  const std::vector<float> b = {-3.0f, -3.0f, -3.0f, -3.0f, -3.0f};
  EXPECT_EQ(s.sample(b.data()).token, 0);
  EXPECT_TRUE(s.greedy());
}

// The plain greedy path (no copy of the row) against the general one (an
// all-ones mask forces it) on a vocabulary of several blocks: NaN, -inf,
// +inf, ties within and across blocks.
TEST(Sampler, PlainGreedyMatchesTheGeneralPathOnALargeVocabulary) {
  const float nan = std::nanf("");
  const float inf = std::numeric_limits<float>::infinity();
  const int64_t v = 32000;
  SamplingParams p;
  p.temperature = 0.0f;
  const std::vector<uint64_t> all((v + 63) / 64, ~uint64_t{0});
  std::mt19937 rng(5);
  std::normal_distribution<float> d;
  for (int c = 0; c < 7; ++c) {
    std::vector<float> l(v);
    for (float& x : l) x = d(rng);
    if (c == 1) l[3] = l[31999] = 9.0f;                    // tie across blocks: the lower id
    if (c == 2) l[700] = l[701] = 9.0f, l[0] = nan;        // tie within a block
    if (c == 3) for (float& x : l) x = nan;                // nothing finite: 0
    if (c == 4) for (float& x : l) x = -inf;
    if (c == 5) l[20000] = inf, l[5] = nan;
    if (c == 6) for (int64_t i = 0; i < v; ++i) l[i] = i % 3 ? nan : -inf;
    Sampler plain(p, {}, v), general(p, {}, v);
    EXPECT_EQ(plain.sample(l.data()).token, general.sample(l.data(), all.data()).token) << "case " << c;
  }
}

// The greedy token computed with the logits (ForwardOutput::argmax) is taken
// by a plain greedy sample, and ignored when a bias, a penalty or a mask
// decides the token.
TEST(Sampler, PlainGreedyTakesTheTokenComputedWithTheLogits) {
  SamplingParams p;
  p.temperature = 0.0f;
  const std::vector<float> l = {0.1f, 2.0f, -1.0f, 1.5f, 1.0f};
  Sampler plain(p, {}, 5);
  EXPECT_TRUE(plain.plain_greedy());
  EXPECT_EQ(plain.sample(l.data(), nullptr, 1).token, 1);
  EXPECT_EQ(plain.sample(l.data(), nullptr, 3).token, 3) << "taken as given: the backend computed it";
  EXPECT_EQ(plain.sample(l.data(), nullptr, 99).token, 1) << "out of range: computed here";
  EXPECT_EQ(plain.sample(l.data(), nullptr, -1).token, 1);
  const std::vector<uint64_t> only4 = {uint64_t{1} << 4};
  EXPECT_EQ(plain.sample(l.data(), only4.data(), 1).token, 4) << "a mask decides";
  SamplingParams b = p;
  b.logit_bias = {{2, 10.0f}};
  Sampler biased(b, {}, 5);
  EXPECT_FALSE(biased.plain_greedy());
  EXPECT_EQ(biased.sample(l.data(), nullptr, 1).token, 2) << "a bias decides";
  SamplingParams r = p;
  r.repetition_penalty = 1.3f;
  EXPECT_FALSE(Sampler(r, {1}, 5).plain_greedy());
  EXPECT_FALSE(Sampler(sampled(), {}, 5).plain_greedy());
}

TEST(Sampler, TopK1EqualsGreedy) {
  std::mt19937 rng(3);
  std::normal_distribution<float> nd(0.0f, 3.0f);
  SamplingParams g;
  g.temperature = 0.0f;
  SamplingParams k1 = sampled();
  k1.top_k = 1;
  k1.temperature = 1.7f;
  Sampler sg(g, {}, 100), sk(k1, {}, 100);
  for (int row = 0; row < 200; ++row) {
    std::vector<float> l(100);
    for (auto& x : l) x = nd(rng);
    EXPECT_EQ(sg.sample(l.data()).token, sk.sample(l.data()).token);
  }
}

TEST(Sampler, SameSeedSameTokensDifferentSeedDiffers) {
  std::vector<float> l(50);
  for (int i = 0; i < 50; ++i) l[i] = std::sin(i * 0.7f);
  SamplingParams p = sampled();
  p.has_seed = true;
  p.seed = 42;
  Sampler a(p, {}, 50), b(p, {}, 50);
  p.seed = 43;
  Sampler c(p, {}, 50);
  int differ = 0;
  for (int i = 0; i < 100; ++i) {
    const int32_t ta = a.sample(l.data()).token;
    EXPECT_EQ(ta, b.sample(l.data()).token);
    differ += ta != c.sample(l.data()).token;
  }
  EXPECT_GT(differ, 10);
}

TEST(Sampler, FrequenciesFollowTheDistribution) {
  const auto l = log_probs({0.5, 0.3, 0.15, 0.05});
  const int n = 20000;
  const auto h = histogram(sampled(), l, n);
  // Binomial standard deviation is at most sqrt(0.25 / n) = 0.0035; allow ~6 sigma.
  EXPECT_NEAR(h.at(0) / double(n), 0.5, 0.02);
  EXPECT_NEAR(h.at(1) / double(n), 0.3, 0.02);
  EXPECT_NEAR(h.at(2) / double(n), 0.15, 0.02);
  EXPECT_NEAR(h.at(3) / double(n), 0.05, 0.02);
}

TEST(Sampler, TemperatureSharpens) {
  const auto l = log_probs({0.5, 0.3, 0.15, 0.05});
  SamplingParams p = sampled();
  p.temperature = 0.5f;  // p_i^2 renormalised: 0.25 / 0.365
  const int n = 20000;
  const auto h = histogram(p, l, n);
  EXPECT_NEAR(h.at(0) / double(n), 0.25 / 0.365, 0.02);
}

TEST(Sampler, TopKMasks) {
  const auto l = log_probs({0.5, 0.3, 0.15, 0.05});
  SamplingParams p = sampled();
  p.top_k = 2;
  const auto h = histogram(p, l, 5000);
  EXPECT_EQ(h.count(2) + h.count(3), 0u);
  EXPECT_NEAR(h.at(0) / 5000.0, 0.5 / 0.8, 0.03);
}

TEST(Sampler, TopPMasks) {
  const auto l = log_probs({0.5, 0.3, 0.15, 0.05});
  SamplingParams p = sampled();
  p.top_p = 0.75f;  // 0.5 < 0.75 <= 0.8: tokens 0 and 1
  auto h = histogram(p, l, 5000);
  EXPECT_EQ(h.count(2) + h.count(3), 0u);
  EXPECT_GT(h[1], 1000);
  p.top_p = 0.9f;  // 0.8 < 0.9 <= 0.95: tokens 0, 1, 2
  h = histogram(p, l, 5000);
  EXPECT_EQ(h.count(3), 0u);
  EXPECT_GT(h[2], 300);
  p.top_p = 0.3f;  // the top token alone
  h = histogram(p, l, 1000);
  EXPECT_EQ(h.size(), 1u);
  EXPECT_EQ(h.begin()->first, 0);
}

TEST(Sampler, MinPMasksRelativeToTheTop) {
  const auto l = log_probs({0.5, 0.3, 0.15, 0.05});
  SamplingParams p = sampled();
  p.min_p = 0.25f;  // cut at 0.125: token 3 (0.05) goes, token 2 (0.15) stays
  auto h = histogram(p, l, 5000);
  EXPECT_EQ(h.count(3), 0u);
  EXPECT_GT(h[2], 400);
  p.min_p = 0.7f;  // cut at 0.35: only token 0
  h = histogram(p, l, 1000);
  EXPECT_EQ(h.size(), 1u);
}

TEST(Sampler, RepetitionPenaltyHfRule) {
  SamplingParams p;
  p.temperature = 0.0f;
  p.repetition_penalty = 2.0f;
  Sampler s(p, {0, 1, 1}, 5);
  const std::vector<float> l = {2.0f, -2.0f, 1.0f, 0.5f, 3.0f};
  EXPECT_EQ(s.sample(l.data()).token, 4);
  EXPECT_EQ(s.last_processed(), (std::vector<float>{1.0f, -4.0f, 1.0f, 0.5f, 3.0f}));
  EXPECT_EQ(s.sample(l.data()).token, 4);  // now also an output token: 3 / 2 = 1.5
  EXPECT_EQ(s.last_processed(), (std::vector<float>{1.0f, -4.0f, 1.0f, 0.5f, 1.5f}));
}

TEST(Sampler, PresenceAndFrequencyPenaltiesOpenAiRule) {
  SamplingParams p;
  p.temperature = 0.0f;
  p.presence_penalty = 0.5f;
  p.frequency_penalty = 0.25f;
  Sampler s(p, {3, 3, 3}, 4);  // prompt tokens are not penalised by these
  const std::vector<float> l = {0.0f, 0.0f, 0.0f, 5.0f};
  EXPECT_EQ(s.sample(l.data()).token, 3);
  EXPECT_EQ(s.last_processed(), l);
  EXPECT_EQ(s.sample(l.data()).token, 3);
  EXPECT_FLOAT_EQ(s.last_processed()[3], 5.0f - 0.25f - 0.5f);
  EXPECT_EQ(s.sample(l.data()).token, 3);
  EXPECT_FLOAT_EQ(s.last_processed()[3], 5.0f - 0.5f - 0.5f);
  EXPECT_FLOAT_EQ(s.last_processed()[0], 0.0f);
}

TEST(Sampler, LogitBiasForcesOrBansATokenGreedyAndSampled) {
  const std::vector<float> l = {1.0f, 3.0f, 2.0f, 0.0f, -1.0f, 0.5f, 0.2f, 0.1f};
  SamplingParams p = sampled();
  p.logit_bias[7] = 100.0f;
  auto h = histogram(p, l, 500);
  EXPECT_EQ(h.size(), 1u);
  EXPECT_EQ(h.begin()->first, 7);
  SamplingParams g;
  g.temperature = 0.0f;
  g.logit_bias[1] = -100.0f;
  Sampler s(g, {}, 8);
  EXPECT_EQ(s.sample(l.data()).token, 2);
}

TEST(Sampler, LogprobsAreRawLogSoftmax) {
  const std::vector<float> l = {1.0f, 3.0f, 2.0f, 0.0f, 3.0f};
  SamplingParams p;
  p.temperature = 0.0f;
  p.logprobs = 3;
  p.logit_bias[0] = 50.0f;  // changes the choice, not the reported logprobs
  Sampler s(p, {}, 5);
  const SampleResult r = s.sample(l.data());
  double z = 0;
  for (float x : l) z += std::exp(x);
  const double lse = std::log(z);
  EXPECT_EQ(r.token, 0);
  EXPECT_NEAR(r.logprob, 1.0 - lse, 1e-5);
  ASSERT_EQ(r.top.size(), 3u);
  EXPECT_EQ(r.top[0].token, 1);  // tie 3.0 with id 4: lowest id first
  EXPECT_EQ(r.top[1].token, 4);
  EXPECT_EQ(r.top[2].token, 2);
  EXPECT_NEAR(r.top[0].logprob, 3.0 - lse, 1e-5);
  EXPECT_NEAR(r.top[2].logprob, 2.0 - lse, 1e-5);
  double total = 0;
  for (float x : l) total += std::exp(x - lse);
  EXPECT_NEAR(total, 1.0, 1e-6);
}

TEST(Sampler, NoLogprobsUnlessAsked) {
  const std::vector<float> l = {1.0f, 3.0f};
  SamplingParams p;
  p.temperature = 0.0f;
  Sampler s(p, {}, 2);
  const SampleResult r = s.sample(l.data());
  EXPECT_TRUE(r.top.empty());
  p.logprobs = 0;
  Sampler s0(p, {}, 2);
  const SampleResult r0 = s0.sample(l.data());
  EXPECT_TRUE(r0.top.empty());
  EXPECT_LT(r0.logprob, 0.0f);
}

TEST(Sampler, NanAndInfLogitsDoNotCrash) {
  const float nan = std::nanf("");
  const float inf = std::numeric_limits<float>::infinity();
  std::vector<float> l = {nan, 1.0f, -inf, 0.5f};
  SamplingParams p = sampled();
  p.logprobs = 2;
  Sampler s(p, {}, 4);
  for (int i = 0; i < 100; ++i) {
    const int32_t t = s.sample(l.data()).token;
    EXPECT_TRUE(t == 1 || t == 3);
  }
  std::vector<float> all_bad = {nan, -inf, nan, -inf};
  const int32_t t = s.sample(all_bad.data()).token;
  EXPECT_GE(t, 0);
  EXPECT_LT(t, 4);
}


TEST(Sampler, TopPOnALargeFlatVocabularyKeepsExactlyTheNucleus) {
  // A slowly decaying distribution: the nucleus spans hundreds of tokens, so
  // the head is sorted in several rounds.
  const int V = 3000;
  std::vector<float> l(V);
  for (int i = 0; i < V; ++i) l[(i * 7) % V] = -0.002f * i;  // token (i*7)%V has rank i
  std::vector<double> p(V);
  double z = 0;
  for (int i = 0; i < V; ++i) z += std::exp(-0.002 * i);
  double cum = 0;
  int nucleus = 0;
  for (int i = 0; i < V; ++i) {
    cum += std::exp(-0.002 * i) / z;
    if (cum >= 0.6) {
      nucleus = i + 1;
      break;
    }
  }
  ASSERT_GT(nucleus, 200);
  SamplingParams sp = sampled();
  sp.top_p = 0.6f;
  const auto h = histogram(sp, l, 20000);
  int max_rank = 0;
  for (const auto& [tok, c] : h) {
    int rank = 0;
    while ((rank * 7) % V != tok) ++rank;
    max_rank = std::max(max_rank, rank);
  }
  EXPECT_LT(max_rank, nucleus);
  EXPECT_GE(max_rank, nucleus - 30);  // the tail of the nucleus is reached
}

}  // namespace
}  // namespace ms
