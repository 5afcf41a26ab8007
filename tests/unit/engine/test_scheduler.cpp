// Scheduler driven step by step with the fake model, checking the block pool
// and the plan after every step.
#include <gtest/gtest.h>

#include <map>
#include <set>

#include "engine/scheduler.h"
#include "unit/engine/harness.h"

namespace ms {
namespace {

using test::FakeConfig;
using test::FakeRunner;
using test::FakeText;

struct Driver {
  Driver(FakeConfig c, EngineOptions o)
      : cfg(c), opts(o), runner(c, o.num_blocks, o.block_size),
        sched(o, RunnerLimits{c.vocab, c.max_context, c.eos}) {}

  uint64_t add(std::vector<int32_t> prompt, SamplingParams p) {
    const uint64_t id = next_id++;
    Request r{std::move(prompt), std::move(p), [this, id](const StreamEvent& ev) {
                Rec& rec = recs[id];
                if (ev.token >= 0) rec.tokens.push_back(ev.token);
                if (ev.finish != FinishReason::None) {
                  rec.finish = ev.finish;
                  rec.last = ev;
                  ++finished;
                }
              }};
    sched.add(std::make_unique<Sequence>(id, std::move(r), text, cfg.vocab));
    return id;
  }

  // One step; returns the plan's (copied) items for inspection.
  std::vector<ScheduledChunk> step() {
    std::vector<Emission> ev;
    StepPlan plan = sched.schedule(ev);
    EXPECT_LE(plan.num_tokens, opts.max_step_tokens);
    EXPECT_LE(static_cast<int32_t>(plan.items.size()), opts.max_batch);
    EXPECT_LE(static_cast<int32_t>(sched.num_running()), opts.max_batch);
    EXPECT_TRUE(sched.pool().check_invariants());
    std::set<const Sequence*> seen;
    for (const auto& c : plan.items) EXPECT_TRUE(seen.insert(c.seq).second) << "sequence scheduled twice";
    std::vector<ScheduledChunk> items = plan.items;
    if (!plan.empty()) {
      ForwardOutput out;
      runner.forward(plan.chunks, out);
      sched.update(plan, out, ev);
    }
    EXPECT_TRUE(sched.pool().check_invariants());
    collect(ev);
    return items;
  }

  void collect(std::vector<Emission>& ev) {
    for (auto& e : ev) (*e.callback)(e.event);
  }

  void run_all(int max_steps = 100000) {
    for (int i = 0; i < max_steps && sched.has_work(); ++i) step();
    EXPECT_FALSE(sched.has_work());
  }

