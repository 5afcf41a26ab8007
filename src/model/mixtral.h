// mixtral.h — the Mixtral forward pass (and its dense Mistral/Llama case)
// over a batch of sequences, as ops of a compute backend (kernels/backend.h).
//
// One step (batch.h) processes T tokens from several sequences together:
//   x[T][hidden] = embed(tokens)
//   per layer:  h = rmsnorm(x); q,k,v = h·Wq,Wk,Wv; rope(q,k); K/V -> paged cache;
//               x += attention(q, cache)·Wo
//               h = rmsnorm(x); router: softmax(h·Wr) over all experts (f32),
//               top-k, renormalise to sum 1; tokens grouped by expert and each
//               chosen expert runs once over its tokens: w2(silu(w1·h) ⊙ w3·h);
//               x += Σ weight_e · expert_e(h)
//   logits = rmsnorm(x)·Wout for the rows asked for.
// Every matrix is read once per step however many tokens use it; at batch 1
// only the k chosen experts of each layer are read.
//
// The weights are here (weights.h); the activations of a step are the
// backend's run state.
#pragma once
#include <cstdint>
#include <memory>
#include <vector>

#include "core/thread_pool.h"
#include "format/model_desc.h"
#include "kernels/backend.h"
#include "model/batch.h"
#include "model/kv_cache.h"
#include "model/weights.h"

namespace ms {

class Mixtral {
 public:
  // On `backend` (which must outlive the model), which prepares the weights.
  Mixtral(const ModelDesc& desc, const QuantPlan& plan, Backend& backend);
  // On the CPU backend over `pool`.
  Mixtral(const ModelDesc& desc, const QuantPlan& plan, ThreadPool& pool);
  const ModelConfig& config() const { return cfg_; }
  const MixtralWeights& weights() const { return w_; }
  // The backend the model runs on (its KV cache's memory comes from it too).
  Backend& backend() const { return be_; }

  // Runs one step. Chunks' block tables index into `kv`. Not thread-safe:
  // one step at a time.
  void forward(const std::vector<SeqChunk>& chunks, KvCache& kv, ForwardOutput& out);

 private:
  ModelConfig cfg_;
  std::unique_ptr<Backend> own_backend_;  // when constructed without one
  Backend& be_;
  MixtralWeights w_;
  std::unique_ptr<RunState> rs_;
  std::vector<StepSeq> seqs_;  // the step's chunks as the backend takes them
};

}  // namespace ms
