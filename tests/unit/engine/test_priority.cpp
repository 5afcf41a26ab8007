// Priority classes in the scheduler (Provisioned > Standard > Batch): admission
// order, FIFO within a class, preemption of lower classes only, no lost or
// duplicated tokens after a preemption, per-class counters, and batch of 1 ==
// batch of N with mixed classes.
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

constexpr Priority kP = Priority::Provisioned, kS = Priority::Standard, kB = Priority::Batch;

struct Driver {
  Driver(FakeConfig c, EngineOptions o)
      : cfg(c), opts(o), runner(c, o.num_blocks, o.block_size), sched(o, RunnerLimits{c.vocab, c.max_context, c.eos}) {}

  uint64_t add(std::vector<int32_t> prompt, SamplingParams p, Priority pr) {
    const uint64_t id = next_id++;
    Request r{std::move(prompt), std::move(p), [this, id](const StreamEvent& ev) {
                Rec& rec = recs[id];
                if (ev.token >= 0) rec.tokens.push_back(ev.token);
                if (ev.finish != FinishReason::None) {
                  rec.finish = ev.finish;
                  rec.last = ev;
                  ++rec.finals;
                  finish_order.push_back(id);
                  finish_step[id] = steps;
                }
              }};
    r.priority = pr;
    sched.add(std::make_unique<Sequence>(id, std::move(r), text, cfg.vocab));
    return id;
  }

  // One step; returns the ids scheduled in it.
  std::vector<uint64_t> step() {
    std::vector<Emission> ev;
    StepPlan plan = sched.schedule(ev);
    EXPECT_LE(plan.num_tokens, opts.max_step_tokens);
    EXPECT_LE(static_cast<int32_t>(sched.num_running()), opts.max_batch);
    EXPECT_TRUE(sched.pool().check_invariants());
    std::vector<uint64_t> ids;
    for (const auto& c : plan.items) {
      ids.push_back(c.seq->id);
      if (!first_step.count(c.seq->id)) first_step[c.seq->id] = steps;
    }
    if (!plan.empty()) {
      ForwardOutput out;
      runner.forward(plan.chunks, out);
      sched.update(plan, out, ev);
    }
    for (auto& e : ev) (*e.callback)(e.event);
    ++steps;
    return ids;
  }

  void run_all(int max_steps = 100000) {
    for (int i = 0; i < max_steps && sched.has_work(); ++i) step();
    EXPECT_FALSE(sched.has_work());
  }

  struct Rec {
    std::vector<int32_t> tokens;
    FinishReason finish = FinishReason::None;
    StreamEvent last;
    int finals = 0;
  };
  FakeConfig cfg;
  EngineOptions opts;
  FakeRunner runner;
  FakeText text;
  Scheduler sched;
  uint64_t next_id = 1;
  int steps = 0;
  std::map<uint64_t, Rec> recs;
  std::map<uint64_t, int> first_step;  // id -> the step its first chunk ran in
  std::vector<uint64_t> finish_order;
  std::map<uint64_t, int> finish_step;  // id -> the step it finished in
};

// What a request generates alone in a roomy engine (the reference).
std::vector<int32_t> alone(const FakeConfig& cfg, const std::vector<int32_t>& prompt, const SamplingParams& p) {
  FakeText text;
  auto r = test::run_jobs(cfg, test::options(256, 4), {{prompt, p}}, text);
  return r.outcomes[0].tokens;
}

