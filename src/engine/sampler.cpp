#include "engine/sampler.h"

#include <algorithm>
#include <atomic>
#include <cmath>
#include <cstring>
#include <limits>

#include "core/argmax.h"

namespace ms {

namespace {

constexpr float kNegInf = -std::numeric_limits<float>::infinity();
constexpr float kGreedyTemperature = 1e-5f;

// exp(x) for x <= 0 (arguments here are logit - max), within ~2 ulp; 0 below
// -87 and for -inf. Written without libm calls so that loops over the whole
// vocabulary vectorise.
inline float exp_nonpos(float x) {
  const float y = std::max(x, -87.0f) * 1.44269504088896341f;
  const int n = static_cast<int>(y - 0.5f);  // round to nearest (y <= 0)
  const float fn = static_cast<float>(n);
  float r = std::max(x, -87.0f) - fn * 0.693359375f;
  r = r + fn * 2.12194440e-4f;
  float p = 1.9875691500e-4f;
  p = p * r + 1.3981999507e-3f;
  p = p * r + 8.3334519073e-3f;
  p = p * r + 4.1665795894e-2f;
  p = p * r + 1.6666665459e-1f;
  p = p * r + 5.0000001201e-1f;
  p = p * r * r + r + 1.0f;
  uint32_t bits = static_cast<uint32_t>(n + 127) << 23;
  float scale;
  std::memcpy(&scale, &bits, sizeof scale);
  return x < -87.0f ? 0.0f : p * scale;
}

// A sum with independent partial results (no long dependency chain).
double sum_of(const float* x, int64_t n) {
  double a[8] = {0, 0, 0, 0, 0, 0, 0, 0};
  int64_t i = 0;
  for (; i + 8 <= n; i += 8)
    for (int j = 0; j < 8; ++j) a[j] += x[i + j];
  for (; i < n; ++i) a[0] += x[i];
  return ((a[0] + a[1]) + (a[2] + a[3])) + ((a[4] + a[5]) + (a[6] + a[7]));
}

// A fresh seed per request: one draw from std::random_device per process
// (its setup costs tens of microseconds, more in a VM, where it probes the
// CPU), then splitmix64 over a counter: distinct, well mixed seeds.
uint64_t random_seed() {
  static std::atomic<uint64_t> next{[] {
    std::random_device rd;
    return (static_cast<uint64_t>(rd()) << 32) ^ rd();
  }()};
  uint64_t z = next.fetch_add(0x9E3779B97F4A7C15ull, std::memory_order_relaxed) + 0x9E3779B97F4A7C15ull;
  z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
  z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
  return z ^ (z >> 31);
}

}  // namespace

Sampler::Sampler(const SamplingParams& params, const std::vector<int32_t>& prompt, int64_t vocab_size)
    : p_(params),
      vocab_(vocab_size),
      greedy_(params.temperature < kGreedyTemperature),
      plain_(params.logit_bias.empty() && params.repetition_penalty == 1.0f && params.presence_penalty == 0.0f &&
             params.frequency_penalty == 0.0f),
      rng_(params.has_seed ? params.seed : random_seed()) {
  if (p_.repetition_penalty != 1.0f) {
    prompt_set_ = prompt;
    std::sort(prompt_set_.begin(), prompt_set_.end());
    prompt_set_.erase(std::unique(prompt_set_.begin(), prompt_set_.end()), prompt_set_.end());
  }
}

void Sampler::record(int32_t token) { ++out_counts_[token]; }

void Sampler::apply_bias_and_penalties() {
  float* l = work_.data();
  for (const auto& [tok, bias] : p_.logit_bias)
    if (tok >= 0 && tok < vocab_) l[tok] += bias;

  const float rp = p_.repetition_penalty;
  if (rp != 1.0f && rp > 0.0f) {
    auto penalise = [&](int32_t t) {
      if (t < 0 || t >= vocab_) return;
      l[t] = l[t] < 0.0f ? l[t] * rp : l[t] / rp;
    };
    for (int32_t t : prompt_set_) penalise(t);
    for (const auto& [t, c] : out_counts_)
      if (!std::binary_search(prompt_set_.begin(), prompt_set_.end(), t)) penalise(t);
  }
  if (p_.presence_penalty != 0.0f || p_.frequency_penalty != 0.0f) {
    for (const auto& [t, c] : out_counts_) {
      if (t < 0 || t >= vocab_ || c <= 0) continue;
      l[t] -= p_.frequency_penalty * static_cast<float>(c) + p_.presence_penalty;
    }
  }
}

int32_t Sampler::argmax() const {
  int32_t best = 0;
  float bv = work_[0];
  for (int64_t i = 1; i < vocab_; ++i)
    if (work_[i] > bv) {  // strict: ties keep the lowest id
      bv = work_[i];
      best = static_cast<int32_t>(i);
    }
  return best;
}

// top_p in O(V): candidates are bucketed by the high bits of their
// probability (monotonic for positive floats, ~9% wide buckets), the buckets
// are walked from the top until the mass reaches top_p, and only the boundary
// bucket is sorted. Keeps the smallest most-probable set whose mass reaches
// top_p (at least one token); ties are broken by the lowest id.
void Sampler::apply_top_p() {
  constexpr int kShift = 20;
  constexpr int kBuckets = 1 << (31 - kShift);  // sign bit is 0
  bucket_mass_.assign(kBuckets, 0.0);
  for (int32_t i : idx_) {
    uint32_t bits;
    std::memcpy(&bits, &probs_[i], sizeof bits);
    bucket_mass_[bits >> kShift] += probs_[i];
  }
  double cum = 0.0;
  int boundary = -1;
  for (int b = kBuckets - 1; b >= 0; --b) {
    if (cum + bucket_mass_[b] >= p_.top_p) {
      boundary = b;
      break;
    }
    cum += bucket_mass_[b];
  }
  if (boundary < 0) return;  // rounding: everything stays
  std::vector<int32_t>& kept = scratch_;
  std::vector<int32_t>& edge = scratch2_;
  kept.clear();
  edge.clear();
  for (int32_t i : idx_) {
    uint32_t bits;
    std::memcpy(&bits, &probs_[i], sizeof bits);
    const int b = static_cast<int>(bits >> kShift);
    if (b > boundary) kept.push_back(i);
    else if (b == boundary) edge.push_back(i);
  }
  std::sort(edge.begin(), edge.end(), [&](int32_t a, int32_t b) {
    return probs_[a] > probs_[b] || (probs_[a] == probs_[b] && a < b);
  });
  for (int32_t i : edge) {
    kept.push_back(i);
    cum += probs_[i];
    if (cum >= p_.top_p) break;
  }
  idx_.swap(kept);
}

int32_t Sampler::draw() {
  const float inv_t = 1.0f / p_.temperature;
  const float* w = work_.data();
  const float m = max_value(w, vocab_);
  if (m == kNegInf) return argmax();

  // Candidates: all tokens (implicitly), or an explicit list in idx_.
  bool listed = false;
  probs_.resize(vocab_);
  float* pr = probs_.data();
  double sum = 0.0;
  if (p_.top_k > 0 && p_.top_k < vocab_) {
    idx_.clear();
    for (int64_t i = 0; i < vocab_; ++i)
      if (w[i] != kNegInf) idx_.push_back(static_cast<int32_t>(i));
    if (static_cast<size_t>(p_.top_k) < idx_.size()) {
      auto better = [&](int32_t a, int32_t b) { return w[a] > w[b] || (w[a] == w[b] && a < b); };
      std::nth_element(idx_.begin(), idx_.begin() + (p_.top_k - 1), idx_.end(), better);
      idx_.resize(p_.top_k);
    }
    listed = true;
    for (int32_t i : idx_) {
      pr[i] = exp_nonpos((w[i] - m) * inv_t);
      sum += pr[i];
    }
  } else {
    for (int64_t i = 0; i < vocab_; ++i) pr[i] = exp_nonpos((w[i] - m) * inv_t);
    sum = sum_of(pr, vocab_);
  }
  // The most probable token has exp(0) = 1 before normalisation.
  const float inv_sum = static_cast<float>(1.0 / sum);
  const float pmax = inv_sum;
  if (listed) {
    for (int32_t i : idx_) pr[i] *= inv_sum;
  } else {
    for (int64_t i = 0; i < vocab_; ++i) pr[i] *= inv_sum;
  }

  if (p_.top_p < 1.0f) {
    if (!listed) {
      idx_.clear();
      for (int64_t i = 0; i < vocab_; ++i)
        if (pr[i] > 0.0f) idx_.push_back(static_cast<int32_t>(i));
      listed = true;
    }
    apply_top_p();
  }
  // min_p: relative to the most probable token (which top_k/top_p always keep).
  const float cut = p_.min_p > 0.0f ? p_.min_p * pmax : 0.0f;

  double mass = 0.0;
  if (listed) {
    for (int32_t i : idx_)
      if (pr[i] >= cut) mass += pr[i];
  } else if (cut > 0.0f) {
    for (int64_t i = 0; i < vocab_; ++i)
      if (pr[i] >= cut) mass += pr[i];
  } else {
    mass = sum_of(pr, vocab_);
  }
  // One uniform double in [0, 1) from the top 53 bits.
  const double u = static_cast<double>(rng_() >> 11) * 0x1.0p-53 * mass;
  double acc = 0.0;
  int32_t last = -1;
  auto visit = [&](int32_t i) {
    if (pr[i] < cut || pr[i] <= 0.0f) return false;
    acc += pr[i];
    last = i;
    return u < acc;
  };
  if (listed) {
    for (int32_t i : idx_)
      if (visit(i)) return i;
  } else {
    for (int64_t i = 0; i < vocab_; ++i)
      if (visit(static_cast<int32_t>(i))) return static_cast<int32_t>(i);
  }
  return last >= 0 ? last : argmax();  // rounding at the very end of the mass
}

void Sampler::compute_logprobs(const float* logits, int32_t chosen, SampleResult& r) const {
  // work_ holds the raw logits only before bias/penalties; recompute from `logits`.
  auto val = [&](int64_t i) { return std::isnan(logits[i]) ? kNegInf : logits[i]; };
  float m = kNegInf;
  for (int64_t i = 0; i < vocab_; ++i) m = std::max(m, val(i));
  if (m == kNegInf) {
    r.logprob = kNegInf;
    return;
  }
  double sum = 0.0;
  for (int64_t i = 0; i < vocab_; ++i) sum += exp_nonpos(val(i) - m);
  const float lse = m + static_cast<float>(std::log(sum));
  r.logprob = val(chosen) - lse;
  const int64_t k = std::min<int64_t>(p_.logprobs, vocab_);
  if (k <= 0) return;
  // The best k in one pass: a small sorted list (best first, ties to the lowest id).
  std::vector<std::pair<float, int32_t>> top;
  top.reserve(k + 1);
  for (int64_t i = 0; i < vocab_; ++i) {
    const float v = val(i);
    if (static_cast<int64_t>(top.size()) == k && !(v > top.back().first)) continue;
    auto pos = std::upper_bound(top.begin(), top.end(), v,
                                [](float x, const std::pair<float, int32_t>& e) { return x > e.first; });
    top.insert(pos, {v, static_cast<int32_t>(i)});
    if (static_cast<int64_t>(top.size()) > k) top.pop_back();
  }
  r.top.reserve(top.size());
  for (const auto& [v, id] : top) r.top.push_back({id, v - lse});
}

SampleResult Sampler::sample(const float* logits, const uint64_t* allowed, int32_t greedy_token) {
  const bool plain = plain_;
  if (greedy_ && plain && !allowed) {  // the common greedy case: no copy of the row
    SampleResult r;
    r.token = greedy_token >= 0 && greedy_token < vocab_ ? greedy_token : greedy_argmax(logits, vocab_);
    record(r.token);
    if (p_.logprobs >= 0) compute_logprobs(logits, r.token, r);
    return r;
  }
  work_.resize(vocab_);
  for (int64_t i = 0; i < vocab_; ++i) work_[i] = std::isnan(logits[i]) ? kNegInf : logits[i];
  if (allowed) {
    bool any = false;
    for (int64_t w = 0; w * 64 < vocab_; ++w) {
      const uint64_t bits = allowed[w];
      any = any || bits != 0;
      if (bits == ~uint64_t{0}) continue;
      const int64_t end = std::min<int64_t>(vocab_, (w + 1) * 64);
      for (int64_t i = w * 64; i < end; ++i)
        if (!((bits >> (i - w * 64)) & 1)) work_[i] = kNegInf;
    }
    // Allowed tokens whose logit is -inf (or NaN) must still be reachable.
    if (any) {
      bool finite_left = false;
      for (int64_t i = 0; i < vocab_ && !finite_left; ++i) finite_left = work_[i] != kNegInf;
      if (!finite_left)
        for (int64_t i = 0; i < vocab_; ++i)
          if ((allowed[i >> 6] >> (i & 63)) & 1) work_[i] = 0.0f;
    }
  }
  if (!plain) {
    apply_bias_and_penalties();
    for (float& v : work_)
      if (std::isnan(v)) v = kNegInf;  // e.g. inf - inf from extreme parameters
    if (allowed)  // a bias of +inf must not bring back a masked token
      for (int64_t i = 0; i < vocab_; ++i)
        if (!((allowed[i >> 6] >> (i & 63)) & 1)) work_[i] = kNegInf;
  }

  SampleResult r;
  r.token = greedy_ ? argmax() : draw();
  record(r.token);
  if (p_.logprobs >= 0) compute_logprobs(logits, r.token, r);
  return r;
}

}  // namespace ms
