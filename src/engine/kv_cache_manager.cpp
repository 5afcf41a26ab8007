#include "engine/kv_cache_manager.h"

#include "core/error.h"

namespace ms {

void KvCacheManager::extend_hashes(Sequence& s, int32_t n_blocks) {
  const int32_t bs = pool_.block_size();
  while (static_cast<int32_t>(s.block_hashes.size()) < n_blocks) {
    const size_t i = s.block_hashes.size();
    const uint64_t parent = i == 0 ? BlockPool::kRootHash : s.block_hashes[i - 1];
    s.block_hashes.push_back(BlockPool::hash_block(parent, s.tokens.data() + i * bs, bs));
  }
}

std::vector<int32_t> KvCacheManager::find_cached_prefix(Sequence& s) {
  std::vector<int32_t> hit;
  if (!pool_.prefix_caching() || s.tokens.empty()) return hit;
  const int32_t bs = pool_.block_size();
  const int32_t max_blocks = static_cast<int32_t>((s.tokens.size() - 1) / bs);
  extend_hashes(s, max_blocks);
  for (int32_t i = 0; i < max_blocks; ++i) {
    const uint64_t parent = i == 0 ? BlockPool::kRootHash : s.block_hashes[i - 1];
    const int32_t b = pool_.lookup(s.block_hashes[i], parent, s.tokens.data() + static_cast<size_t>(i) * bs);
    if (b < 0) break;
    hit.push_back(b);
  }
  return hit;
}

int32_t KvCacheManager::count_free(const std::vector<int32_t>& blocks) const {
  int32_t n = 0;
  for (int32_t b : blocks) n += pool_.refcount(b) == 0;
  return n;
}

void KvCacheManager::adopt_prefix(Sequence& s, const std::vector<int32_t>& hit) {
  if (!s.blocks.empty() || s.num_computed != 0)
    throw Error(ErrorKind::Internal, "KvCacheManager::adopt_prefix: sequence already holds blocks");
  for (int32_t b : hit) {
    pool_.share(b);
    s.blocks.push_back(b);
  }
  s.num_computed = static_cast<int32_t>(hit.size()) * pool_.block_size();
  s.num_committed = static_cast<int32_t>(hit.size());
}

bool KvCacheManager::allocate(Sequence& s, int32_t n_new) {
  const int32_t need = blocks_needed(s, n_new);
  if (need > pool_.num_free()) return false;
  for (int32_t i = 0; i < need; ++i) {
    const int32_t b = pool_.allocate();
    if (b < 0) throw Error(ErrorKind::Internal, "KvCacheManager::allocate: pool ran dry");
    s.blocks.push_back(b);
  }
  return true;
}

void KvCacheManager::commit(Sequence& s) {
  if (!pool_.prefix_caching()) return;
  const int32_t bs = pool_.block_size();
  const int32_t full = std::min<int32_t>(s.num_computed / bs, static_cast<int32_t>(s.blocks.size()));
  if (full <= s.num_committed) return;
  extend_hashes(s, full);
  for (int32_t i = s.num_committed; i < full; ++i) {
    const uint64_t parent = i == 0 ? BlockPool::kRootHash : s.block_hashes[i - 1];
    pool_.register_block(s.blocks[i], s.block_hashes[i], parent, s.tokens.data() + static_cast<size_t>(i) * bs);
  }
  s.num_committed = full;
}

void KvCacheManager::free(Sequence& s) {
  for (auto it = s.blocks.rbegin(); it != s.blocks.rend(); ++it) pool_.release(*it);
  s.blocks.clear();
  s.num_computed = 0;
  s.num_committed = 0;
}

}  // namespace ms
