#include "engine/sequence.h"

#include <algorithm>

namespace ms {

Sequence::Sequence(uint64_t id_, Request&& r, const TokenText& text, int64_t vocab_size)
    : id(id_),
      tokens(std::move(r.prompt)),
      prompt_len(static_cast<int32_t>(tokens.size())),
      params(std::move(r.sampling)),
      sampler(params, tokens, vocab_size),
      detok(text, params.stop),
      callback(std::make_shared<EventCallback>(std::move(r.on_event))),
      constraint(std::move(r.constraint)) {
  if (constraint) mask.assign(static_cast<size_t>((vocab_size + 63) / 64), 0);
}

void Sequence::fill_counts(StreamEvent& ev) const {
  ev.prompt_tokens = prompt_len;
  ev.completion_tokens = num_generated();
  ev.cached_tokens = std::max(cached_tokens, 0);
}

StreamEvent Sequence::accept(const SampleResult& r, int32_t eos_id, int64_t max_context) {
  tokens.push_back(r.token);
  StreamEvent ev;
  ev.token = r.token;
  ev.logprob = r.logprob;
  ev.top_logprobs = r.top;

  const bool stop_token =
      (r.token == eos_id && !params.ignore_eos) ||
      std::find(params.stop_token_ids.begin(), params.stop_token_ids.end(), r.token) != params.stop_token_ids.end();
  if (stop_token) {
    ev.text = detok.flush();
    finish = FinishReason::Stop;
  } else {
    ev.text = detok.add(r.token);
    if (detok.stopped()) {
      finish = FinishReason::Stop;
    } else if (num_generated() >= params.max_tokens || static_cast<int64_t>(tokens.size()) >= max_context) {
      ev.text += detok.flush();
      finish = detok.stopped() ? FinishReason::Stop : FinishReason::Length;
    }
  }
  ev.finish = finish;
  fill_counts(ev);
  return ev;
}

StreamEvent Sequence::final_event(FinishReason why, const std::string& error) {
  StreamEvent ev;
  finish = why;
  ev.finish = why;
  ev.error = error;
  if (why == FinishReason::Length || why == FinishReason::Stop) ev.text = detok.flush();
  fill_counts(ev);
  return ev;
}

}  // namespace ms