TEST(Priority, WaitingRequestsAreAdmittedByClassThenFifo) {
  FakeConfig cfg;
  Driver d(cfg, test::options(64, 4, /*max_batch=*/1));
  const uint64_t a = d.add(test::make_prompt(1, 5, cfg.vocab), test::greedy(3), kB);
  const uint64_t b = d.add(test::make_prompt(2, 5, cfg.vocab), test::greedy(3), kS);
  const uint64_t c = d.add(test::make_prompt(3, 5, cfg.vocab), test::greedy(3), kP);
  const uint64_t e = d.add(test::make_prompt(4, 5, cfg.vocab), test::greedy(3), kS);
  const uint64_t f = d.add(test::make_prompt(5, 5, cfg.vocab), test::greedy(3), kP);
  const uint64_t g = d.add(test::make_prompt(6, 5, cfg.vocab), test::greedy(3), kB);
  d.run_all();
  EXPECT_EQ(d.finish_order, (std::vector<uint64_t>{c, f, b, e, a, g}));
  EXPECT_EQ(d.sched.counters().preemptions, 0) << "a class never preempts its own class";
  const auto& k = d.sched.counters();
  EXPECT_EQ(k.class_admitted[0], 2);
  EXPECT_EQ(k.class_admitted[1], 2);
  EXPECT_EQ(k.class_admitted[2], 2);
  for (int i = 0; i < kNumPriorities; ++i) EXPECT_EQ(k.class_generation_tokens[i], 6);
}

TEST(Priority, ProvisionedPreemptsTheNewestLowestClassWhenTheBatchIsFull) {
  FakeConfig cfg;
  Driver d(cfg, test::options(256, 4, /*max_batch=*/3));
  const auto pb = test::make_prompt(10, 6, cfg.vocab), ps1 = test::make_prompt(11, 6, cfg.vocab),
             ps2 = test::make_prompt(12, 6, cfg.vocab), pp = test::make_prompt(13, 6, cfg.vocab);
  const uint64_t s1 = d.add(ps1, test::greedy(20), kS);
  const uint64_t bt = d.add(pb, test::greedy(20), kB);
  const uint64_t s2 = d.add(ps2, test::greedy(20), kS);
  for (int i = 0; i < 4; ++i) d.step();
  ASSERT_EQ(d.sched.num_running(), 3u);
  const uint64_t p = d.add(pp, test::greedy(20), kP);
  auto ids = d.step();
  EXPECT_TRUE(std::count(ids.begin(), ids.end(), p)) << "admitted in the very next step";
  EXPECT_FALSE(std::count(ids.begin(), ids.end(), bt)) << "the Batch sequence made room";
  EXPECT_EQ(d.sched.counters().class_preempted[2], 1);
  EXPECT_EQ(d.sched.counters().class_preempted[1], 0);
  // A second Provisioned request: now a Standard one (the newest) goes.
  const uint64_t p2 = d.add(test::make_prompt(14, 6, cfg.vocab), test::greedy(5), kP);
  ids = d.step();
  EXPECT_TRUE(std::count(ids.begin(), ids.end(), p2));
  EXPECT_FALSE(std::count(ids.begin(), ids.end(), s2));
  EXPECT_TRUE(std::count(ids.begin(), ids.end(), s1));
  EXPECT_EQ(d.sched.counters().class_preempted[1], 1);
  d.run_all();
  // Nothing lost or duplicated: every request's tokens equal its run alone.
  const std::map<uint64_t, std::vector<int32_t>> prompts = {{s1, ps1}, {bt, pb}, {s2, ps2}, {p, pp}};
  for (const auto& [id, pr] : prompts) {
    EXPECT_EQ(d.recs[id].finals, 1);
    EXPECT_EQ(d.recs[id].tokens, alone(cfg, pr, test::greedy(20))) << "request " << id;
    EXPECT_EQ(static_cast<int32_t>(d.recs[id].tokens.size()), d.recs[id].last.completion_tokens);
  }
  EXPECT_TRUE(d.runner.errors().empty());
}

