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
  if (r.record_routing) routing = std::make_shared<ExpertLoad>();
  priority = r.priority;
}

void Sequence::record_routing(const ForwardOutput& out, int64_t row0, int32_t pos0, int32_t n, int64_t n_experts) {
  if (!routing || out.routing_layers <= 0 || out.routing_k <= 0 || n_experts <= 0) return;
  const int64_t L = out.routing_layers, K = out.routing_k;
  ExpertLoad& r = *routing;
  if (r.layers == 0) {
    r.layers = int32_t(L);
    r.top_k = int32_t(K);
    r.experts = int32_t(n_experts);
    r.prompt.assign(size_t(L * n_experts), 0);
    r.completion.assign(size_t(L * n_experts), 0);
  }
  if (r.layers != L || r.top_k != K) return;  // cannot change mid-request
  for (int32_t i = 0; i < n; ++i) {
    const int32_t pos = pos0 + i;
    if (pos < routed_upto) continue;  // recomputed after a preemption: counted already
    const int32_t* ids = out.routing.data() + (row0 + i) * L * K;
    const bool in_prompt = pos < prompt_len;
    auto& counts = in_prompt ? r.prompt : r.completion;
    for (int64_t l = 0; l < L; ++l)
      for (int64_t j = 0; j < K; ++j) {
        const int32_t e = ids[l * K + j];
        if (e >= 0 && e < n_experts) counts[size_t(l * n_experts + e)] += 1;
      }
    if (in_prompt) {
      ++r.prompt_tokens;
    } else {
      ++r.completion_tokens;
      if (r.completion_tokens <= ExpertLoad::kMaxRoutedTokens)
        r.completion_routes.insert(r.completion_routes.end(), ids, ids + L * K);
    }
    routed_upto = pos + 1;
  }
}

void Sequence::fill_counts(StreamEvent& ev) const {
  if (finish != FinishReason::None && routing) ev.expert_load = routing;
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
