// kv_cache.h — storage of the paged KV cache: per layer, K and V pools of
// [num_blocks][n_kv_heads][block_size][head_dim], in f32 or f16 (attention.h). Which block holds
// which positions of which sequence is the engine's business (block tables);
// this class only owns the memory, which the compute backend allocates
// (Backend::alloc_kv: host memory on the CPU, device memory on a GPU). Its
// size is fixed at start (--kv-cache-mb).
#pragma once
#include <cstdint>
#include <memory>

#include "format/model_desc.h"
#include "kernels/attention.h"
#include "kernels/backend.h"

namespace ms {

class KvCache {
 public:
  // Memory from `backend`. Error(BadInput) if it cannot be had.
  KvCache(Backend& backend, const ModelConfig& cfg, int32_t num_blocks, int32_t block_size,
          ops::KvDType dtype = ops::KvDType::F32);
  // Blocks that fit in `mb` megabytes for this model.
  static int32_t blocks_for_mb(const ModelConfig& cfg, int64_t mb, int32_t block_size,
                               ops::KvDType dtype = ops::KvDType::F32);
  static int64_t bytes_per_block(const ModelConfig& cfg, int32_t block_size, ops::KvDType dtype = ops::KvDType::F32);

  int32_t num_blocks() const { return num_blocks_; }
  int32_t block_size() const { return block_size_; }
  ops::PagedKv layer(int64_t l) const;
  ops::KvDType dtype() const { return dtype_; }
  size_t bytes() const { return size_t(layer_elems_ * n_layers_) * elem_ * 2; }

 private:
  int32_t num_blocks_, block_size_;
  ops::KvDType dtype_;
  size_t elem_;
  int64_t n_layers_, n_kv_heads_, head_dim_, layer_elems_;
  // Not zero-filled: pages are committed as blocks are first written, so the
  // resident size grows with use up to the configured bound.
  std::unique_ptr<Buffer> k_, v_;
};

}  // namespace ms