TEST(Priority, ProvisionedPreemptsLowerClassesWhenTheKvPoolIsShort) {
  FakeConfig cfg;
  // 16 blocks of 4 tokens: two Standard sequences of 24+ tokens fill it.
  Driver d(cfg, test::options(16, 4, /*max_batch=*/8));
  const auto pa = test::make_prompt(20, 24, cfg.vocab), pb = test::make_prompt(21, 24, cfg.vocab);
  const uint64_t a = d.add(pa, test::greedy(8), kS);
  const uint64_t b = d.add(pb, test::greedy(8), kS);
  for (int i = 0; i < 3; ++i) d.step();
  ASSERT_EQ(d.sched.num_running(), 2u);
  const auto pp = test::make_prompt(22, 16, cfg.vocab);
  const uint64_t p = d.add(pp, test::greedy(8), kP);
  const auto ids = d.step();
  EXPECT_TRUE(std::count(ids.begin(), ids.end(), p));
  EXPECT_GE(d.sched.counters().class_preempted[1], 1);
  EXPECT_EQ(d.sched.counters().class_preempted[0], 0);
  d.run_all();
  EXPECT_EQ(d.recs[p].tokens, alone(cfg, pp, test::greedy(8)));
  EXPECT_EQ(d.recs[a].tokens, alone(cfg, pa, test::greedy(8)));
  EXPECT_EQ(d.recs[b].tokens, alone(cfg, pb, test::greedy(8)));
  EXPECT_TRUE(d.runner.errors().empty());
  EXPECT_EQ(d.sched.pool().num_used(), 0);
}

TEST(Priority, LowerClassesNeverPreemptHigherOnesAndWaitBehindABlockedHead) {
  FakeConfig cfg;
  Driver d(cfg, test::options(16, 4, /*max_batch=*/8));
  const uint64_t p1 = d.add(test::make_prompt(30, 40, cfg.vocab), test::greedy(10), kP);
  d.step();
  // A second Provisioned request that does not fit beside p1, then a small
  // Standard one that would: the Standard one must wait behind the head.
  const uint64_t p2 = d.add(test::make_prompt(31, 30, cfg.vocab), test::greedy(4), kP);
  const uint64_t s = d.add(test::make_prompt(32, 3, cfg.vocab), test::greedy(4), kS);
  const uint64_t bt = d.add(test::make_prompt(33, 3, cfg.vocab), test::greedy(4), kB);
  d.run_all();
  EXPECT_EQ(d.sched.counters().class_preempted[0], 0);
  EXPECT_LE(d.first_step[p2], d.first_step[s]) << "the Standard request waited behind the Provisioned head";
  EXPECT_GT(d.first_step[s], d.finish_step[p1]) << "it would have fit beside p1, but the head came first";
  EXPECT_LE(d.first_step[s], d.first_step[bt]);
  EXPECT_EQ(d.finish_order.front(), p1);
  for (auto id : {p1, p2, s, bt}) EXPECT_EQ(d.recs[id].finals, 1);
  EXPECT_TRUE(d.runner.errors().empty());
}

TEST(Priority, NoPreemptionThatCouldNotMakeRoom) {
  FakeConfig cfg;
  Driver d(cfg, test::options(20, 4, /*max_batch=*/8));
  const uint64_t p1 = d.add(test::make_prompt(50, 40, cfg.vocab), test::greedy(10), kP);
  const uint64_t s = d.add(test::make_prompt(51, 3, cfg.vocab), test::greedy(12), kS);
  d.step();
  // p2 needs 12 blocks; beside p1 only ~8 are free, and s holds 1: preempting s cannot help.
  const uint64_t p2 = d.add(test::make_prompt(52, 48, cfg.vocab), test::greedy(4), kP);
  for (int i = 0; i < 5; ++i) {
    const auto ids = d.step();
    EXPECT_TRUE(std::count(ids.begin(), ids.end(), s)) << "s keeps running while p2 waits for p1";
  }
  EXPECT_EQ(d.sched.counters().class_preempted[1], 0);
  d.run_all();
  for (auto id : {p1, s, p2}) EXPECT_EQ(d.recs[id].finals, 1);
  EXPECT_LT(d.finish_step[p1], d.first_step[p2]);
}

