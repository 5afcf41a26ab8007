// kv_cache_manager.h — a sequence's view of the block pool.
//
// Bridges Sequence and BlockPool: finds a sequence's longest cached prefix of
// full blocks (never all of its tokens: the last one is always computed so
// its logits exist), grows block tables for the tokens of the next chunk,
// registers blocks in the prefix cache once all their tokens are computed,
// and frees a sequence's blocks (last block first, so that the blocks of a
// shared prefix are the last to be evicted).
#pragma once
#include <cstdint>
#include <vector>

#include "engine/block_pool.h"
#include "engine/sequence.h"

namespace ms {

class KvCacheManager {
 public:
  explicit KvCacheManager(BlockPool& pool) : pool_(pool) {}

  BlockPool& pool() { return pool_; }
  const BlockPool& pool() const { return pool_; }
  int32_t block_size() const { return pool_.block_size(); }

  // Blocks needed for `n_tokens` positions.
  int32_t blocks_for(int64_t n_tokens) const {
    return static_cast<int32_t>((n_tokens + pool_.block_size() - 1) / pool_.block_size());
  }
  // Whether the whole sequence could ever be held by the pool.
  bool fits_pool(const Sequence& s) const { return blocks_for(static_cast<int64_t>(s.tokens.size())) <= pool_.num_blocks(); }

  // For a sequence holding no blocks: the cached blocks of its longest prefix.
  std::vector<int32_t> find_cached_prefix(Sequence& s);
  // Number of blocks among `blocks` that are free now (sharing them uses up free blocks).
  int32_t count_free(const std::vector<int32_t>& blocks) const;
  // Takes the blocks found by find_cached_prefix: the sequence's computed prefix.
  void adopt_prefix(Sequence& s, const std::vector<int32_t>& hit);
  // New blocks the sequence needs to compute `n_new` more tokens.
  int32_t blocks_needed(const Sequence& s, int32_t n_new) const {
    return std::max(0, blocks_for(static_cast<int64_t>(s.num_computed) + n_new) - static_cast<int32_t>(s.blocks.size()));
  }
  // Grows the table for `n_new` more tokens; false (and no change) if the pool is short.
  bool allocate(Sequence& s, int32_t n_new);
  // After a step: registers the newly completed full blocks in the prefix cache.
  void commit(Sequence& s);
  // Drops all the sequence's blocks; num_computed becomes 0.
  void free(Sequence& s);

 private:
  void extend_hashes(Sequence& s, int32_t n_blocks);

  BlockPool& pool_;
};

}  // namespace ms
