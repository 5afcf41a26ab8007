// aligned.h — 64-byte aligned heap buffers for activations and scratch.
//
// Large buffers (weights quantized at load, the KV cache) are aligned to 2 MiB
// and marked for transparent huge pages: streaming through gigabytes with 4 KiB
// pages costs a TLB miss every 64 cache lines — in a VM a two-level page walk —
// and halves the read rate the matmuls reach.
#pragma once
#include <sys/mman.h>

#include <cstddef>
#include <cstdlib>
#include <memory>
#include <new>

namespace ms {

// aligned_alloc(64) for small sizes; 2 MiB-aligned with MADV_HUGEPAGE from 4 MiB
// up (before the pages are first touched). Free with std::free. Null on failure.
inline void* alloc_aligned(size_t bytes) {
  constexpr size_t kHuge = size_t(2) << 20;
  if (bytes < 2 * kHuge) {
    const size_t r = (bytes + 63) & ~size_t(63);
    return std::aligned_alloc(64, r ? r : 64);
  }
  const size_t rounded = (bytes + kHuge - 1) & ~(kHuge - 1);
  void* p = std::aligned_alloc(kHuge, rounded);
  if (p) madvise(p, rounded, MADV_HUGEPAGE);
  return p;
}

template <typename T>
struct AlignedAllocator {
  using value_type = T;
  AlignedAllocator() = default;
  template <typename U>
  AlignedAllocator(const AlignedAllocator<U>&) {}
  T* allocate(size_t n) {
    void* p = alloc_aligned(n * sizeof(T));
    if (!p) throw std::bad_alloc();
    return static_cast<T*>(p);
  }
  void deallocate(T* p, size_t) { std::free(p); }
  template <typename U>
  bool operator==(const AlignedAllocator<U>&) const { return true; }
  template <typename U>
  bool operator!=(const AlignedAllocator<U>&) const { return false; }
};

}  // namespace ms
