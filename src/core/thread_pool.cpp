#include "core/thread_pool.h"

#include <algorithm>
#include <fstream>
#include <set>
#include <string>
#include <utility>

#if defined(__x86_64__)
#include <immintrin.h>
#endif

namespace ms {

namespace {
inline void cpu_relax() {
#if defined(__x86_64__)
  _mm_pause();
#endif
}
}  // namespace

int ThreadPool::physical_cores() {
  // Count distinct (physical id, core id) pairs; fall back to hardware_concurrency.
  std::ifstream in("/proc/cpuinfo");
  std::set<std::pair<int, int>> cores;
  std::string line;
  int phys = 0;
  while (std::getline(in, line)) {
    auto val = [&]() { return std::stoi(line.substr(line.find(':') + 1)); };
    if (line.rfind("physical id", 0) == 0) phys = val();
    else if (line.rfind("core id", 0) == 0) cores.insert({phys, val()});
  }
  int hw = int(std::thread::hardware_concurrency());
  if (cores.empty()) return hw > 0 ? hw : 1;
  int n = int(cores.size());
  return (hw > 0 && n > hw) ? hw : n;
}

ThreadPool::ThreadPool(int n_threads) : n_threads_(n_threads > 0 ? n_threads : physical_cores()) {
  for (int i = 1; i < n_threads_; ++i) threads_.emplace_back([this, i] { worker(i); });
}

ThreadPool::~ThreadPool() {
  {
    std::lock_guard<std::mutex> lk(mu_);
    stop_.store(true);
    generation_.fetch_add(1);
  }
  cv_.notify_all();
  for (auto& t : threads_) t.join();
}

void ThreadPool::worker(int idx) {
  uint64_t seen = 0;
  for (;;) {
    // Spin a little, then sleep until the generation changes.
    // (Yielding now and then: with more runnable threads than cores, the
    // thread that will post the next job may be waiting for this core.)
    int spins = 0;
    while (generation_.load(std::memory_order_acquire) == seen && spins < 20000) {
      cpu_relax();
      if (++spins % 2000 == 0) std::this_thread::yield();
    }
    if (generation_.load(std::memory_order_acquire) == seen) {
      std::unique_lock<std::mutex> lk(mu_);
      cv_.wait(lk, [&] { return generation_.load() != seen; });
    }
    seen = generation_.load(std::memory_order_acquire);
    if (stop_.load()) return;
    (*job_)(idx, n_threads_);
    pending_.fetch_sub(1, std::memory_order_acq_rel);
  }
}

void ThreadPool::run_on_all(const std::function<void(int, int)>& fn) {
  if (n_threads_ == 1) {
    fn(0, 1);
    return;
  }
  std::lock_guard<std::mutex> call_lk(call_mu_);
  {
    std::lock_guard<std::mutex> lk(mu_);
    job_ = &fn;
    pending_.store(n_threads_ - 1);
    generation_.fetch_add(1, std::memory_order_release);
  }
  cv_.notify_all();
  fn(0, n_threads_);
  // Spin for the others; past a few microseconds one of them is probably not
  // running (more runnable threads than cores), so give the core away
  // between checks instead of burning the rest of the time slice.
  for (int spins = 0; pending_.load(std::memory_order_acquire) != 0; ++spins) {
    if (spins < 2000) {
      cpu_relax();
    } else {
      std::this_thread::yield();
    }
  }
}

void ThreadPool::parallel_for(int64_t n, const RangeFn& fn) { parallel_for(n, 1, fn); }

int ThreadPool::split(int64_t n, int64_t& grain, int64_t& units, const RangeFn& fn) {
  if (n <= 0) return 0;
  if (grain < 1) grain = 1;
  units = (n + grain - 1) / grain;
  const int nt = int(std::min<int64_t>(units, n_threads_));
  if (nt <= 1) {
    fn(0, n, 0);
    return 0;
  }
  return nt;
}

void ThreadPool::parallel_for(int64_t n, int64_t grain, const RangeFn& fn) {
  int64_t units = 0;
  const int nt = split(n, grain, units, fn);
  if (nt == 0) return;
  run_on_all([&](int t, int) {
    if (t >= nt) return;
    const int64_t u0 = units * t / nt, u1 = units * (t + 1) / nt;
    const int64_t b = u0 * grain, e = std::min(n, u1 * grain);
    if (b < e) fn(b, e, t);
  });
}

void ThreadPool::parallel_for_dynamic(int64_t n, int64_t grain, int pieces, const RangeFn& fn) {
  int64_t units = 0;
  const int nt = split(n, grain, units, fn);
  if (nt == 0) return;
  // Guided self-scheduling: a claim takes 1/(2·threads) of what is left, at
  // most 1/pieces of a thread's share and at least one unit. Chunks shrink
  // towards the end, so threads finish within a small chunk of each other;
  // fixed chunks of 1/pieces left one thread idle for up to one whole chunk
  // at the end of every call (decode steps were 3-9% slower, alternating
  // step by step).
  const int64_t per = std::max<int64_t>(1, units / (int64_t(nt) * std::max(pieces, 1)));
  const int64_t div = 2 * int64_t(nt);
  std::atomic<int64_t> next{0};
  run_on_all([&](int t, int) {
    int64_t u0 = next.load(std::memory_order_relaxed);
    while (u0 < units) {
      const int64_t take = std::min(per, std::max<int64_t>(1, (units - u0 + div - 1) / div));
      if (!next.compare_exchange_weak(u0, u0 + take, std::memory_order_relaxed)) continue;  // u0 reloaded
      fn(u0 * grain, std::min(n, (u0 + take) * grain), t);
      u0 = next.load(std::memory_order_relaxed);
    }
  });
}

}  // namespace ms
