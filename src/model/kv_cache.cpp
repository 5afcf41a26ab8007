#include "model/kv_cache.h"

#include <algorithm>
#include <string>

#include "core/error.h"

namespace ms {

int64_t KvCache::bytes_per_block(const ModelConfig& cfg, int32_t block_size, ops::KvDType dtype) {
  const int64_t elem = dtype == ops::KvDType::F16 ? 2 : 4;
  return int64_t(2) * cfg.num_layers * block_size * cfg.num_kv_heads * cfg.head_dim * elem;
}

int32_t KvCache::blocks_for_mb(const ModelConfig& cfg, int64_t mb, int32_t block_size, ops::KvDType dtype) {
  // mb <= 2^30 (the flag's bound), so mb << 20 fits in int64.
  const int64_t n = (mb << 20) / bytes_per_block(cfg, block_size, dtype);
  return int32_t(std::min<int64_t>(n, 1 << 30));
}

KvCache::KvCache(Backend& backend, const ModelConfig& cfg, int32_t num_blocks, int32_t block_size,
                 ops::KvDType dtype)
    : num_blocks_(num_blocks),
      block_size_(block_size),
      dtype_(dtype),
      elem_(dtype == ops::KvDType::F16 ? 2 : 4),
      n_layers_(cfg.num_layers),
      n_kv_heads_(cfg.num_kv_heads),
      head_dim_(cfg.head_dim) {
  if (num_blocks <= 0 || block_size <= 0) bad_input("KV cache must hold at least one block");
  layer_elems_ = int64_t(num_blocks) * block_size * n_kv_heads_ * head_dim_;
  const size_t bytes = (size_t(layer_elems_ * n_layers_) * elem_ + 63) & ~size_t(63);
  k_ = backend.alloc_kv(bytes);
  if (k_) v_ = backend.alloc_kv(bytes);
  if (!k_ || !v_) bad_input("cannot allocate a KV cache of " + std::to_string(2 * bytes >> 20) + " MB");
}

ops::PagedKv KvCache::layer(int64_t l) const {
  ops::PagedKv p;
  p.k = k_->data() + size_t(l * layer_elems_) * elem_;
  p.v = v_->data() + size_t(l * layer_elems_) * elem_;
  p.dtype = dtype_;
  p.block_size = block_size_;
  p.n_kv_heads = n_kv_heads_;
  p.head_dim = head_dim_;
  return p;
}

}  // namespace ms