  struct Rec {
    std::vector<int32_t> tokens;
    FinishReason finish = FinishReason::None;
    StreamEvent last;
  };
  FakeConfig cfg;
  EngineOptions opts;
  FakeRunner runner;
  FakeText text;
  Scheduler sched;
  uint64_t next_id = 1;
  std::map<uint64_t, Rec> recs;
  int finished = 0;
};

TEST(Scheduler, RandomWorkloadsKeepThePoolConsistent) {
  for (int trial = 0; trial < 6; ++trial) {
    FakeConfig cfg;
    cfg.eos_bias = -2.0f;  // some requests end early on EOS
    const int32_t bs = 1 + trial % 4;
    EngineOptions o = test::options(/*num_blocks=*/40 / bs + 8, bs, /*max_batch=*/5 + trial, /*max_step_tokens=*/6 + 5 * trial,
                                    /*prefix_caching=*/trial % 2 == 0);
    Driver d(cfg, o);
    std::mt19937 rng(100 + trial);
    const int n = 25;
    const auto shared = test::make_prompt(999, 12, cfg.vocab);
    for (int i = 0; i < n; ++i) {
      auto prompt = test::make_prompt(trial * 1000 + i, 1 + rng() % 20, cfg.vocab);
      if (i % 3 == 0) prompt.insert(prompt.begin(), shared.begin(), shared.end());
      SamplingParams p = test::greedy(1 + rng() % 15);
      if (i % 4 == 1) {
        p.temperature = 0.8f;
        p.has_seed = true;
        p.seed = i;
      }
      d.add(prompt, p);
    }
    d.run_all();
    EXPECT_EQ(d.finished, n);
    EXPECT_EQ(d.sched.pool().num_used(), 0);
    EXPECT_TRUE(d.sched.pool().check_invariants());
    EXPECT_TRUE(d.runner.errors().empty()) << d.runner.errors()[0];
    for (const auto& [id, rec] : d.recs) {
      EXPECT_NE(rec.finish, FinishReason::Error);
      EXPECT_EQ(static_cast<int32_t>(rec.tokens.size()), rec.last.completion_tokens);
    }
    EXPECT_GT(d.sched.counters().preemptions, 0) << "trial " << trial << ": the pool was meant to be too small";
  }
}

TEST(Scheduler, DecodesKeepFlowingWhileALongPromptIsChunked) {
  FakeConfig cfg;
  EngineOptions o = test::options(200, 4, 16, /*max_step_tokens=*/10);
  Driver d(cfg, o);
  SamplingParams p = test::greedy(40);
  p.ignore_eos = true;
  for (int i = 0; i < 3; ++i) d.add(test::make_prompt(i, 3, cfg.vocab), p);
  for (int s = 0; s < 4; ++s) d.step();  // the three short ones are decoding now
  d.add(test::make_prompt(77, 100, cfg.vocab), test::greedy(5));
  int prefill_steps = 0;
  for (int s = 0; s < 20; ++s) {
    const auto items = d.step();
    int decodes = 0, prefill = 0;
    for (const auto& c : items) (c.n_tokens == 1 ? decodes : prefill) += c.n_tokens;
    EXPECT_LE(decodes + prefill, 10);
    if (prefill > 0) {
      ++prefill_steps;
      EXPECT_EQ(decodes, 3) << "step " << s << ": running streams must keep decoding";
      EXPECT_LE(prefill, 10 - 3);
    }
  }
  EXPECT_GE(prefill_steps, 100 / 7);
  d.run_all();
  EXPECT_EQ(d.finished, 4);
}

TEST(Scheduler, CachedPrefixNeverCoversTheLastPromptToken) {
  FakeConfig cfg;
  EngineOptions o = test::options(64, 4);
  Driver d(cfg, o);
  const auto prompt = test::make_prompt(5, 8, cfg.vocab);  // exactly two blocks
  d.add(prompt, test::greedy(3));
  d.run_all();
  d.add(prompt, test::greedy(3));
  const auto items = d.step();
  ASSERT_EQ(items.size(), 1u);
  EXPECT_EQ(items[0].pos0, 4);  // one block from the cache, the last one recomputed
  EXPECT_EQ(items[0].n_tokens, 4);
  EXPECT_TRUE(items[0].logits);
  d.run_all();
  EXPECT_EQ(d.sched.pool().counters().prefix_hits, 4);
  EXPECT_EQ(d.sched.pool().counters().prefix_queries, 16);
  // Both runs produced the same tokens.
  ASSERT_EQ(d.recs.size(), 2u);
  EXPECT_EQ(d.recs.begin()->second.tokens, std::next(d.recs.begin())->second.tokens);
}

TEST(Scheduler, SequenceOutgrowingThePoolFinishesWithLength) {
  FakeConfig cfg;
  EngineOptions o = test::options(2, 4);  // 8 token slots in all
  Driver d(cfg, o);
  SamplingParams p = test::greedy(50);
  p.ignore_eos = true;
  d.add(test::make_prompt(1, 6, cfg.vocab), p);
  d.run_all();
  ASSERT_EQ(d.recs.size(), 1u);
  const auto& rec = d.recs.begin()->second;
  EXPECT_EQ(rec.finish, FinishReason::Length);
  EXPECT_EQ(rec.tokens.size(), 3u);  // positions 6 and 7 computed, the 9th token has no room
  EXPECT_EQ(rec.last.completion_tokens, 3);
  EXPECT_EQ(d.sched.pool().num_used(), 0);
}

TEST(Scheduler, AdmissionIsFifoAndLimitedByMaxBatch) {
  FakeConfig cfg;
  EngineOptions o = test::options(100, 4, /*max_batch=*/2, 512);
  Driver d(cfg, o);
  SamplingParams p = test::greedy(4);
  p.ignore_eos = true;
  for (int i = 0; i < 5; ++i) d.add(test::make_prompt(i, 5, cfg.vocab), p);
  std::vector<uint64_t> order;
  while (d.sched.has_work()) {
    for (const auto& c : d.step())
      if (c.pos0 == 0) order.push_back(c.seq->id);
    EXPECT_LE(d.sched.num_running(), 2u);
  }
  EXPECT_EQ(order, (std::vector<uint64_t>{1, 2, 3, 4, 5}));
}

TEST(Scheduler, CancelFreesBlocksWherever) {
  FakeConfig cfg;
  EngineOptions o = test::options(50, 4, 1);
  Driver d(cfg, o);
  SamplingParams p = test::greedy(30);
  const uint64_t a = d.add(test::make_prompt(1, 9, cfg.vocab), p);
  const uint64_t b = d.add(test::make_prompt(2, 9, cfg.vocab), p);
  d.step();
  d.step();
  EXPECT_GT(d.sched.pool().num_used(), 0);
  std::vector<Emission> ev;
  EXPECT_TRUE(d.sched.cancel(b, ev));  // waiting
  EXPECT_TRUE(d.sched.cancel(a, ev));  // running
  EXPECT_FALSE(d.sched.cancel(a, ev));
  ASSERT_EQ(ev.size(), 2u);
  EXPECT_EQ(ev[0].event.finish, FinishReason::Cancelled);
  EXPECT_EQ(ev[1].event.finish, FinishReason::Cancelled);
  EXPECT_EQ(d.sched.pool().num_used(), 0);
  EXPECT_FALSE(d.sched.has_work());
  EXPECT_TRUE(d.sched.pool().check_invariants());
}

TEST(Scheduler, MalformedRunnerOutputFailsTheStepNotTheProcess) {
  FakeConfig cfg;
  EngineOptions o = test::options(50, 4);
  Driver d(cfg, o);
  d.add(test::make_prompt(1, 5, cfg.vocab), test::greedy(3));
  std::vector<Emission> ev;
  StepPlan plan = d.sched.schedule(ev);
  ForwardOutput out;  // empty: no rows
  d.sched.update(plan, out, ev);
  ASSERT_EQ(ev.size(), 1u);
  EXPECT_EQ(ev[0].event.finish, FinishReason::Error);
  EXPECT_FALSE(ev[0].event.error.empty());
  EXPECT_EQ(d.sched.pool().num_used(), 0);
}


TEST(KvCacheManager, RegistersOnlyFullyComputedBlocks) {
  BlockPool pool(10, 4, true);
  KvCacheManager kv(pool);
  test::FakeText text;
  Sequence s(1, Request{test::make_prompt(1, 10, 320), test::greedy(5), {}}, text, 320);
  ASSERT_TRUE(kv.allocate(s, 7));
  EXPECT_EQ(s.blocks.size(), 2u);
  s.num_computed = 7;  // block 0 full, block 1 has 3 of 4 computed
  kv.commit(s);
  EXPECT_EQ(pool.num_cached(), 1);
  EXPECT_TRUE(pool.is_cached(s.blocks[0]));
  EXPECT_FALSE(pool.is_cached(s.blocks[1]));
  ASSERT_TRUE(kv.allocate(s, 3));
  s.num_computed = 10;
  kv.commit(s);
  EXPECT_EQ(pool.num_cached(), 2);
  // Another sequence with the same 10 tokens finds two blocks (never all ten tokens' worth: 9 / 4 = 2).
  Sequence t(2, Request{test::make_prompt(1, 10, 320), test::greedy(5), {}}, text, 320);
  EXPECT_EQ(kv.find_cached_prefix(t), (std::vector<int32_t>{s.blocks[0], s.blocks[1]}));
  kv.free(s);
  EXPECT_EQ(pool.num_used(), 0);
  EXPECT_EQ(pool.num_cached(), 2);
}

TEST(Scheduler, ContinuationJoiningWhileTheOriginalDecodesMatchesItAlone) {
  // B's prompt is A's prompt plus A's first generated tokens (a chat turn
  // continued) and arrives while A is still decoding: B may share only A's
  // full, computed blocks.
  FakeConfig cfg;
  for (int32_t bs : {1, 3, 4}) {
    EngineOptions o = test::options(200, bs);
    SamplingParams p = test::greedy(20);
    p.ignore_eos = true;
    Driver d(cfg, o);
    const auto prompt = test::make_prompt(1, 10, cfg.vocab);
    const uint64_t a = d.add(prompt, p);
    for (int i = 0; i < 6; ++i) d.step();
    std::vector<int32_t> bp = prompt;
    bp.insert(bp.end(), d.recs[a].tokens.begin(), d.recs[a].tokens.end());  // 6 generated, the last not yet computed
    bp.push_back(7);
    const uint64_t b = d.add(bp, p);
    d.run_all();
    EXPECT_GT(d.sched.pool().counters().prefix_hits, 0);
    Driver alone(cfg, o);
    const uint64_t b2 = alone.add(bp, p);
    alone.run_all();
    EXPECT_EQ(d.recs[b].tokens, alone.recs[b2].tokens) << "block size " << bs;
    EXPECT_TRUE(d.runner.errors().empty()) << d.runner.errors()[0];
  }
}

}  // namespace
}  // namespace ms
