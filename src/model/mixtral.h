// mixtral.h — the Mixtral forward pass (and its dense Mistral/Llama case)
// over a batch of sequences, calling kernels only.
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
#pragma once
#include <cstdint>
#include <initializer_list>
#include <memory>
#include <vector>

#include "core/aligned.h"
#include "core/thread_pool.h"
#include "format/model_desc.h"
#include "kernels/ops.h"
#include "model/batch.h"
#include "model/kv_cache.h"
#include "model/weights.h"

namespace ms {

class Mixtral {
 public:
  Mixtral(const ModelDesc& desc, const QuantPlan& plan, ThreadPool& pool);
  const ModelConfig& config() const { return cfg_; }
  const MixtralWeights& weights() const { return w_; }

  // Runs one step. Chunks' block tables index into `kv`. Not thread-safe:
  // one step at a time.
  void forward(const std::vector<SeqChunk>& chunks, KvCache& kv, ForwardOutput& out);

 private:
  using FVec = std::vector<float, AlignedAllocator<float>>;
  void attention_block(int64_t l, const std::vector<SeqChunk>& chunks, KvCache& kv);
  void ffn_block(int64_t l, ForwardOutput& out);
  // Experts e0..e1-1 of a layer over their routed tokens (tok_of[e], with
  // weights wt_of[e]), added into proj_.
  void expert_group(const LayerWeights& lw, int64_t e0, int64_t e1, const std::vector<std::vector<int64_t>>& tok_of,
                    const std::vector<std::vector<float>>& wt_of);
  // Weights sharing the input X [n][cols] (Q, K and V; an expert's gate and
  // up): X is quantized once per activation format into slots[format]
  // (kActFormats of them) and a target per weight is appended to mt, for
  // ops::matmul_q_many.
  struct Target {
    const MatView* w;
    float* y;
    int64_t ldy;
  };
  static constexpr int kActFormats = ops::kActFormats;  // ops::ActFormat: None, Q8_32, Q8_256
  void add_shared_input(std::initializer_list<Target> targets, const float* X, int64_t n, ops::QuantizedActs* slots,
                        std::vector<ops::MatTarget>& mt);

  ModelConfig cfg_;
  ThreadPool& pool_;
  MixtralWeights w_;
  std::vector<float> inv_freq_;  // [head_dim/2]

  // Run state of the current step (T = tokens in the step).
  int64_t T_ = 0;
  std::vector<int32_t> pos_;     // [T] position of each token
  std::vector<float> rope_cs_;   // [T][head_dim] cos, then sin, of each token's rotation
  FVec x_;                       // [T][hidden] residual stream
  FVec h_;                       // [T][hidden] normed input of a block
  FVec q_;                       // [T][n_heads*head_dim]
  FVec k_, v_;                   // [T][n_kv_heads*head_dim]
  FVec att_;                     // [T][n_heads*head_dim]
  FVec proj_;                    // [T][hidden] block output
  FVec router_;                  // [T][n_experts]
  FVec xe_, g_, u_, ye_;         // expert scratch over an expert group's R routed rows:
                                 // [R][hidden], [R][ffn], [R][ffn], [R][hidden]
  ops::QuantizedActs acts_[kActFormats];  // the attention input, per activation format
  // Per expert of a group, kActFormats slots: its tokens' input (gate, up),
  // then its SiLU-gated hidden (down).
  std::vector<ops::QuantizedActs> expert_acts_;
};

}  // namespace ms
