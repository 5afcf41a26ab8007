#include "engine/block_pool.h"

#include <cstring>

#include "core/error.h"

namespace ms {

namespace {

inline uint64_t mix64(uint64_t x) {  // splitmix64 finaliser
  x += 0x9e3779b97f4a7c15ull;
  x = (x ^ (x >> 30)) * 0xbf58476d1ce4e5b9ull;
  x = (x ^ (x >> 27)) * 0x94d049bb133111ebull;
  return x ^ (x >> 31);
}

}  // namespace

BlockPool::BlockPool(int32_t num_blocks, int32_t block_size, bool prefix_caching)
    : num_blocks_(num_blocks), block_size_(block_size), caching_(prefix_caching) {
  if (num_blocks <= 0) bad_input("KV cache: the pool needs at least one block (got " + std::to_string(num_blocks) + ")");
  if (block_size <= 0) bad_input("KV cache: block size must be positive (got " + std::to_string(block_size) + ")");
  ref_.assign(num_blocks, 0);
  prev_.assign(num_blocks, -1);
  next_.assign(num_blocks, -1);
  in_free_.assign(num_blocks, 0);
  has_hash_.assign(num_blocks, 0);
  hash_.assign(num_blocks, 0);
  parent_.assign(num_blocks, 0);
  if (caching_) tokens_.assign(static_cast<size_t>(num_blocks) * block_size, 0);
  for (int32_t b = 0; b < num_blocks; ++b) list_push_back(b);
  num_free_ = num_blocks;
}

void BlockPool::list_remove(int32_t b) {
  const int32_t p = prev_[b], n = next_[b];
  if (p >= 0) next_[p] = n; else head_ = n;
  if (n >= 0) prev_[n] = p; else tail_ = p;
  prev_[b] = next_[b] = -1;
  in_free_[b] = 0;
}

void BlockPool::list_push_front(int32_t b) {
  prev_[b] = -1;
  next_[b] = head_;
  if (head_ >= 0) prev_[head_] = b; else tail_ = b;
  head_ = b;
  in_free_[b] = 1;
}

void BlockPool::list_push_back(int32_t b) {
  next_[b] = -1;
  prev_[b] = tail_;
  if (tail_ >= 0) next_[tail_] = b; else head_ = b;
  tail_ = b;
  in_free_[b] = 1;
}

void BlockPool::drop_hash(int32_t b) {
  if (!has_hash_[b]) return;
  auto it = table_.find(hash_[b]);
  if (it != table_.end() && it->second == b) table_.erase(it);
  has_hash_[b] = 0;
}

int32_t BlockPool::allocate() {
  if (head_ < 0) return -1;
  const int32_t b = head_;
  list_remove(b);
  if (has_hash_[b]) {
    drop_hash(b);
    ++counters_.evictions;
  }
  ref_[b] = 1;
  --num_free_;
  return b;
}

void BlockPool::share(int32_t b) {
  if (b < 0 || b >= num_blocks_) throw Error(ErrorKind::Internal, "BlockPool::share: bad block id");
  if (ref_[b] == 0) {
    list_remove(b);
    --num_free_;
  }
  ++ref_[b];
}

void BlockPool::release(int32_t b) {
  if (b < 0 || b >= num_blocks_ || ref_[b] <= 0)
    throw Error(ErrorKind::Internal, "BlockPool::release: block " + std::to_string(b) + " is not in use");
  if (--ref_[b] > 0) return;
  if (has_hash_[b]) list_push_back(b); else list_push_front(b);
  ++num_free_;
}

uint64_t BlockPool::hash_block(uint64_t parent, const int32_t* tokens, int32_t n) {
  uint64_t h = mix64(parent ^ 0x2545f4914f6cdd1dull);
  for (int32_t i = 0; i < n; ++i) h = mix64(h ^ static_cast<uint32_t>(tokens[i]));
  return mix64(h ^ static_cast<uint64_t>(n));
}

int32_t BlockPool::lookup(uint64_t hash, uint64_t parent, const int32_t* tokens) const {
  if (!caching_) return -1;
  auto it = table_.find(hash);
  if (it == table_.end()) return -1;
  const int32_t b = it->second;
  if (parent_[b] != parent) return -1;
  if (std::memcmp(&tokens_[static_cast<size_t>(b) * block_size_], tokens, sizeof(int32_t) * block_size_) != 0)
    return -1;
  return b;
}

void BlockPool::register_block(int32_t b, uint64_t hash, uint64_t parent, const int32_t* tokens) {
  if (!caching_ || has_hash_[b]) return;
  if (table_.count(hash)) return;  // an identical block is already cached
  table_.emplace(hash, b);
  has_hash_[b] = 1;
  hash_[b] = hash;
  parent_[b] = parent;
  std::memcpy(&tokens_[static_cast<size_t>(b) * block_size_], tokens, sizeof(int32_t) * block_size_);
}

bool BlockPool::check_invariants() const {
  int32_t free_count = 0;
  int32_t prev = -1;
  for (int32_t b = head_; b >= 0; b = next_[b]) {
    if (prev_[b] != prev || !in_free_[b] || ref_[b] != 0) return false;
    prev = b;
    if (++free_count > num_blocks_) return false;
  }
  if (tail_ != prev || free_count != num_free_) return false;
  for (int32_t b = 0; b < num_blocks_; ++b) {
    if (ref_[b] < 0) return false;
    if ((ref_[b] == 0) != (in_free_[b] != 0)) return false;
    if (has_hash_[b]) {
      auto it = table_.find(hash_[b]);
      if (it == table_.end() || it->second != b) return false;
    }
  }
  for (const auto& [h, b] : table_)
    if (!has_hash_[b] || hash_[b] != h) return false;
  return true;
}

}  // namespace ms
