#include <gtest/gtest.h>

#include <numeric>
#include <random>
#include <set>

#include "core/error.h"
#include "engine/block_pool.h"

namespace ms {
namespace {

std::vector<int32_t> toks(int32_t start, int32_t n) {
  std::vector<int32_t> v(n);
  std::iota(v.begin(), v.end(), start);
  return v;
}

TEST(BlockPool, AllocateAllThenRunDry) {
  BlockPool pool(5, 4, true);
  std::set<int32_t> got;
  for (int i = 0; i < 5; ++i) {
    const int32_t b = pool.allocate();
    ASSERT_GE(b, 0);
    EXPECT_EQ(pool.refcount(b), 1);
    got.insert(b);
  }
  EXPECT_EQ(got.size(), 5u);
  EXPECT_EQ(pool.allocate(), -1);
  EXPECT_EQ(pool.num_free(), 0);
  EXPECT_EQ(pool.num_used(), 5);
  EXPECT_TRUE(pool.check_invariants());
  for (int32_t b : got) pool.release(b);
  EXPECT_EQ(pool.num_free(), 5);
  EXPECT_TRUE(pool.check_invariants());
}

TEST(BlockPool, RefcountsAndDoubleFreeIsAnError) {
  BlockPool pool(2, 4, true);
  const int32_t b = pool.allocate();
  pool.share(b);
  EXPECT_EQ(pool.refcount(b), 2);
  pool.release(b);
  EXPECT_EQ(pool.refcount(b), 1);
  EXPECT_EQ(pool.num_used(), 1);
  pool.release(b);
  EXPECT_EQ(pool.refcount(b), 0);
  EXPECT_THROW(pool.release(b), Error);  // never negative
  EXPECT_EQ(pool.refcount(b), 0);
  EXPECT_TRUE(pool.check_invariants());
}

TEST(BlockPool, BadSizesAreBadInput) {
  EXPECT_THROW(BlockPool(0, 4, true), Error);
  EXPECT_THROW(BlockPool(4, 0, true), Error);
}

TEST(BlockPool, CachedBlockIsFoundAfterReleaseUntilEvicted) {
  BlockPool pool(3, 4, true);
  const auto t = toks(10, 4);
  const uint64_t h = BlockPool::hash_block(BlockPool::kRootHash, t.data(), 4);
  const int32_t b = pool.allocate();
  pool.register_block(b, h, BlockPool::kRootHash, t.data());
  EXPECT_EQ(pool.lookup(h, BlockPool::kRootHash, t.data()), b);
  pool.release(b);
  EXPECT_EQ(pool.num_free(), 3);
  EXPECT_EQ(pool.lookup(h, BlockPool::kRootHash, t.data()), b);  // still cached while free
  // Fresh blocks come from uncached free blocks first.
  const int32_t x = pool.allocate();
  const int32_t y = pool.allocate();
  EXPECT_NE(x, b);
  EXPECT_NE(y, b);
  EXPECT_EQ(pool.lookup(h, BlockPool::kRootHash, t.data()), b);
  // A hit takes the cached block off the free list.
  pool.share(b);
  EXPECT_EQ(pool.num_free(), 0);
  EXPECT_EQ(pool.allocate(), -1);
  pool.release(b);
  // Now the only free block is the cached one: allocating evicts it.
  const int32_t z = pool.allocate();
  EXPECT_EQ(z, b);
  EXPECT_EQ(pool.lookup(h, BlockPool::kRootHash, t.data()), -1);
  EXPECT_EQ(pool.counters().evictions, 1);
  EXPECT_TRUE(pool.check_invariants());
}

TEST(BlockPool, EvictsLeastRecentlyFreedFirst) {
  BlockPool pool(3, 2, true);
  std::vector<std::vector<int32_t>> t = {toks(1, 2), toks(5, 2), toks(9, 2)};
  std::vector<uint64_t> h;
  std::vector<int32_t> b;
  for (int i = 0; i < 3; ++i) {
    h.push_back(BlockPool::hash_block(BlockPool::kRootHash, t[i].data(), 2));
    b.push_back(pool.allocate());
    pool.register_block(b[i], h[i], BlockPool::kRootHash, t[i].data());
  }
  pool.release(b[1]);
  pool.release(b[0]);
  pool.release(b[2]);
  EXPECT_EQ(pool.allocate(), b[1]);
  EXPECT_EQ(pool.lookup(h[1], BlockPool::kRootHash, t[1].data()), -1);
  EXPECT_EQ(pool.lookup(h[0], BlockPool::kRootHash, t[0].data()), b[0]);
  EXPECT_EQ(pool.allocate(), b[0]);
  EXPECT_EQ(pool.allocate(), b[2]);
  EXPECT_EQ(pool.num_cached(), 0);
  EXPECT_TRUE(pool.check_invariants());
}

TEST(BlockPool, LookupChecksParentAndTokens) {
  BlockPool pool(4, 2, true);
  const auto a = toks(1, 2), c = toks(3, 2);
  const uint64_t ha = BlockPool::hash_block(BlockPool::kRootHash, a.data(), 2);
  const uint64_t hc = BlockPool::hash_block(ha, c.data(), 2);
  // Chained: the same tokens after a different parent hash differently.
  EXPECT_NE(hc, BlockPool::hash_block(BlockPool::kRootHash, c.data(), 2));
  const int32_t b = pool.allocate();
  pool.register_block(b, hc, ha, c.data());
  EXPECT_EQ(pool.lookup(hc, ha, c.data()), b);
  EXPECT_EQ(pool.lookup(hc, BlockPool::kRootHash, c.data()), -1);  // wrong parent
  EXPECT_EQ(pool.lookup(hc, ha, a.data()), -1);                    // wrong tokens
}

TEST(BlockPool, DuplicateHashIsNotRegisteredTwice) {
  BlockPool pool(4, 2, true);
  const auto a = toks(1, 2);
  const uint64_t h = BlockPool::hash_block(BlockPool::kRootHash, a.data(), 2);
  const int32_t b1 = pool.allocate(), b2 = pool.allocate();
  pool.register_block(b1, h, BlockPool::kRootHash, a.data());
  pool.register_block(b2, h, BlockPool::kRootHash, a.data());
  EXPECT_TRUE(pool.is_cached(b1));
  EXPECT_FALSE(pool.is_cached(b2));
  EXPECT_EQ(pool.num_cached(), 1);
  pool.release(b2);
  pool.release(b1);
  EXPECT_TRUE(pool.check_invariants());
}

TEST(BlockPool, CachingOffNeverFinds) {
  BlockPool pool(2, 2, false);
  const auto a = toks(1, 2);
  const uint64_t h = BlockPool::hash_block(BlockPool::kRootHash, a.data(), 2);
  const int32_t b = pool.allocate();
  pool.register_block(b, h, BlockPool::kRootHash, a.data());
  EXPECT_EQ(pool.lookup(h, BlockPool::kRootHash, a.data()), -1);
  EXPECT_EQ(pool.num_cached(), 0);
}

TEST(BlockPool, RandomisedInvariants) {
  BlockPool pool(16, 2, true);
  std::mt19937 rng(7);
  std::vector<int32_t> held;
  for (int it = 0; it < 5000; ++it) {
    const int op = rng() % 4;
    if (op == 0 || held.empty()) {
      const int32_t b = pool.allocate();
      if (b >= 0) {
        held.push_back(b);
        std::vector<int32_t> t = {static_cast<int32_t>(rng() % 5), static_cast<int32_t>(rng() % 5)};
        if (rng() % 2) pool.register_block(b, BlockPool::hash_block(BlockPool::kRootHash, t.data(), 2),
                                           BlockPool::kRootHash, t.data());
      } else {
        EXPECT_EQ(pool.num_free(), 0);
      }
    } else if (op == 1) {
      const int32_t b = held[rng() % held.size()];
      pool.share(b);
      held.push_back(b);
    } else {
      const size_t i = rng() % held.size();
      pool.release(held[i]);
      held.erase(held.begin() + static_cast<std::ptrdiff_t>(i));
    }
    ASSERT_TRUE(pool.check_invariants()) << "iteration " << it;
  }
  for (int32_t b : held) pool.release(b);
  EXPECT_EQ(pool.num_used(), 0);
  EXPECT_TRUE(pool.check_invariants());
}

}  // namespace
}  // namespace ms