TEST(Priority, StandardDoesNotPreemptStandardForAdmission) {
  FakeConfig cfg;
  Driver d(cfg, test::options(256, 4, /*max_batch=*/2));
  d.add(test::make_prompt(40, 5, cfg.vocab), test::greedy(10), kS);
  d.add(test::make_prompt(41, 5, cfg.vocab), test::greedy(10), kB);
  d.step();  // the Standard prompt (the Batch request yields this step)
  d.step();  // the Batch one, beside the Standard decode
  ASSERT_EQ(d.sched.num_running(), 2u);
  const uint64_t s = d.add(test::make_prompt(42, 5, cfg.vocab), test::greedy(4), kS);
  auto ids = d.step();
  EXPECT_TRUE(std::count(ids.begin(), ids.end(), s)) << "Standard displaces Batch";
  EXPECT_EQ(d.sched.counters().class_preempted[2], 1);
  const uint64_t b2 = d.add(test::make_prompt(43, 5, cfg.vocab), test::greedy(4), kB);
  ids = d.step();
  EXPECT_FALSE(std::count(ids.begin(), ids.end(), b2)) << "Batch waits for room";
  EXPECT_EQ(d.sched.counters().class_preempted[1], 0);
  d.run_all();
  EXPECT_EQ(d.recs[b2].finals, 1);
}

// Mixed classes on a tight pool and batch: every output equals the request's
// output alone (greedy and seeded sampling), and the per-class counters add up.
TEST(Priority, MixedClassesUnderPressureEqualBatchOfOne) {
  for (int trial = 0; trial < 4; ++trial) {
    FakeConfig cfg;
    cfg.eos_bias = -3.0f;
    std::mt19937 rng(500 + trial);
    std::vector<test::Job> jobs;
    std::vector<Priority> cls;
    for (int i = 0; i < 24; ++i) {
      SamplingParams p = test::greedy(1 + rng() % 14);
      if (i % 3 == 1) {
        p.temperature = 0.9f;
        p.has_seed = true;
        p.seed = 77 + i;
      }
      jobs.push_back({test::make_prompt(trial * 100 + i, 1 + rng() % 18, cfg.vocab), p});
      cls.push_back(static_cast<Priority>(rng() % kNumPriorities));
    }
    const int32_t bs = 2 + trial % 3;
    EngineOptions o = test::options(/*num_blocks=*/40 / bs + 4 + trial, bs, /*max_batch=*/3 + trial,
                                    /*max_step_tokens=*/8 + 4 * trial, trial % 2 == 0);
    Driver d(cfg, o);
    std::vector<uint64_t> ids;
    // Arrivals spread over the first steps, so that higher classes meet running lower ones.
    size_t next = 0;
    for (int step = 0; step < 100000 && (next < jobs.size() || d.sched.has_work()); ++step) {
      for (int k = 0; k < 3 && next < jobs.size(); ++k, ++next) ids.push_back(d.add(jobs[next].prompt, jobs[next].params, cls[next]));
      d.step();
    }
    EXPECT_FALSE(d.sched.has_work());
    int64_t gen[kNumPriorities] = {};
    for (size_t i = 0; i < jobs.size(); ++i) {
      const auto& rec = d.recs[ids[i]];
      EXPECT_EQ(rec.finals, 1);
      EXPECT_EQ(rec.tokens, alone(cfg, jobs[i].prompt, jobs[i].params)) << "trial " << trial << " request " << i;
      gen[static_cast<int>(cls[i])] += static_cast<int64_t>(rec.tokens.size());
    }
    const auto& k = d.sched.counters();
    for (int c = 0; c < kNumPriorities; ++c) {
      EXPECT_EQ(k.class_generation_tokens[c], gen[c]);
      EXPECT_EQ(k.class_admitted[c], std::count(cls.begin(), cls.end(), static_cast<Priority>(c)));
    }
    EXPECT_GT(k.preemptions, 0) << "trial " << trial << ": meant to be under pressure";
    EXPECT_TRUE(d.runner.errors().empty()) << d.runner.errors()[0];
    EXPECT_EQ(d.sched.pool().num_used(), 0);
  }
}

