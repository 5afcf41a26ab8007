// sampler.h — turns one row of logits into the next token, per request.
//
// Order of operations (each step only when enabled):
//   logit_bias -> repetition_penalty (HF/CTRL rule over prompt + output tokens:
//   logit < 0 ? logit * p : logit / p) -> presence/frequency penalties (OpenAI
//   rule over output tokens: logit -= count * frequency + (count > 0) * presence)
//   -> then either greedy (temperature < 1e-5: argmax, ties to the lowest id)
//   or temperature -> top_k -> top_p -> min_p (relative to the top
//   probability) -> one draw from the request's own RNG.
// The RNG (std::mt19937_64) is seeded from `seed` when has_seed, otherwise
// with a fresh seed (std::random_device once per process, then splitmix64),
// and is only advanced by this request's draws, so a seed gives the same
// tokens whatever else is in the batch.
// Logprobs are the log-softmax of the RAW model logits (before bias, penalties
// and temperature), as vLLM's default: the chosen token's plus the top k.
#pragma once
#include <cstdint>
#include <random>
#include <unordered_map>
#include <vector>

#include "engine/request.h"

namespace ms {

struct SampleResult {
  int32_t token = -1;
  float logprob = 0.0f;                  // only when params.logprobs >= 0
  std::vector<TokenLogprob> top;         // params.logprobs entries, best first
};

class Sampler {
 public:
  Sampler(const SamplingParams& params, const std::vector<int32_t>& prompt, int64_t vocab_size);

  // Samples from `logits` (vocab_size floats) and records the token as output.
  // With `allowed` (a bit per token, see TokenConstraint) every other token's
  // logit is -inf before anything else; logprobs stay those of the raw logits.
  // `greedy_token` (>= 0): the row's greedy_argmax (core/argmax.h), computed
  // with the logits (ForwardOutput::argmax); a plain greedy sample takes it
  // instead of reading the row again.
  SampleResult sample(const float* logits, const uint64_t* allowed = nullptr, int32_t greedy_token = -1);
  // Records an output token without sampling (not normally needed).
  void record(int32_t token);

  bool greedy() const { return greedy_; }
  // Greedy with no bias or penalties: the token is the row's greedy_argmax
  // (when no mask applies either).
  bool plain_greedy() const { return greedy_ && plain_; }
  // Plain greedy without logprobs: sample() reads nothing of the row but its
  // greedy token, so the row's logits need not exist (LogitsWanted::Greedy).
  bool token_only() const { return plain_greedy() && p_.logprobs < 0; }
  // The processed logits of the last sample() call (after bias/penalties, before
  // temperature); not filled by plain greedy calls (no bias, penalties or mask).
  const std::vector<float>& last_processed() const { return work_; }

 private:
  void apply_bias_and_penalties();
  int32_t argmax() const;
  int32_t draw();
  void apply_top_p();
  void compute_logprobs(const float* logits, int32_t chosen, SampleResult& r) const;

  SamplingParams p_;
  int64_t vocab_;
  bool greedy_;
  bool plain_;  // no logit_bias, no penalties
  std::vector<int32_t> prompt_set_;                 // sorted unique prompt token ids
  std::unordered_map<int32_t, int32_t> out_counts_; // output token -> count
  std::mt19937_64 rng_;
  std::vector<float> work_;
  std::vector<int32_t> idx_;
  std::vector<float> probs_;              // by token id, valid for idx_
  std::vector<double> bucket_mass_;
  std::vector<int32_t> scratch_, scratch2_;
};

}  // namespace ms
