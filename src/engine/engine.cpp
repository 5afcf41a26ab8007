// engine.cpp — Engine::Impl: request intake, the engine thread, stats.
//
// submit()/cancel() only touch a small inbox under the mutex; the scheduler,
// block pool and sequences belong to the thread that runs the steps (the
// engine thread, or the caller of run_to_completion). Events are delivered
// after each phase with no lock held, so callbacks may call submit()/cancel().
#include "engine/engine.h"

#include <algorithm>
#include <cmath>
#include <condition_variable>
#include <deque>
#include <future>
#include <mutex>
#include <thread>

#include "core/error.h"
#include "engine/scheduler.h"
#include "engine/sequence.h"
#include "engine/step_driver.h"

namespace ms {

const char* finish_reason_name(FinishReason r) {
  switch (r) {
    case FinishReason::Stop: return "stop";
    case FinishReason::Length: return "length";
    case FinishReason::Cancelled: return "cancelled";
    case FinishReason::Error: return "error";
    case FinishReason::None: break;
  }
  return "none";
}

const char* priority_name(Priority p) {
  switch (p) {
    case Priority::Provisioned: return "provisioned";
    case Priority::Standard: return "standard";
    case Priority::Batch: return "batch";
  }
  return "standard";
}

namespace {

constexpr int32_t kMaxLogprobs = 20;

SubmitResult refuse(SubmitStatus st, std::string msg) {
  SubmitResult r;
  r.status = st;
  r.message = std::move(msg);
  return r;
}

bool finite(float x) { return std::isfinite(x); }

}  // namespace

struct Engine::Impl {
  Impl(ModelRunner& r, const TokenText& t, EngineOptions o)
      : runner(r),
        text(t),
        opts(o),
        limits{r.vocab_size(), r.max_context(), r.eos_id(), r.num_experts()},
        sched(o, limits) {
    if (limits.vocab_size <= 0) bad_input("engine: the model reports an empty vocabulary");
    if (limits.max_context <= 0) bad_input("engine: the model reports a non-positive context length");
    snap.kv_blocks_total = opts.num_blocks;
    snap.expert_tokens.assign(static_cast<size_t>(std::max<int64_t>(0, r.num_layers() * r.num_experts())), 0);
  }

  ModelRunner& runner;
  const TokenText& text;
  EngineOptions opts;
  RunnerLimits limits;
  Scheduler sched;  // owned by the stepping thread
  ForwardOutput fwd;

  mutable std::mutex mu;
  std::condition_variable cv;
  std::deque<std::unique_ptr<Sequence>> inbox;
  std::vector<uint64_t> cancels;
  bool stopping = false;
  bool stopped = false;
  bool thread_running = false;
  bool stepping_on_caller = false;
  StepDriver* driver = nullptr;  // steps run on its thread (start(driver))
  uint64_t next_id = 1;
  EngineStats snap;  // published after every iteration
  std::thread thread;