// The Batch class yields: a step that prefills a higher class's prompt holds
// no Batch rows (so it costs what it would on an idle server), the batch
// goes on at the next step, and its tokens are unchanged.
TEST(Priority, BatchYieldsTheStepsThatPrefillAHigherClass) {
  FakeConfig cfg;
  Driver d(cfg, test::options(256, 4, /*max_batch=*/8, /*max_step_tokens=*/6));
  std::vector<uint64_t> batch;
  std::vector<std::vector<int32_t>> bprompts;
  for (int i = 0; i < 3; ++i) {
    bprompts.push_back(test::make_prompt(40 + i, 3, cfg.vocab));
    batch.push_back(d.add(bprompts.back(), test::greedy(30), kB));
  }
  for (int i = 0; i < 3; ++i) d.step();  // the batch is decoding
  const auto has = [](const std::vector<uint64_t>& ids, uint64_t id) { return std::count(ids.begin(), ids.end(), id) > 0; };
  const auto pr = test::make_prompt(50, 14, cfg.vocab);  // 3 steps of prefill at 6 tokens a step
  const uint64_t s = d.add(pr, test::greedy(4), kS);
  for (int k = 0; k < 3; ++k) {
    const auto ids = d.step();
    EXPECT_TRUE(has(ids, s)) << "prefill step " << k;
    for (uint64_t b : batch) EXPECT_FALSE(has(ids, b)) << "a Batch row in prefill step " << k;
  }
  EXPECT_EQ(d.sched.counters().batch_yields, 3);
  // Decoding, the Standard sequence shares its steps with the batch again.
  const auto ids = d.step();
  EXPECT_TRUE(has(ids, s));
  for (uint64_t b : batch) EXPECT_TRUE(has(ids, b));
  d.run_all();
  EXPECT_EQ(d.sched.counters().batch_yields, 3);
  EXPECT_EQ(d.recs[s].tokens, alone(cfg, pr, test::greedy(4)));
  for (size_t i = 0; i < batch.size(); ++i) EXPECT_EQ(d.recs[batch[i]].tokens, alone(cfg, bprompts[i], test::greedy(30)));
  EXPECT_EQ(d.sched.counters().preemptions, 0);
}

TEST(Priority, EngineStatsReportEachClass) {
  FakeConfig cfg;
  FakeRunner runner(cfg, 64, 4);
  FakeText text;
  Engine engine(runner, text, test::options(64, 4, 2));
  test::Collector col(5);
  std::vector<Request> reqs;
  const Priority cl[5] = {kP, kS, kS, kB, kB};
  for (int i = 0; i < 5; ++i) {
    Request r{test::make_prompt(60 + i, 4, cfg.vocab), test::greedy(3), col.callback(i)};
    r.priority = cl[i];
    reqs.push_back(std::move(r));
  }
  Request bad{test::make_prompt(70, 4, cfg.vocab), test::greedy(3), nullptr};
  bad.priority = static_cast<Priority>(7);
  EXPECT_EQ(engine.submit(std::move(bad)).status, SubmitStatus::Invalid);
  engine.run_to_completion(std::move(reqs));
  const EngineStats st = engine.stats();
  EXPECT_EQ(st.classes[0].admitted, 1);
  EXPECT_EQ(st.classes[1].admitted, 2);
  EXPECT_EQ(st.classes[2].admitted, 2);
  EXPECT_EQ(st.classes[0].generation_tokens, 3);
  EXPECT_EQ(st.classes[2].generation_tokens, 6);
  EXPECT_EQ(st.classes[1].prompt_tokens, 8);
  for (const auto& c : st.classes) EXPECT_EQ(c.waiting + c.running, 0);
}

}  // namespace
}  // namespace ms
