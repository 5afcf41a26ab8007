#include "engine/scheduler.h"

#include <algorithm>

#include "core/error.h"

namespace ms {

Scheduler::Scheduler(const EngineOptions& opts, const RunnerLimits& limits)
    : opts_(opts), limits_(limits), pool_(opts.num_blocks, opts.block_size, opts.prefix_caching), kv_(pool_) {
  if (opts_.max_batch <= 0) bad_input("engine: max_batch must be positive (got " + std::to_string(opts_.max_batch) + ")");
  if (opts_.max_step_tokens <= 0)
    bad_input("engine: max_step_tokens must be positive (got " + std::to_string(opts_.max_step_tokens) + ")");
}

namespace {
int cls(const Sequence* s) { return static_cast<int>(s->priority); }
}  // namespace

void Scheduler::add(std::unique_ptr<Sequence> s) {
  Sequence* raw = s.get();
  seqs_[raw->id] = std::move(s);
  waiting_[cls(raw)].push_back(raw);
}

size_t Scheduler::num_waiting() const {
  size_t n = 0;
  for (const auto& q : waiting_) n += q.size();
  return n;
}

size_t Scheduler::num_running(Priority p) const {
  return static_cast<size_t>(
      std::count_if(running_.begin(), running_.end(), [p](const Sequence* s) { return s->priority == p; }));
}

void Scheduler::insert_running(Sequence* s) {
  s->admit_order = next_admit_++;
  // After every running sequence of its class or a higher one.
  auto it = std::find_if(running_.begin(), running_.end(), [&](const Sequence* r) { return cls(r) > cls(s); });
  running_.insert(it, s);
}

Sequence* Scheduler::pick_victim() const {
  for (auto it = running_.rbegin(); it != running_.rend(); ++it)
    if (!scheduled_.count(*it)) return *it;
  return nullptr;
}

void Scheduler::preempt(Sequence* s) {
  kv_.free(*s);
  running_.erase(std::find(running_.begin(), running_.end(), s));
  waiting_[cls(s)].push_front(s);
  ++s->num_preemptions;
  ++counters_.preemptions;
  ++counters_.class_preempted[cls(s)];
}

void Scheduler::retire(Sequence* s) {
  kv_.free(*s);
  if (auto it = std::find(running_.begin(), running_.end(), s); it != running_.end()) running_.erase(it);
  auto& q = waiting_[cls(s)];
  if (auto it = std::find(q.begin(), q.end(), s); it != q.end()) q.erase(it);
  scheduled_.erase(s);
  seqs_.erase(s->id);  // destroys s
}

void Scheduler::finish(Sequence* s, std::vector<Emission>& events, StreamEvent ev) {
  events.push_back({s->callback, std::move(ev)});
  retire(s);
}

void Scheduler::add_item(StepPlan& plan, Sequence* s, int32_t n) {
  ScheduledChunk c;
  c.seq = s;
  c.pos0 = s->num_computed;
  c.n_tokens = n;
  c.logits = s->num_computed + n == static_cast<int32_t>(s->tokens.size());
  plan.items.push_back(c);
  plan.num_tokens += n;
  if (n > 1 || !c.logits || s->num_generated() == 0) plan.num_prefill_tokens += n;
  scheduled_[s] = 1;
}

// Schedules `n` more tokens of a running sequence, preempting newer ones if the
// pool is dry. Returns false if the sequence was not scheduled (it may then
// have been preempted or finished).
bool Scheduler::schedule_running(Sequence* s, int32_t n, StepPlan& plan, std::vector<Emission>& events) {
  if (!kv_.fits_pool(*s)) {  // it alone would need more than the whole pool
    finish(s, events, s->final_event(FinishReason::Length));
    return false;
  }
  const bool decode = s->remaining() == 1;
  const int32_t bs = pool_.block_size();
  while (true) {
    if (kv_.allocate(*s, n)) {
      add_item(plan, s, n);
      return true;
    }
    if (!decode) {
      // A prefill chunk first shrinks to what the pool can hold now.
      const int64_t capacity =
          (static_cast<int64_t>(s->blocks.size()) + pool_.num_free()) * bs - s->num_computed;
      if (capacity >= 1) {
        n = static_cast<int32_t>(std::min<int64_t>(n, capacity));
        continue;
      }
    }
    Sequence* victim = pick_victim();
    if (victim == nullptr) return false;
    if (victim == s) {
      // Newest of the unscheduled: a decode gives its blocks up to the others;
      // a prefill keeps them and waits for a later step.
      if (decode) preempt(s);
      return false;
    }
    preempt(victim);
  }
}

bool Scheduler::shares_uncomputed_prefix(const Sequence& s, size_t n_hit) const {
  if (n_hit >= s.block_hashes.size()) return false;
  const uint64_t next = s.block_hashes[n_hit];
  for (const Sequence* r : running_)
    if (n_hit < r->block_hashes.size() && r->block_hashes[n_hit] == next &&
        r->num_committed <= static_cast<int32_t>(n_hit))
      return true;
  return false;
}

// The blocks the first chunk of waiting `s` needs beyond those free now (<= 0:
// it fits); *waits: it must wait for a running sequence's prefix blocks.
int32_t Scheduler::admission_need(Sequence* s, int32_t budget, bool* waits) {
  std::vector<int32_t> hit = kv_.find_cached_prefix(*s);
  if (s->routing) hit.resize(std::min(hit.size(), static_cast<size_t>(s->routed_upto / pool_.block_size())));
  *waits = pool_.prefix_caching() && shares_uncomputed_prefix(*s, hit.size());
  const int32_t computed = static_cast<int32_t>(hit.size()) * pool_.block_size();
  const int32_t n = std::min<int32_t>(static_cast<int32_t>(s->tokens.size()) - computed, budget);
  const int32_t need = kv_.blocks_for(static_cast<int64_t>(computed) + n) - static_cast<int32_t>(hit.size());
  return need - (pool_.num_free() - kv_.count_free(hit));
}

bool Scheduler::try_admit(Sequence* s, int32_t budget, StepPlan& plan) {
  std::vector<int32_t> hit = kv_.find_cached_prefix(*s);
  // A request recording its routing computes every token it has not counted yet.
  if (s->routing) hit.resize(std::min(hit.size(), static_cast<size_t>(s->routed_upto / pool_.block_size())));
  // A running sequence is computing the very blocks this one would share
  // (e.g. n > 1 choices of one prompt): wait for them to land in the cache
  // rather than computing them twice.
  if (pool_.prefix_caching() && shares_uncomputed_prefix(*s, hit.size())) return false;
  const int32_t computed = static_cast<int32_t>(hit.size()) * pool_.block_size();
  const int32_t n = std::min<int32_t>(static_cast<int32_t>(s->tokens.size()) - computed, budget);
  const int32_t need = kv_.blocks_for(static_cast<int64_t>(computed) + n) - static_cast<int32_t>(hit.size());
  if (need > pool_.num_free() - kv_.count_free(hit)) return false;

  kv_.adopt_prefix(*s, hit);
  if (!kv_.allocate(*s, n)) throw Error(ErrorKind::Internal, "Scheduler: admission allocation failed");
  if (pool_.prefix_caching()) {
    pool_.counters().prefix_queries += static_cast<int64_t>(s->tokens.size());
    pool_.counters().prefix_hits += computed;
  }
  if (s->cached_tokens < 0) {
    s->cached_tokens = std::min(computed, s->prompt_len);
    counters_.prompt_tokens += s->prompt_len;
    counters_.class_prompt_tokens[cls(s)] += s->prompt_len;
    ++counters_.class_admitted[cls(s)];
  }
  waiting_[cls(s)].pop_front();
  insert_running(s);
  add_item(plan, s, n);
  return true;
}

// Phase 0: the head of a class's queue that cannot be admitted (batch full,
// pool short) takes the place of running sequences of lower classes.
void Scheduler::make_room_for(Sequence* head, int32_t budget) {
  if (!kv_.fits_pool(*head)) return;  // finishes with "length" at admission
  while (!running_.empty() && cls(running_.back()) > cls(head)) {
    const bool batch_full = static_cast<int32_t>(running_.size()) >= opts_.max_batch;
    bool waits = false;
    const int32_t short_by = admission_need(head, budget, &waits);
    if (waits) return;
    if (!batch_full) {
      if (short_by <= 0) return;  // it fits
      int64_t reclaimable = 0;    // what preempting every lower class could free, at most
      for (const Sequence* r : running_)
        if (cls(r) > cls(head)) reclaimable += static_cast<int64_t>(r->blocks.size());
      if (short_by > reclaimable) return;  // it waits for its own class: preempting would not help
    }
    preempt(running_.back());  // the lowest class, newest first
  }
}

template <class ClassFilter>
void Scheduler::schedule_decodes(int32_t& budget, StepPlan& plan, std::vector<Emission>& events, ClassFilter want) {
  // Victims of preemption are always at or after index i, so the loop stays valid.
  for (size_t i = 0; i < running_.size() && budget > 0;) {
    Sequence* s = running_[i];
    if (s->remaining() != 1 || !want(cls(s)) || scheduled_.count(s)) {
      ++i;
      continue;
    }
    if (schedule_running(s, 1, plan, events)) {
      budget -= 1;
      ++i;
    } else if (i < running_.size() && running_[i] == s) {
      ++i;
    }
  }
}

// Class c's prefill chunks (oldest first), then admissions from its queue
// (FIFO; the head blocks this class and the lower ones when it does not fit).
void Scheduler::schedule_class(int c, int32_t& budget, bool& blocked, StepPlan& plan, std::vector<Emission>& events) {
  for (size_t i = 0; i < running_.size() && budget > 0;) {
    Sequence* s = running_[i];
    if (cls(s) != c || s->remaining() <= 1 || scheduled_.count(s)) {
      ++i;
      continue;
    }
    if (schedule_running(s, std::min(s->remaining(), budget), plan, events)) {
      budget -= plan.items.back().n_tokens;
      ++i;
    } else if (i < running_.size() && running_[i] == s) {
      ++i;
    }
  }
  auto& q = waiting_[c];
  while (!blocked && budget > 0 && !q.empty() && static_cast<int32_t>(running_.size()) < opts_.max_batch) {
    Sequence* s = q.front();
    if (!kv_.fits_pool(*s)) {
      finish(s, events, s->final_event(FinishReason::Length));
      continue;
    }
    if (!try_admit(s, budget, plan)) {
      blocked = true;
      break;
    }
    budget -= plan.items.back().n_tokens;
  }
  if (!q.empty()) blocked = true;  // lower classes wait behind this one
}

StepPlan Scheduler::schedule(std::vector<Emission>& events) {
  StepPlan plan;
  scheduled_.clear();
  int32_t budget = opts_.max_step_tokens;

  // 0. A waiting head of a higher class displaces lower-class running sequences.
  for (int c = 0; c + 1 < kNumPriorities; ++c)
    if (!waiting_[c].empty()) make_room_for(waiting_[c].front(), budget);

  // 1. One decode token per decoding sequence, oldest first; 2. class by
  //    class, prefill chunks and admissions; 3. the Batch class last, and
  //    only in a step without a higher class's prefill (scheduler.h).
  const int batch = static_cast<int>(Priority::Batch);
  schedule_decodes(budget, plan, events, [&](int c) { return c != batch; });
  bool blocked = false;
  for (int c = 0; c < batch; ++c) schedule_class(c, budget, blocked, plan, events);
  bool higher_prefill = false;
  for (const ScheduledChunk& it : plan.items) higher_prefill = higher_prefill || it.n_tokens > 1 || it.pos0 < it.seq->prompt_len;
  if (!higher_prefill) {
    schedule_decodes(budget, plan, events, [&](int c) { return c == batch; });
    schedule_class(batch, budget, blocked, plan, events);
  } else {
    ++counters_.batch_yields;
  }

  plan.chunks.reserve(plan.items.size());
  for (const ScheduledChunk& c : plan.items) {
    SeqChunk sc;
    sc.tokens = c.seq->tokens.data() + c.pos0;
    sc.n_tokens = c.n_tokens;
    sc.pos0 = c.pos0;
    sc.block_table = c.seq->blocks.data();
    sc.n_blocks = static_cast<int32_t>(c.seq->blocks.size());
    // A plain greedy row without logprobs or a grammar needs only its token.
    sc.logits = !c.logits ? LogitsWanted::None : c.seq->token_only() ? LogitsWanted::Greedy : LogitsWanted::Last;
    plan.chunks.push_back(sc);
  }
  return plan;
}

void Scheduler::update(const StepPlan& plan, const ForwardOutput& out, std::vector<Emission>& events) {
  // Check the runner's output before trusting it.
  bool ok = out.first_row.size() == plan.items.size() && out.vocab_size == limits_.vocab_size;
  for (size_t k = 0; ok && k < plan.items.size(); ++k) {
    if (!plan.items[k].logits) continue;
    const int64_t r = out.first_row[k];
    ok = r >= 0 && static_cast<size_t>((r + 1) * out.vocab_size) <= out.logits.size();
  }
  if (!ok) {
    fail(plan, "model runner returned malformed output", events);
    return;
  }
  ++counters_.steps;
  const bool routing_ok = !out.routing.empty() && out.routing.size() == static_cast<size_t>(plan.num_tokens) *
                                                                           out.routing_layers * out.routing_k;
  int64_t row0 = 0;  // the chunk's first token row in the step
  for (size_t k = 0; k < plan.items.size(); ++k) {
    const ScheduledChunk& c = plan.items[k];
    Sequence* s = c.seq;
    if (routing_ok && s->routing) s->record_routing(out, row0, c.pos0, c.n_tokens, limits_.num_experts);
    row0 += c.n_tokens;
    s->num_computed += c.n_tokens;
    kv_.commit(*s);
    if (!c.logits) continue;
    const uint64_t* allowed = nullptr;
    if (s->constraint) {
      if (!s->mask_ready) s->constraint->allowed(s->mask.data());  // else computed during the forward pass
      s->mask_ready = false;
      allowed = s->mask.data();
    }
    const int32_t greedy = out.argmax.empty() ? -1 : out.argmax[size_t(out.first_row[k])];
    const SampleResult r = s->sampler.sample(out.row(out.first_row[k]), allowed, greedy);
    if (s->constraint) s->constraint->advance(r.token);
    ++counters_.generation_tokens;
    ++counters_.class_generation_tokens[cls(s)];
    StreamEvent ev = s->accept(r, limits_.eos_id, limits_.max_context);
    if (ev.finish != FinishReason::None) {
      finish(s, events, std::move(ev));
    } else {
      events.push_back({s->callback, std::move(ev)});
    }
  }
  scheduled_.clear();
}

void Scheduler::fail(const StepPlan& plan, const std::string& message, std::vector<Emission>& events) {
  for (const ScheduledChunk& c : plan.items) finish(c.seq, events, c.seq->final_event(FinishReason::Error, message));
  scheduled_.clear();
}

bool Scheduler::cancel(uint64_t id, std::vector<Emission>& events) {
  auto it = seqs_.find(id);
  if (it == seqs_.end()) return false;
  Sequence* s = it->second.get();
  finish(s, events, s->final_event(FinishReason::Cancelled));
  return true;
}

void Scheduler::cancel_all(std::vector<Emission>& events, FinishReason why, const std::string& message) {
  std::vector<Sequence*> all(running_.begin(), running_.end());
  for (const auto& q : waiting_) all.insert(all.end(), q.begin(), q.end());
  for (Sequence* s : all) finish(s, events, s->final_event(why, message));
}

}  // namespace ms
