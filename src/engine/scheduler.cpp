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

void Scheduler::add(std::unique_ptr<Sequence> s) {
  Sequence* raw = s.get();
  seqs_[raw->id] = std::move(s);
  waiting_.push_back(raw);
}

Sequence* Scheduler::pick_victim() const {
  for (auto it = running_.rbegin(); it != running_.rend(); ++it)
    if (!scheduled_.count(*it)) return *it;
  return nullptr;
}

void Scheduler::preempt(Sequence* s) {
  kv_.free(*s);
  running_.erase(std::find(running_.begin(), running_.end(), s));
  waiting_.push_front(s);
  ++s->num_preemptions;
  ++counters_.preemptions;
}

void Scheduler::retire(Sequence* s) {
  kv_.free(*s);
  if (auto it = std::find(running_.begin(), running_.end(), s); it != running_.end()) running_.erase(it);
  if (auto it = std::find(waiting_.begin(), waiting_.end(), s); it != waiting_.end()) waiting_.erase(it);
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
  }
  waiting_.pop_front();
  running_.push_back(s);
  add_item(plan, s, n);
  return true;
}

StepPlan Scheduler::schedule(std::vector<Emission>& events) {
  StepPlan plan;
  scheduled_.clear();
  int32_t budget = opts_.max_step_tokens;

  // 1. One decode token per decoding sequence, oldest first. Victims of
  //    preemption are always at or after index i, so the loop stays valid.
  for (size_t i = 0; i < running_.size() && budget > 0;) {
    Sequence* s = running_[i];
    if (s->remaining() != 1) {
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
  // 2. Prefill chunks of running sequences, oldest first.
  for (size_t i = 0; i < running_.size() && budget > 0;) {
    Sequence* s = running_[i];
    if (s->remaining() <= 1 || scheduled_.count(s)) {
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
  // 3. Admissions, FIFO; the head blocks the queue when it does not fit.
  while (budget > 0 && !waiting_.empty() && static_cast<int32_t>(running_.size()) < opts_.max_batch) {
    Sequence* s = waiting_.front();
    if (!kv_.fits_pool(*s)) {
      finish(s, events, s->final_event(FinishReason::Length));
      continue;
    }
    if (!try_admit(s, budget, plan)) break;
    budget -= plan.items.back().n_tokens;
  }

  plan.chunks.reserve(plan.items.size());
  for (const ScheduledChunk& c : plan.items) {
    SeqChunk sc;
    sc.tokens = c.seq->tokens.data() + c.pos0;
    sc.n_tokens = c.n_tokens;
    sc.pos0 = c.pos0;
    sc.block_table = c.seq->blocks.data();
    sc.n_blocks = static_cast<int32_t>(c.seq->blocks.size());
    sc.logits = c.logits ? LogitsWanted::Last : LogitsWanted::None;
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
    const SampleResult r = s->sampler.sample(out.row(out.first_row[k]), allowed);
    if (s->constraint) s->constraint->advance(r.token);
    ++counters_.generation_tokens;
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
  all.insert(all.end(), waiting_.begin(), waiting_.end());
  for (Sequence* s : all) finish(s, events, s->final_event(why, message));
}

}  // namespace ms
