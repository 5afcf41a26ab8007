// generation_job.h — one API generation request in flight: its engine
// requests (n per prompt) and the ResponseBuilder they feed.
//
// Threads: engine callbacks run on the engine thread and only append the
// event to a mutex-guarded queue; the first event after a drain calls
// `notify` (which posts to the connection's strand — never blocks). All other
// methods run on the connection's strand. Events are timestamped on arrival
// for the latency histograms (TTFT, inter-token, end-to-end).
#pragma once
#include <chrono>
#include <cstdint>
#include <functional>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <vector>

#include "governance/governor.h"
#include "server/api_context.h"
#include "server/http_types.h"
#include "server/openai_response.h"

namespace ms {

class GenerationJob : public std::enable_shared_from_this<GenerationJob> {
 public:
  using Clock = std::chrono::steady_clock;

  // prompts: the tokenized prompts (one for chat); max_tokens: per prompt.
  // model: the served model that runs it (held until the job ends).
  GenerationJob(ApiContext& ctx, std::shared_ptr<ServedModel> model, GenerationSpec spec,
                std::vector<std::vector<int32_t>> prompts, std::vector<int32_t> max_tokens, ResponseMeta meta,
                Clock::time_point arrival);
  ~GenerationJob();

  // Governance: the admitted ticket, the caller's rate-limit headers and, when
  // the request was sampled for the inference table, its body.
  void attach_governance(gov::Ticket ticket, gov::Headers headers, std::string request_body);
  const gov::Headers& extra_headers() const { return gov_headers_; }
  // Completion for governance: credit back, usage row (and payload). Once; the
  // destructor calls it with 499 if nothing did. Returns true when
  // `on_durable` was handed on: it runs once, when the row is committed or
  // released without that (gov::Governor::complete, `hold` too), on the
  // governance writer thread; false: no row to wait for, nothing will call it.
  bool account(int status, gov::Governor::OnDurable on_durable = {}, bool hold = false);

  // Scheduling class of the engine requests (Batch API lines: Priority::Batch).
  void set_priority(Priority p) { priority_ = p; }
  // The usage row's usage_context ("" online, "batch" for batch lines).
  void set_usage_context(std::string c) { usage_context_ = std::move(c); }

  // Structured outputs: each engine request gets its own constraint from this.
  void set_constraint(std::function<std::shared_ptr<TokenConstraint>()> make) { make_constraint_ = std::move(make); }

  // Submits every engine request. On a refusal (queue full, too long, shutting
  // down) the ones already submitted are cancelled and the error is returned.
  std::optional<ApiError> start(std::function<void()> notify);
  // Takes the queued events; returns the SSE text they make (streams), else "".
  std::string drain();
  bool done() const { return builder_.done(); }
  bool stream() const { return spec_.stream; }
  // Cancels whatever is still running: status 499 (client gone) or 503 (shutdown).
  void cancel(int status);
  bool cancelled() const { return cancel_status_ != 0; }

  std::string stream_head() const { return builder_.stream_start(); }
  // Usage + [DONE], or an error event + [DONE] when the job failed.
  std::string stream_tail() const;
  // The non-stream response: the body, or the error (500, or 503 when cancelled).
  HttpResp final_response() const;
  // Status for the log: 200, or the failure's status.
  int final_status() const;

  const std::string& id() const { return meta_id_; }
  int64_t prompt_tokens() const { return builder_.prompt_tokens(); }
  int64_t completion_tokens() const { return builder_.completion_tokens(); }
  double ttft_ms() const;
  std::string finish_note() const { return finish_note_; }

 private:
  struct Queued {
    size_t choice;
    StreamEvent ev;
    Clock::time_point at;
  };
  void on_engine_event(size_t choice, const StreamEvent& ev);
  ApiError failure_error() const;

  ApiContext& ctx_;
  std::shared_ptr<ServedModel> model_;
  LatencyHistograms* model_latency_ = nullptr;  // the model's own (multi-model servers)
  GenerationSpec spec_;
  std::vector<std::vector<int32_t>> prompts_;
  std::vector<int32_t> max_tokens_;
  std::string meta_id_;
  Clock::time_point arrival_;
  ResponseBuilder builder_;
  std::vector<uint64_t> engine_ids_;
  std::function<std::shared_ptr<TokenConstraint>()> make_constraint_;
  Priority priority_ = Priority::Standard;
  int cancel_status_ = 0;
  std::string usage_context_;

  std::mutex mu_;                 // guards queue_ and notified_
  std::vector<Queued> queue_;
  bool notified_ = false;
  std::function<void()> notify_;

  // Strand-side bookkeeping for the metrics.
  std::optional<Clock::time_point> first_token_;
  std::vector<std::optional<Clock::time_point>> last_token_;
  std::string finish_note_;

  bool governed_ = false;
  bool accounted_ = false;
  gov::Ticket ticket_;
  gov::Headers gov_headers_;
  std::string request_body_;
};

}  // namespace ms
