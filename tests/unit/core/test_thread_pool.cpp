// ThreadPool: every index of [0, n) is visited exactly once, ranges respect
// the grain, and the dynamic split balances work across threads.
#include <gtest/gtest.h>

#include <algorithm>
#include <atomic>
#include <cstdint>
#include <mutex>
#include <set>
#include <vector>

#include "core/aligned.h"
#include "core/thread_pool.h"

namespace ms {
namespace {

struct Seen {
  std::mutex mu;
  std::vector<int> count;
  std::vector<std::pair<int64_t, int64_t>> ranges;
  std::set<int> threads;
  explicit Seen(int64_t n) : count(static_cast<size_t>(n), 0) {}
  void add(int64_t b, int64_t e, int t) {
    std::lock_guard<std::mutex> lk(mu);
    ranges.push_back({b, e});
    threads.insert(t);
    for (int64_t i = b; i < e; ++i) ++count[size_t(i)];
  }
};

void expect_cover(Seen& s, int64_t n, int64_t grain) {
  for (int64_t i = 0; i < n; ++i) ASSERT_EQ(s.count[size_t(i)], 1) << "index " << i;
  for (auto [b, e] : s.ranges) {
    EXPECT_LT(b, e);
    EXPECT_EQ(b % grain, 0) << "range start off the grain";
    if (e != n) {
      EXPECT_EQ(e % grain, 0) << "range end off the grain";
    }
  }
}

TEST(ThreadPool, StaticSplitCoversOnce) {
  for (int threads : {1, 2, 3, 5})
    for (int64_t n : {int64_t(1), int64_t(7), int64_t(33), int64_t(4097)})
      for (int64_t grain : {int64_t(1), int64_t(32)}) {
        ThreadPool pool(threads);
        Seen s(n);
        pool.parallel_for(n, grain, [&](int64_t b, int64_t e, int t) { s.add(b, e, t); });
        expect_cover(s, n, grain);
        EXPECT_LE(int64_t(s.ranges.size()), threads);
      }
}

TEST(ThreadPool, DynamicSplitCoversOnce) {
  for (int threads : {1, 2, 3, 5})
    for (int64_t n : {int64_t(1), int64_t(7), int64_t(33), int64_t(4097), int64_t(14336)})
      for (int64_t grain : {int64_t(1), int64_t(32)})
        for (int pieces : {1, 4, 100}) {
          ThreadPool pool(threads);
          Seen s(n);
          pool.parallel_for_dynamic(n, grain, pieces, [&](int64_t b, int64_t e, int t) { s.add(b, e, t); });
          expect_cover(s, n, grain);
          for (int t : s.threads) EXPECT_TRUE(t >= 0 && t < threads);
        }
}

TEST(ThreadPool, DynamicSplitLetsAFastThreadTakeMore) {
  // Thread 0 is slow on its first chunk: the other threads must take the rest.
  ThreadPool pool(3);
  std::atomic<int> chunks_by_others{0};
  std::atomic<bool> release{false};
  const int64_t n = 64 * 32;
  Seen s(n);
  pool.parallel_for_dynamic(n, 32, 8, [&](int64_t b, int64_t e, int t) {
    s.add(b, e, t);
    if (t == 0) {
      while (!release.load()) {  // wait until the others have done the bulk
        if (chunks_by_others.load() >= 20) release.store(true);
        std::this_thread::yield();
      }
    } else if (chunks_by_others.fetch_add(1) + 1 >= 20) {
      release.store(true);
    }
  });
  expect_cover(s, n, 32);
  EXPECT_GE(chunks_by_others.load(), 20);
}

TEST(ThreadPool, DynamicSplitChunksShrinkTowardsTheEnd) {
  // Chunks are claimed in address order whatever the timing: in that order
  // their sizes never grow, the first is at most 1/pieces of a thread's
  // share, and the end is cut down to single grains (so that threads finish
  // close together).
  for (int threads : {2, 3}) {
    ThreadPool pool(threads);
    const int64_t n = 1000 * 32;
    std::mutex mu;
    std::vector<std::pair<int64_t, int64_t>> chunks;
    pool.parallel_for_dynamic(n, 32, 4, [&](int64_t b, int64_t e, int) {
      std::lock_guard<std::mutex> lk(mu);
      chunks.emplace_back(b, e);
    });
    std::sort(chunks.begin(), chunks.end());
    ASSERT_GE(chunks.size(), 3u);
    EXPECT_EQ(chunks.front().first, 0);
    EXPECT_EQ(chunks.back().second, n);
    EXPECT_LE(chunks.front().second, n / (4 * threads) + 32);
    for (size_t i = 1; i < chunks.size(); ++i) {
      EXPECT_EQ(chunks[i].first, chunks[i - 1].second);
      EXPECT_LE(chunks[i].second - chunks[i].first, chunks[i - 1].second - chunks[i - 1].first) << i;
    }
    EXPECT_EQ(chunks.back().second - chunks.back().first, 32);
  }
}

TEST(AlignedAlloc, SmallAndHugeBuffers) {
  for (size_t bytes : {size_t(1), size_t(100), size_t(4) << 20, (size_t(9) << 20) + 3}) {
    void* p = alloc_aligned(bytes);
    ASSERT_NE(p, nullptr);
    const size_t align = bytes >= (size_t(4) << 20) ? (size_t(2) << 20) : 64;
    EXPECT_EQ(reinterpret_cast<uintptr_t>(p) % align, 0u) << bytes;
    static_cast<volatile char*>(p)[bytes - 1] = 1;  // the whole size is usable
    std::free(p);
  }
}

}  // namespace
}  // namespace ms
