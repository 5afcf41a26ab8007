// block_pool.h — the paged KV cache's block pool, with prefix caching.
//
// The pool owns `num_blocks` blocks of `block_size` token slots. A block in use
// has a refcount > 0 (several sequences may share a cached prefix block). A
// block whose refcount drops to 0 goes to the free list:
//   - blocks without a hash go to the FRONT (reused first, nothing lost),
//   - blocks with a hash (a full, computed block registered in the prefix
//     cache) go to the BACK and stay findable by their hash until a fresh block
//     is needed and they reach the front: LRU eviction of cached free blocks.
// A cached free block that is hit again is taken off the free list.
//
// Prefix hashes are chained: hash(block i) = H(hash(block i-1), its tokens),
// so equal hashes mean equal whole prefixes (up to 64-bit collisions, which
// the pool further guards against by comparing the block's own tokens).
//
// Not thread-safe: only the engine thread touches it.
#pragma once
#include <cstdint>
#include <unordered_map>
#include <vector>

namespace ms {

struct BlockPoolCounters {
  int64_t prefix_queries = 0;  // tokens looked up in the prefix cache
  int64_t prefix_hits = 0;     // tokens found
  int64_t evictions = 0;       // cached blocks dropped to make room
};

class BlockPool {
 public:
  static constexpr uint64_t kRootHash = 0x6d6f657365727665ull;  // parent hash of block 0

  BlockPool(int32_t num_blocks, int32_t block_size, bool prefix_caching);

  int32_t num_blocks() const { return num_blocks_; }
  int32_t block_size() const { return block_size_; }
  bool prefix_caching() const { return caching_; }

  int32_t num_free() const { return num_free_; }               // refcount 0 (cached or not)
  int32_t num_used() const { return num_blocks_ - num_free_; }  // refcount > 0
  int32_t num_cached() const { return static_cast<int32_t>(table_.size()); }
  int32_t refcount(int32_t block) const { return ref_[block]; }
  bool is_cached(int32_t block) const { return has_hash_[block] != 0; }

  // A fresh block (refcount 1, no hash), evicting the least recently freed
  // cached block if needed. Returns -1 when every block is in use.
  int32_t allocate();
  // Takes another reference to a block found by lookup() (takes it off the
  // free list if it was there).
  void share(int32_t block);
  // Drops one reference; at 0 the block goes to the free list (see above).
  void release(int32_t block);

  static uint64_t hash_block(uint64_t parent, const int32_t* tokens, int32_t n);
  // The cached block holding exactly `tokens` (block_size of them) after the
  // prefix hashed `parent`, or -1.
  int32_t lookup(uint64_t hash, uint64_t parent, const int32_t* tokens) const;
  // Registers a full block whose K/V is computed. No-op if caching is off, the
  // block already has a hash, or another block already holds this hash.
  void register_block(int32_t block, uint64_t hash, uint64_t parent, const int32_t* tokens);

  BlockPoolCounters& counters() { return counters_; }
  const BlockPoolCounters& counters() const { return counters_; }

  // Internal consistency check for tests: refcounts, free list and hash table agree.
  bool check_invariants() const;

 private:
  void list_remove(int32_t b);
  void list_push_front(int32_t b);
  void list_push_back(int32_t b);
  void drop_hash(int32_t b);

  int32_t num_blocks_;
  int32_t block_size_;
  bool caching_;
  int32_t num_free_ = 0;
  std::vector<int32_t> ref_;
  // Free list: doubly linked through prev_/next_, -1 terminated.
  std::vector<int32_t> prev_, next_;
  std::vector<uint8_t> in_free_;
  int32_t head_ = -1, tail_ = -1;
  // Prefix cache.
  std::vector<uint8_t> has_hash_;
  std::vector<uint64_t> hash_, parent_;
  std::vector<int32_t> tokens_;  // [block][block_size], for registered blocks
  std::unordered_map<uint64_t, int32_t> table_;
  BlockPoolCounters counters_;
};

}  // namespace ms
