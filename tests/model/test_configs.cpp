// Configurations the fixtures do not cover (GQA ratios, MQA, explicit
// head_dim, sliding windows, expert counts and top-k, dense models, F16/F32
// files, tied embeddings): the real forward pass against a naive
// double-precision one, decode == prefill, and batch invariance.
#include <gtest/gtest.h>
#include <unistd.h>

#include <cstring>
#include <numeric>

#include "core/argmax.h"
#include "model_util.h"
#include "synth_hf.h"

namespace ms::test {
namespace {

struct Named;
void PrintTo(const Named& n, std::ostream* os);
struct Named {
  const char* name;
  SynthSpec spec;
};

void PrintTo(const Named& n, std::ostream* os) { *os << n.name; }

std::vector<Named> specs() {
  std::vector<Named> v;
  SynthSpec base;
  v.push_back({"Gqa2Bf16", base});
  SynthSpec s = base;
  s.kv_heads = 1;
  v.push_back({"MqaF32", s});
  v.back().spec.dtype = "F32";
  s = base;
  s.heads = 8, s.kv_heads = 2, s.head_dim = 16, s.explicit_head_dim = true;  // head_dim != hidden/heads
  v.push_back({"ExplicitHeadDimF16", s});
  v.back().spec.dtype = "F16";
  s = base;
  s.sliding_window = 5;
  v.push_back({"SlidingWindow5", s});
  s = base;
  s.experts = 16, s.top_k = 4, s.layers = 3;
  v.push_back({"Experts16Top4", s});
  s = base;
  s.experts = 3, s.top_k = 1, s.heads = 6, s.kv_heads = 3, s.head_dim = 8;
  v.push_back({"Experts3Top1", s});
  s = base;
  s.arch = "MistralForCausalLM";
  s.sliding_window = 7;
  v.push_back({"DenseMistral", s});
  s = base;
  s.arch = "LlamaForCausalLM";
  s.tie = true;
  v.push_back({"DenseLlamaTied", s});
  s = base;
  s.tie = true;
  s.rope_theta = 1e6;
  v.push_back({"TiedTheta1e6", s});
  return v;
}

class ConfigTest : public ::testing::TestWithParam<Named> {
 protected:
  void SetUp() override {
    dir_ = ::testing::TempDir() + "/msynth_" + GetParam().name + "_" + std::to_string(getpid());
    weights_ = write_synth(GetParam().spec, dir_);
  }
  void TearDown() override { std::filesystem::remove_all(dir_); }
  std::string dir_;
  SynthWeights weights_;
};

std::vector<int32_t> prompt(int64_t n, int64_t vocab, uint32_t seed) {
  std::mt19937 rng(seed);
  std::vector<int32_t> ids{1};
  while (int64_t(ids.size()) < n) ids.push_back(int32_t(3 + rng() % uint32_t(vocab - 3)));
  return ids;
}

TEST_P(ConfigTest, MatchesNaiveForward) {
  const SynthSpec& s = GetParam().spec;
  Harness h(dir_, 2, 64, "none", 4);
  const auto ids = prompt(19, s.vocab, 7);
  const auto ours = h.prefill_all(ids);
  const auto ref = naive_forward(s, weights_, ids);
  for (size_t t = 0; t < ids.size(); ++t) {
    double mx = 0, worst = 0;
    for (int64_t i = 0; i < s.vocab; ++i) mx = std::max(mx, std::abs(ref[t * size_t(s.vocab) + size_t(i)]));
    for (int64_t i = 0; i < s.vocab; ++i)
      worst = std::max(worst, std::abs(double(ours[t * size_t(s.vocab) + size_t(i)]) - ref[t * size_t(s.vocab) + size_t(i)]));
    EXPECT_LE(worst, 1e-4 * mx) << "position " << t;
  }
}

TEST_P(ConfigTest, DecodeEqualsPrefill) {
  const SynthSpec& s = GetParam().spec;
  Harness h(dir_, 2, 64, "none", 4);
  const auto ids = prompt(6, s.vocab, 3);
  const auto gen = h.greedy(ids, 14);
  std::vector<int32_t> full = ids;
  full.insert(full.end(), gen.begin(), gen.end() - 1);
  // Re-run the whole sequence at once (other blocks): every generated token must
  // be the argmax of the full prefill's logits at its position.
  Harness h2(dir_, 1, 64, "none", 4);
  const auto all = h2.prefill_all(full, 10);
  for (size_t i = 0; i < gen.size(); ++i) {
    const float* row = all.data() + (ids.size() - 1 + i) * size_t(s.vocab);
    EXPECT_EQ(top_k_ids(row, s.vocab, 1)[0], gen[i]) << "step " << i;
  }
  // And the decode-step logits themselves equal the prefill ones.
  std::vector<int32_t> table(16);
  std::iota(table.begin(), table.end(), 0);
  ForwardOutput out;
  for (size_t p = 0; p < full.size(); ++p) {
    SeqChunk c{&full[p], 1, int32_t(p), table.data(), int32_t(table.size()), LogitsWanted::Last};
    h.model->forward({c}, *h.kv, out);
    const float* pre = all.data() + p * size_t(s.vocab);
    const float tol = 1e-4f * max_abs(pre, s.vocab);
    for (int64_t i = 0; i < s.vocab; ++i) ASSERT_NEAR(out.row(0)[i], pre[i], tol) << "pos " << p << " id " << i;
  }
}

TEST_P(ConfigTest, BatchOfNEqualsBatchOfOne) {
  const SynthSpec& s = GetParam().spec;
  Harness h(dir_, 2, 128, "none", 4);
  const std::vector<std::vector<int32_t>> seqs = {prompt(3, s.vocab, 11), prompt(17, s.vocab, 12), prompt(30, s.vocab, 13)};
  // Alone.
  std::vector<std::vector<float>> alone;
  for (size_t i = 0; i < seqs.size(); ++i) alone.push_back(h.prefill_all(seqs[i], int32_t(i * 10)));
  // Together in one step, in other blocks, the middle one split into two chunks
  // (the second chunk in a later step, mixed with decode-like single tokens).
  std::vector<std::vector<int32_t>> tables(3, std::vector<int32_t>(10));
  for (int k = 0; k < 3; ++k) std::iota(tables[size_t(k)].begin(), tables[size_t(k)].end(), 60 + 10 * k);
  ForwardOutput out;
  std::vector<SeqChunk> step = {
      {seqs[0].data(), 3, 0, tables[0].data(), 10, LogitsWanted::All},
      {seqs[1].data(), 9, 0, tables[1].data(), 10, LogitsWanted::All},
      {seqs[2].data(), 30, 0, tables[2].data(), 10, LogitsWanted::All},
  };
  h.model->forward(step, *h.kv, out);
  auto expect_rows = [&](const ForwardOutput& o, size_t chunk, size_t seq, int32_t p0, int32_t n) {
    for (int32_t p = 0; p < n; ++p) {
      const float* a = o.row(o.first_row[chunk] + p);
      const float* b = alone[seq].data() + size_t(p0 + p) * size_t(s.vocab);
      for (int64_t i = 0; i < s.vocab; ++i) ASSERT_EQ(a[i], b[i]) << "seq " << seq << " pos " << p0 + p;
    }
  };
  expect_rows(out, 0, 0, 0, 3);
  expect_rows(out, 1, 1, 0, 9);
  expect_rows(out, 2, 2, 0, 30);
  std::vector<SeqChunk> step2 = {{seqs[1].data() + 9, 8, 9, tables[1].data(), 10, LogitsWanted::All}};
  h.model->forward(step2, *h.kv, out);
  expect_rows(out, 0, 1, 9, 8);
}

// LogitsWanted::Greedy: 14 sequences in one step, every third chunk's logits
// wanted (Last), one not scored (None), the rest only their greedy token —
// 8 of them, enough for the AVX-512 lm_head to fuse the argmax on the 16-bit
// variants. Each token is greedy_argmax of the row the same chunk gives with
// Last, and the Last rows are unchanged by their greedy neighbours.
TEST_P(ConfigTest, GreedyChunksGiveTheTokensOfTheirLogits) {
  const SynthSpec& s = GetParam().spec;
  Harness h(dir_, 2, 256, "none", 4);
  const int n = 14;
  std::vector<std::vector<int32_t>> seqs, tables;
  for (int i = 0; i < n; ++i) {
    seqs.push_back(prompt(2 + i % 5, s.vocab, 100 + uint32_t(i)));
    tables.emplace_back(4);
    std::iota(tables.back().begin(), tables.back().end(), 4 * i);
  }
  auto step = [&](auto wanted) {
    std::vector<SeqChunk> chunks;
    for (int i = 0; i < n; ++i)
      chunks.push_back({seqs[size_t(i)].data(), int32_t(seqs[size_t(i)].size()), 0, tables[size_t(i)].data(), 4, wanted(i)});
    return chunks;
  };
  ForwardOutput ref, out;
  h.model->forward(step([](int) { return LogitsWanted::Last; }), *h.kv, ref);
  h.model->forward(step([](int i) {
                     return i == 4 ? LogitsWanted::None : i % 3 == 0 ? LogitsWanted::Last : LogitsWanted::Greedy;
                   }),
                   *h.kv, out);
  ASSERT_EQ(out.argmax.size(), size_t(n - 1));
  int greedy = 0;
  for (int i = 0; i < n; ++i) {
    const float* want = ref.row(ref.first_row[size_t(i)]);
    const int32_t r = out.first_row[size_t(i)];
    if (i == 4) {
      EXPECT_EQ(r, -1);
    } else if (i % 3 == 0) {
      ASSERT_GE(r, 0);
      EXPECT_EQ(std::memcmp(out.row(r), want, size_t(s.vocab) * sizeof(float)), 0) << "chunk " << i;
    } else {
      ASSERT_GE(r, 0);
      EXPECT_EQ(out.argmax[size_t(r)], greedy_argmax(want, s.vocab)) << "chunk " << i;
      ++greedy;
    }
  }
  EXPECT_EQ(greedy, 8);
}

INSTANTIATE_TEST_SUITE_P(Variants, ConfigTest, ::testing::ValuesIn(specs()),
                         [](const ::testing::TestParamInfo<Named>& i) { return std::string(i.param.name); });

}  // namespace
}  // namespace ms::test
