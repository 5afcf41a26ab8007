// scheduler.h — iteration-level continuous batching over the paged KV cache.
//
// Each step:  StepPlan plan = schedule();  runner.forward(plan.chunks, out);
//             update(plan, out, events);
// The plan is a plain list of (sequence, token range, block table, logits?).
// Priority classes (Request::priority): Provisioned, then Standard, then
// Batch. Waiting requests sit in one FIFO queue per class, and the running
// batch is kept in (class, admission) order.
// Budget: at most max_step_tokens tokens per step, spent
//   0. (before anything is scheduled) if the head of a class's queue cannot be
//      admitted because the batch is full or the pool lacks the blocks of its
//      first chunk, running sequences of LOWER classes are preempted, lowest
//      class and newest first, until it fits (never one of its own class or
//      above);
//   1. on one decode token for every running sequence that is decoding,
//   2. then class by class, highest first: prefill chunks of the class's
//      running sequences still prefilling (oldest first; a long prompt is
//      split over several steps so that the running streams keep flowing),
//      then admissions from the class's queue in FIFO order (at most
//      max_batch running; the head is admitted only if the pool has the
//      blocks its first chunk needs after its cached prefix is shared;
//      otherwise admission stops for this and every lower class, so that the
//      head cannot starve). So lower classes use what the higher ones leave.
//   3. The Batch class goes last and yields: its decode tokens, prefill
//      chunks and admissions are scheduled only in a step that holds no
//      prefill chunk of a higher class. A step that prefills an online prompt
//      then costs what it would on an idle server, so an online request's
//      time to first token stays close to its idle value while a batch runs;
//      the batch's sequences keep their KV and go on at the next step.
//      A request whose next prefix block is being computed by a running
//      sequence (n > 1 choices of one prompt) waits for it to reach the
//      prefix cache instead of computing it twice.
// When a running sequence needs a block and the pool is dry, the last running
// sequence in (class, admission) order not yet scheduled in this step (the
// lowest class, newest first) is preempted: its blocks are freed (full ones
// stay in the prefix cache) and it goes back to the front of its class's
// queue, to be recomputed later. A sequence that could never fit the pool on
// its own finishes with "length".
//
// Only the engine thread calls the scheduler.
#pragma once
#include <cstdint>
#include <deque>
#include <memory>
#include <string>
#include <unordered_map>
#include <vector>

#include "engine/block_pool.h"
#include "engine/engine.h"
#include "engine/kv_cache_manager.h"
#include "engine/sequence.h"
#include "model/batch.h"

namespace ms {

struct ScheduledChunk {
  Sequence* seq = nullptr;
  int32_t pos0 = 0;
  int32_t n_tokens = 0;
  bool logits = false;  // the chunk ends at the sequence's last token: sample after it
};

struct StepPlan {
  std::vector<ScheduledChunk> items;
  std::vector<SeqChunk> chunks;  // items[i] as the runner takes it (points into the sequences)
  int32_t num_tokens = 0;
  int32_t num_prefill_tokens = 0;
  bool empty() const { return items.empty(); }
};

struct SchedulerCounters {
  int64_t preemptions = 0;
  int64_t prompt_tokens = 0;      // prompt lengths of admitted requests (first admission)
  int64_t generation_tokens = 0;  // sampled tokens
  int64_t steps = 0;
  int64_t batch_yields = 0;  // steps in which the Batch class yielded to a higher class's prefill
  // Per priority class (index: static_cast<int>(Priority)).
  int64_t class_admitted[kNumPriorities] = {};        // first admissions
  int64_t class_preempted[kNumPriorities] = {};       // preemptions of the class's sequences
  int64_t class_prompt_tokens[kNumPriorities] = {};
  int64_t class_generation_tokens[kNumPriorities] = {};
};

// What the scheduler needs to know about the model it runs (from the
// ModelRunner). Not the server's ModelLimits (server/openai_schema.h): one
// name per type, so no two definitions of one class meet at link time.
struct RunnerLimits {
  int64_t vocab_size = 0;
  int64_t max_context = 0;
  int32_t eos_id = -1;
  int64_t num_experts = 0;  // for routing records
};

class Scheduler {
 public:
  Scheduler(const EngineOptions& opts, const RunnerLimits& limits);

  void add(std::unique_ptr<Sequence> s);  // joins the back of its class's waiting queue
  // Plans the next step. Sequences that can never fit finish here (their events go to `events`).
  StepPlan schedule(std::vector<Emission>& events);
  // Applies a step's outputs: samples, emits, retires finished sequences.
  void update(const StepPlan& plan, const ForwardOutput& out, std::vector<Emission>& events);
  // The step failed (the runner threw): its sequences finish with Error.
  void fail(const StepPlan& plan, const std::string& message, std::vector<Emission>& events);
  // Removes a request wherever it is; false if unknown (already finished).
  bool cancel(uint64_t id, std::vector<Emission>& events);
  // Ends every request (Cancelled on shutdown; Error if the engine cannot go on).
  void cancel_all(std::vector<Emission>& events, FinishReason why = FinishReason::Cancelled,
                  const std::string& message = {});

  bool has_work() const { return num_waiting() > 0 || !running_.empty(); }
  size_t num_waiting() const;
  size_t num_running() const { return running_.size(); }
  size_t num_waiting(Priority p) const { return waiting_[static_cast<int>(p)].size(); }
  size_t num_running(Priority p) const;
  const BlockPool& pool() const { return pool_; }
  const SchedulerCounters& counters() const { return counters_; }
  const EngineOptions& options() const { return opts_; }

 private:
  void preempt(Sequence* s);
  void finish(Sequence* s, std::vector<Emission>& events, StreamEvent ev);
  void retire(Sequence* s);  // frees blocks, removes from the queues, deletes
  Sequence* pick_victim() const;  // last running sequence in (class, admission) order not scheduled this step
  void make_room_for(Sequence* head, int32_t budget);  // phase 0: preempts lower classes for a queue head
  int32_t admission_need(Sequence* s, int32_t budget, bool* waits);  // blocks its first chunk needs beyond the free ones
  void insert_running(Sequence* s);                    // at its (class, admission) place
  bool schedule_running(Sequence* s, int32_t n, StepPlan& plan, std::vector<Emission>& events);
  template <class ClassFilter>
  void schedule_decodes(int32_t& budget, StepPlan& plan, std::vector<Emission>& events, ClassFilter want);
  void schedule_class(int c, int32_t& budget, bool& blocked, StepPlan& plan, std::vector<Emission>& events);
  bool try_admit(Sequence* s, int32_t budget, StepPlan& plan);
  bool shares_uncomputed_prefix(const Sequence& s, size_t n_hit) const;
  void add_item(StepPlan& plan, Sequence* s, int32_t n);

  EngineOptions opts_;
  RunnerLimits limits_;
  BlockPool pool_;
  KvCacheManager kv_;
  std::unordered_map<uint64_t, std::unique_ptr<Sequence>> seqs_;
  std::deque<Sequence*> waiting_[kNumPriorities];  // one FIFO queue per class
  std::vector<Sequence*> running_;             // in (class, admission) order: highest class, oldest first
  uint64_t next_admit_ = 0;
  std::unordered_map<const Sequence*, int> scheduled_;  // this step's sequences
  SchedulerCounters counters_;
};

}  // namespace ms
