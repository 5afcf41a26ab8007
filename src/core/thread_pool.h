// thread_pool.h — one persistent pool of worker threads shared by every kernel.
//
// parallel_for(n, fn) splits [0, n) into contiguous ranges, one per thread
// (the calling thread takes part as thread 0), and returns when all are done.
// Workers spin briefly between jobs and then sleep, so back-to-back kernel
// calls in a forward pass do not pay a futex wake each time. Spin-waits
// (a worker for a job, the caller for the workers) yield the core between
// checks once they last, so a thread waiting for a core is not held up.
// Not reentrant: a job must not call parallel_for on the same pool.
#pragma once
#include <atomic>
#include <condition_variable>
#include <cstdint>
#include <functional>
#include <mutex>
#include <thread>
#include <vector>

namespace ms {

class ThreadPool {
 public:
  // n_threads <= 0 means the number of physical cores.
  explicit ThreadPool(int n_threads = 0);
  ~ThreadPool();
  ThreadPool(const ThreadPool&) = delete;
  ThreadPool& operator=(const ThreadPool&) = delete;

  int size() const { return n_threads_; }

  // fn(begin, end, thread_index); ranges are contiguous and cover [0, n).
  using RangeFn = std::function<void(int64_t, int64_t, int)>;
  void parallel_for(int64_t n, const RangeFn& fn);
  // Like parallel_for, but ranges are multiples of `grain` (except the last).
  void parallel_for(int64_t n, int64_t grain, const RangeFn& fn);
  // Like parallel_for with `grain`, but threads claim contiguous chunks as
  // they finish the previous one, so a thread slowed down (by memory, the OS,
  // a late wake-up) does not hold up the others. Chunks start at 1/pieces of
  // a thread's share and shrink towards the end (guided scheduling); they are
  // multiples of `grain` (except the last), and fn is called once per chunk;
  // which thread runs a chunk varies from call to call.
  void parallel_for_dynamic(int64_t n, int64_t grain, int pieces, const RangeFn& fn);
  // fn(thread_index, n_threads) on every thread.
  void run_on_all(const std::function<void(int, int)>& fn);

  static int physical_cores();

 private:
  void worker(int idx);
  // Grain and unit count of [0, n); runs fn inline and returns 0 when one
  // thread suffices, else the number of threads to use.
  int split(int64_t n, int64_t& grain, int64_t& units, const RangeFn& fn);

  int n_threads_;
  std::vector<std::thread> threads_;
  std::mutex mu_;
  std::condition_variable cv_;
  const std::function<void(int, int)>* job_ = nullptr;
  std::atomic<uint64_t> generation_{0};
  std::atomic<int> pending_{0};
  std::atomic<bool> stop_{false};
  std::mutex call_mu_;  // serialises callers from different threads
};

}  // namespace ms
