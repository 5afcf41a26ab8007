// generation_job.cpp — engine requests of one API call (see generation_job.h).
#include "server/generation_job.h"

#include "engine/engine.h"
#include "governance/admin.h"
#include "tokenizer/tokenizer.h"

namespace ms {

GenerationJob::GenerationJob(ApiContext& ctx, std::shared_ptr<ServedModel> model, GenerationSpec spec,
                             std::vector<std::vector<int32_t>> prompts, std::vector<int32_t> max_tokens,
                             ResponseMeta meta, Clock::time_point arrival)
    : ctx_(ctx),
      model_(std::move(model)),
      spec_(std::move(spec)),
      prompts_(std::move(prompts)),
      max_tokens_(std::move(max_tokens)),
      meta_id_(meta.id),
      arrival_(arrival),
      builder_(spec_, std::move(meta),
               [this] {
                 std::vector<int64_t> lens;
                 for (const auto& p : prompts_) lens.push_back(static_cast<int64_t>(p.size()));
                 return lens;
               }(),
               [tok = model_->backend().tokenizer](int32_t id) { return tok ? tok->token_bytes(id) : std::string(); }) {
  ctx_.metrics.jobs_in_flight.fetch_add(1);
  if (ctx_.opts.models) model_latency_ = &ctx_.metrics.model_latency(model_->name());
  last_token_.resize(builder_.num_choices());
  if (model_->structured()) builder_.set_tool_calls_token(model_->structured()->tool_calls_token());
}

GenerationJob::~GenerationJob() {
  try {
    account(cancel_status_ > 0 ? cancel_status_ : 499);
  } catch (...) {
  }
  ctx_.metrics.jobs_in_flight.fetch_sub(1);
}

void GenerationJob::attach_governance(gov::Ticket ticket, gov::Headers headers, std::string request_body) {
  governed_ = true;
  ticket_ = std::move(ticket);
  gov_headers_ = std::move(headers);
  request_body_ = std::move(request_body);
}

bool GenerationJob::account(int status, gov::Governor::OnDurable on_durable, bool hold) {
  if (!governed_ || accounted_ || !ctx_.opts.governance) return false;
  accounted_ = true;
  gov::UsageRow row;
  row.request_id = meta_id_;
  row.ts_ms = gov::now_ms();
  row.key_id = ticket_.key_id;
  row.model = ticket_.model;
  const bool ran = cancel_status_ != -1;  // -1: the engine refused it; nothing ran
  row.prompt_tokens = ran ? builder_.prompt_tokens() : 0;
  row.cached_tokens = ran ? builder_.cached_tokens() : 0;
  row.completion_tokens = ran ? builder_.completion_tokens() : 0;
  row.status = status;
  row.stream = spec_.stream;
  row.ttft_ms = ttft_ms();
  row.duration_ms = std::chrono::duration<double, std::milli>(Clock::now() - arrival_).count();
  row.finish_reason = finish_note_;
  row.usage_context = usage_context_;
  std::optional<gov::PayloadRow> payload;
  if (ticket_.log_payload) {
    gov::PayloadRow p;
    p.request_id = row.request_id;
    p.ts_ms = row.ts_ms;
    p.key_id = row.key_id;
    p.model = row.model;
    p.status = status;
    p.latency_ms = row.duration_ms;
    p.request = std::move(request_body_);
    p.response = builder_.failed() || status != 200 ? dump_json(error_json(failure_error()))
                                                    : dump_json(builder_.response());  // a stream: assembled
    constexpr size_t kMaxPayload = 10u << 20;
    if (p.request.size() + p.response.size() > kMaxPayload) {
      p.truncated = true;
      p.request.clear();
      p.response.clear();
    }
    payload = std::move(p);
  }
  const bool wait = static_cast<bool>(on_durable);
  ctx_.opts.governance->complete(ticket_, std::move(row), std::move(payload), std::move(on_durable), hold);
  return wait;
}

std::optional<ApiError> GenerationJob::start(std::function<void()> notify) {
  notify_ = std::move(notify);
  Engine& engine = *model_->backend().engine;
  auto self = shared_from_this();
  const size_t n = static_cast<size_t>(spec_.n);
  for (size_t p = 0; p < prompts_.size(); ++p) {
    for (size_t j = 0; j < n; ++j) {
      const size_t choice = p * n + j;
      Request r;
      r.prompt = prompts_[p];
      r.sampling = spec_.sampling;
      r.sampling.max_tokens = max_tokens_[p];
      r.record_routing = spec_.return_expert_load;
      r.priority = priority_;
      if (r.sampling.has_seed) r.sampling.seed += choice;  // n>1: distinct but reproducible
      if (make_constraint_) r.constraint = make_constraint_();
      r.on_event = [self, choice](const StreamEvent& ev) { self->on_engine_event(choice, ev); };
      SubmitResult res = engine.submit(std::move(r));
      if (res.status != SubmitStatus::Ok) {
        for (uint64_t id : engine_ids_) engine.cancel(id);
        engine_ids_.clear();
        cancel_status_ = -1;  // refused: nothing to report beyond the error
        switch (res.status) {
          case SubmitStatus::QueueFull:
            return ApiError{429, "The server is busy: the request queue is full. Retry later.",
                            error_type_for_status(429), "", "queue_full"};
          case SubmitStatus::ShuttingDown:
            return ApiError{503, "The server is shutting down.", error_type_for_status(503), "", "shutting_down"};
          case SubmitStatus::TooLong:
            return ApiError{400, res.message.empty() ? "The request does not fit the model's context." : res.message,
                            error_type_for_status(400), spec_.chat ? "messages" : "prompt",
                            "context_length_exceeded"};
          default:
            return ApiError{400, res.message.empty() ? "The engine refused the request." : res.message,
                            error_type_for_status(400), "", "invalid_request"};
        }
      }
      engine_ids_.push_back(res.id);
    }
  }
  return std::nullopt;
}

void GenerationJob::on_engine_event(size_t choice, const StreamEvent& ev) {
  // Engine thread: never blocks beyond this short critical section.
  bool call = false;
  {
    std::lock_guard<std::mutex> lk(mu_);
    queue_.push_back({choice, ev, Clock::now()});
    if (!notified_) {
      notified_ = true;
      call = true;
    }
  }
  if (call && notify_) notify_();
}

std::string GenerationJob::drain() {
  std::vector<Queued> batch;
  {
    std::lock_guard<std::mutex> lk(mu_);
    batch.swap(queue_);
    notified_ = false;
  }
  std::string out;
  auto secs = [](Clock::duration d) { return std::chrono::duration<double>(d).count(); };
  bool was_failed = builder_.failed();
  for (const Queued& q : batch) {
    if (q.ev.token >= 0 && q.choice < last_token_.size()) {
      if (!first_token_) {
        first_token_ = q.at;
        ctx_.metrics.ttft.observe(secs(q.at - arrival_));
        if (model_latency_) model_latency_->ttft.observe(secs(q.at - arrival_));
      }
      if (last_token_[q.choice]) {
        ctx_.metrics.inter_token.observe(secs(q.at - *last_token_[q.choice]));
        if (model_latency_) model_latency_->inter_token.observe(secs(q.at - *last_token_[q.choice]));
      }
      last_token_[q.choice] = q.at;
    }
    const bool was_done = builder_.done();
    out += builder_.on_event(q.choice, q.ev);
    if (q.ev.finish != FinishReason::None) {
      const char* fr = finish_reason_string(q.ev.finish);
      ctx_.metrics.count_finish(fr);
      if (!finish_note_.empty()) finish_note_ += ",";
      finish_note_ += fr ? fr : "?";
      if (!was_done && builder_.done()) {
        ctx_.metrics.e2e.observe(secs(q.at - arrival_));
        if (model_latency_) model_latency_->e2e.observe(secs(q.at - arrival_));
      }
    }
  }
  // One choice failed: stop the others, the request cannot succeed.
  if (builder_.failed() && !was_failed && cancel_status_ == 0) cancel(500);
  return spec_.stream ? out : std::string();
}

void GenerationJob::cancel(int status) {
  if (cancel_status_ == 0) cancel_status_ = status;
  if (!ctx_.ready()) return;
  Engine& engine = *model_->backend().engine;
  for (uint64_t id : engine_ids_) engine.cancel(id);  // safe for finished ids
}

ApiError GenerationJob::failure_error() const {
  if (cancel_status_ == 503)
    return ApiError{503, "The server is shutting down; the request was cancelled.", error_type_for_status(503), "",
                    "shutting_down"};
  if (cancel_status_ == 499) return ApiError{499, "The client closed the connection.", "cancelled", "", ""};
  return ApiError{500, "Generation failed: " + builder_.failure(), error_type_for_status(500), "", "engine_error"};
}

int GenerationJob::final_status() const {
  return builder_.failed() ? failure_error().status : 200;
}

std::string GenerationJob::stream_tail() const {
  if (builder_.failed()) return ResponseBuilder::stream_error(failure_error());
  return builder_.stream_end();
}

HttpResp GenerationJob::final_response() const {
  HttpResp r;
  if (builder_.failed()) {
    ApiError e = failure_error();
    r.status = e.status;
    r.body = dump_json(error_json(e));
  } else {
    r.body = dump_json(builder_.response());
  }
  return r;
}

double GenerationJob::ttft_ms() const {
  if (!first_token_) return -1;
  return std::chrono::duration<double, std::milli>(*first_token_ - arrival_).count();
}

}  // namespace ms