  SubmitResult validate(const Request& r) const;
  SubmitResult enqueue(Request&& r, bool enforce_queue_limit);
  void deliver(std::vector<Emission>& events);
  bool iterate();          // one round: intake, cancels, one step; false if idle
  bool iterate_guarded();  // iterate(), ending what is in flight on an internal error
  void publish(const ForwardOutput* out);
  void loop();
  void shutdown_all();
};

SubmitResult Engine::Impl::validate(const Request& r) const {
  const SamplingParams& p = r.sampling;
  const int64_t V = limits.vocab_size;
  if (r.prompt.empty()) return refuse(SubmitStatus::Invalid, "the prompt is empty");
  if (static_cast<int>(r.priority) >= kNumPriorities) return refuse(SubmitStatus::Invalid, "unknown priority class");
  for (int32_t t : r.prompt)
    if (t < 0 || t >= V)
      return refuse(SubmitStatus::Invalid, "prompt token id " + std::to_string(t) + " is outside the vocabulary [0, " +
                                               std::to_string(V) + ")");
  if (p.max_tokens < 1)
    return refuse(SubmitStatus::Invalid, "max_tokens must be at least 1 (got " + std::to_string(p.max_tokens) + ")");
  if (!finite(p.temperature) || p.temperature < 0.0f)
    return refuse(SubmitStatus::Invalid, "temperature must be >= 0");
  if (!finite(p.top_p) || p.top_p <= 0.0f || p.top_p > 1.0f) return refuse(SubmitStatus::Invalid, "top_p must be in (0, 1]");
  if (p.top_k < -1) return refuse(SubmitStatus::Invalid, "top_k must be >= 0 (0 or -1: disabled)");
  if (!finite(p.min_p) || p.min_p < 0.0f || p.min_p > 1.0f) return refuse(SubmitStatus::Invalid, "min_p must be in [0, 1]");
  if (!finite(p.repetition_penalty) || p.repetition_penalty <= 0.0f)
    return refuse(SubmitStatus::Invalid, "repetition_penalty must be > 0");
  if (!finite(p.presence_penalty) || !finite(p.frequency_penalty))
    return refuse(SubmitStatus::Invalid, "presence_penalty and frequency_penalty must be finite");
  if (p.logprobs < -1 || p.logprobs > kMaxLogprobs)
    return refuse(SubmitStatus::Invalid, "logprobs must be between 0 and " + std::to_string(kMaxLogprobs));
  for (const auto& [tok, bias] : p.logit_bias) {
    if (tok < 0 || tok >= V)
      return refuse(SubmitStatus::Invalid, "logit_bias token id " + std::to_string(tok) + " is outside the vocabulary");
    if (std::isnan(bias)) return refuse(SubmitStatus::Invalid, "logit_bias values must be numbers");
  }
  for (int32_t t : p.stop_token_ids)
    if (t < 0 || t >= V)
      return refuse(SubmitStatus::Invalid, "stop_token_ids entry " + std::to_string(t) + " is outside the vocabulary");

  const int64_t n = static_cast<int64_t>(r.prompt.size());
  if (n + p.max_tokens > limits.max_context)
    return refuse(SubmitStatus::TooLong, "the prompt (" + std::to_string(n) + " tokens) plus max_tokens (" +
                                             std::to_string(p.max_tokens) + ") exceeds the model's context of " +
                                             std::to_string(limits.max_context) + " tokens");
  const int64_t pool_tokens = static_cast<int64_t>(opts.num_blocks) * opts.block_size;
  if (n > pool_tokens)
    return refuse(SubmitStatus::TooLong, "the prompt (" + std::to_string(n) + " tokens) does not fit in the KV cache (" +
                                             std::to_string(pool_tokens) + " tokens); raise --kv-cache-mb");
  return {};
}

SubmitResult Engine::Impl::enqueue(Request&& r, bool enforce_queue_limit) {
  SubmitResult res = validate(r);
  if (res.status != SubmitStatus::Ok) return res;
  auto seq = std::make_unique<Sequence>(0, std::move(r), text, limits.vocab_size);  // outside the lock
  StepDriver* drv = nullptr;
  {
    std::lock_guard<std::mutex> lk(mu);
    if (stopping || stopped) return refuse(SubmitStatus::ShuttingDown, "the engine is shutting down");
    if (enforce_queue_limit && static_cast<int64_t>(inbox.size()) + snap.waiting >= opts.max_queue)
      return refuse(SubmitStatus::QueueFull, "too many requests are waiting (" + std::to_string(opts.max_queue) + ")");
    res.id = next_id++;
    seq->id = res.id;
    inbox.push_back(std::move(seq));
    cv.notify_all();
    drv = driver;
  }
  if (drv) drv->wake();
  return res;
}

void Engine::Impl::deliver(std::vector<Emission>& events) {
  for (Emission& e : events) {
    if (!e.callback || !*e.callback) continue;
    try {
      (*e.callback)(e.event);
    } catch (...) {
      // A callback must not take the engine down.
    }
  }
  events.clear();
}

void Engine::Impl::publish(const ForwardOutput* out) {
  std::lock_guard<std::mutex> lk(mu);
  snap.running = static_cast<int64_t>(sched.num_running());
  snap.waiting = static_cast<int64_t>(sched.num_waiting());
  snap.kv_blocks_total = sched.pool().num_blocks();
  snap.kv_blocks_used = sched.pool().num_used();
  snap.prefix_queries = sched.pool().counters().prefix_queries;
  snap.prefix_hits = sched.pool().counters().prefix_hits;
  snap.preemptions = sched.counters().preemptions;
  snap.prompt_tokens = sched.counters().prompt_tokens;
  snap.generation_tokens = sched.counters().generation_tokens;
  snap.steps = sched.counters().steps;
  for (int c = 0; c < kNumPriorities; ++c) {
    const Priority p = static_cast<Priority>(c);
    ClassStats& cs = snap.classes[c];
    cs.waiting = static_cast<int64_t>(sched.num_waiting(p));
    cs.running = static_cast<int64_t>(sched.num_running(p));
    cs.admitted = sched.counters().class_admitted[c];
    cs.preempted = sched.counters().class_preempted[c];
    cs.prompt_tokens = sched.counters().class_prompt_tokens[c];
    cs.generation_tokens = sched.counters().class_generation_tokens[c];
  }
  if (out && !out->expert_tokens.empty()) {
    if (snap.expert_tokens.size() < out->expert_tokens.size()) snap.expert_tokens.resize(out->expert_tokens.size(), 0);
    for (size_t i = 0; i < out->expert_tokens.size(); ++i) snap.expert_tokens[i] += out->expert_tokens[i];
  }
}

bool Engine::Impl::iterate() {
  std::vector<Emission> events;
  std::vector<std::unique_ptr<Sequence>> fresh;
  std::vector<uint64_t> to_cancel;
  {
    std::lock_guard<std::mutex> lk(mu);
    while (!inbox.empty()) {
      fresh.push_back(std::move(inbox.front()));
      inbox.pop_front();
    }
    to_cancel.swap(cancels);
  }
  for (auto& s : fresh) sched.add(std::move(s));
  for (uint64_t id : to_cancel) sched.cancel(id, events);
  if (!sched.has_work()) {
    publish(nullptr);
    deliver(events);
    return false;
  }

  StepPlan plan = sched.schedule(events);
  // Reused: the logits keep the last step's size, so a runner's resize to the
  // same row count does not zero-fill them again (25 MB a step at 200 rows).
  ForwardOutput& out = fwd;
  out.first_row.clear();
  out.expert_tokens.clear();
  out.want_routing = std::any_of(plan.items.begin(), plan.items.end(),
                                 [](const ScheduledChunk& c) { return c.seq->routing != nullptr; });
  // The greedy tokens come with the logits when some row that gets logits
  // samples plainly greedy (with logprobs: a token-only row gets its token
  // without logits, LogitsWanted::Greedy, whatever this says).
  out.want_argmax = std::any_of(plan.items.begin(), plan.items.end(), [](const ScheduledChunk& c) {
    return c.logits && c.seq->argmax_samples() && !c.seq->token_only();
  });
  bool ran = false;
  if (!plan.empty()) {
    out.vocab_size = limits.vocab_size;
    // The masks of constrained sequences that sample after this step are
    // computed on a second thread while the model runs (their state only
    // changes in update()); unconstrained steps start no thread.
    std::vector<Sequence*> masked;
    for (const ScheduledChunk& c : plan.items)
      if (c.logits && c.seq->constraint) masked.push_back(c.seq);
    std::future<void> masks;
    if (!masked.empty())
      masks = std::async(std::launch::async, [&masked] {
        for (Sequence* s : masked) {
          s->constraint->allowed(s->mask.data());
          s->mask_ready = true;
        }
      });
    try {
      runner.forward(plan.chunks, out);
      ran = true;
    } catch (const std::exception& e) {
      if (masks.valid()) masks.wait();
      sched.fail(plan, std::string("model error: ") + e.what(), events);
    } catch (...) {
      if (masks.valid()) masks.wait();
      sched.fail(plan, "model error", events);
    }
    if (masks.valid()) {
      try {
        masks.get();
      } catch (...) {
        for (Sequence* s : masked) s->mask_ready = false;  // recomputed (and rethrown) in update()
      }
    }
    if (ran) sched.update(plan, out, events);
  } else if (events.empty()) {
    // Cannot happen by construction (see scheduler.h); never spin on it.
    sched.cancel_all(events, FinishReason::Error, "internal error: the scheduler could not make progress");
  }
  publish(ran ? &out : nullptr);
  deliver(events);
  return true;
}

void Engine::Impl::shutdown_all() {
  std::vector<Emission> events;
  std::deque<std::unique_ptr<Sequence>> left;
  {
    std::lock_guard<std::mutex> lk(mu);
    left.swap(inbox);
    cancels.clear();
  }
  for (auto& s : left) sched.add(std::move(s));
  sched.cancel_all(events);
  publish(nullptr);
  deliver(events);
}

bool Engine::Impl::iterate_guarded() {
  try {
    return iterate();
  } catch (const std::exception& e) {
    // An internal error must not take the server down: end what is in
    // flight with the error and carry on.
    std::vector<Emission> events;
    try {
      sched.cancel_all(events, FinishReason::Error, std::string("internal error: ") + e.what());
    } catch (...) {
    }
    deliver(events);
    return true;
  }
}

void Engine::Impl::loop() {
  while (true) {
    {
      std::unique_lock<std::mutex> lk(mu);
      cv.wait(lk, [&] { return stopping || !inbox.empty() || !cancels.empty() || sched.has_work(); });
      if (stopping) break;
    }
    iterate_guarded();
  }
  shutdown_all();
}

Engine::Engine(ModelRunner& runner, const TokenText& text, EngineOptions opts)
    : impl_(std::make_unique<Impl>(runner, text, opts)) {}

Engine::~Engine() { stop(); }

void Engine::start() {
  std::lock_guard<std::mutex> lk(impl_->mu);
  if (impl_->thread_running || impl_->driver || impl_->stopped) return;
  if (impl_->stepping_on_caller) throw Error(ErrorKind::Internal, "Engine::start during run_to_completion");
  impl_->thread_running = true;
  impl_->thread = std::thread([this] { impl_->loop(); });
}

void Engine::start(StepDriver& driver) {
  {
    std::lock_guard<std::mutex> lk(impl_->mu);
    if (impl_->thread_running || impl_->driver || impl_->stopped) return;
    if (impl_->stepping_on_caller) throw Error(ErrorKind::Internal, "Engine::start during run_to_completion");
    impl_->driver = &driver;
  }
  driver.attach(this);
}

bool Engine::drive_step() {
  {
    std::lock_guard<std::mutex> lk(impl_->mu);
    if (impl_->stopping || impl_->stopped) return false;
  }
  return impl_->iterate_guarded();
}

void Engine::stop() {
  bool join = false;
  StepDriver* drv = nullptr;
  {
    std::lock_guard<std::mutex> lk(impl_->mu);
    if (impl_->stopped) return;
    impl_->stopping = true;
    join = impl_->thread_running;
    drv = impl_->driver;
    impl_->cv.notify_all();
  }
  if (join) {
    impl_->thread.join();
  } else {
    if (drv) drv->detach(this);  // from here on this thread owns the scheduler
    impl_->shutdown_all();
  }
  std::lock_guard<std::mutex> lk(impl_->mu);
  impl_->thread_running = false;
  impl_->stopped = true;
}

SubmitResult Engine::submit(Request r) { return impl_->enqueue(std::move(r), true); }

void Engine::cancel(uint64_t id) {
  StepDriver* drv = nullptr;
  {
    std::lock_guard<std::mutex> lk(impl_->mu);
    if (impl_->stopped || impl_->stopping) return;
    impl_->cancels.push_back(id);
    impl_->cv.notify_all();
    drv = impl_->driver;
  }
  if (drv) drv->wake();
}

EngineStats Engine::stats() const {
  std::lock_guard<std::mutex> lk(impl_->mu);
  EngineStats s = impl_->snap;
  s.waiting += static_cast<int64_t>(impl_->inbox.size());
  for (const auto& q : impl_->inbox) ++s.classes[static_cast<int>(q->priority)].waiting;
  return s;
}

void Engine::run_to_completion(std::vector<Request> requests) {
  {
    std::lock_guard<std::mutex> lk(impl_->mu);
    if (impl_->thread_running || impl_->driver)
      throw Error(ErrorKind::Internal, "Engine::run_to_completion while the engine thread runs");
    impl_->stepping_on_caller = true;
  }
  struct Reset {
    Impl* impl;
    ~Reset() {
      std::lock_guard<std::mutex> lk(impl->mu);
      impl->stepping_on_caller = false;
    }
  } reset{impl_.get()};

  for (Request& r : requests) {
    auto cb = r.on_event;
    SubmitResult res = impl_->enqueue(std::move(r), false);
    if (res.status != SubmitStatus::Ok && cb) {
      StreamEvent ev;
      ev.finish = FinishReason::Error;
      ev.error = res.message;
      cb(ev);
    }
  }
  while (impl_->iterate()) {
  }
}

}  // namespace ms
