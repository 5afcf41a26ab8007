// mixtral_runner.h — the real model behind the engine's ModelRunner interface:
// a Mixtral and the paged KV cache storage its block tables index into. It
// lives with the composition root, not in the model-agnostic engine.
#pragma once
#include "engine/model_runner.h"
#include "model/kv_cache.h"
#include "model/mixtral.h"

namespace ms {

class MixtralRunner : public ModelRunner {
 public:
  MixtralRunner(Mixtral& model, int32_t num_blocks, int32_t block_size, ops::KvDType kv_dtype = ops::KvDType::F32)
      : model_(model), kv_(model.backend(), model.config(), num_blocks, block_size, kv_dtype) {}
  int64_t vocab_size() const override { return model_.config().vocab_size; }
  int64_t max_context() const override { return model_.config().max_position_embeddings; }
  int32_t eos_id() const override { return model_.config().eos_id; }
  int64_t num_layers() const override { return model_.config().num_layers; }
  int64_t num_experts() const override { return model_.config().num_experts; }
  void forward(const std::vector<SeqChunk>& chunks, ForwardOutput& out) override {
    model_.forward(chunks, kv_, out);
  }
  const KvCache& kv() const { return kv_; }

 private:
  Mixtral& model_;
  KvCache kv_;
};

}  // namespace ms
