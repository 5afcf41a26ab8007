// aligned.h — 64-byte aligned heap memory: alloc_aligned, an allocator for
// std::vector, and AlignedBuffer (growable scratch for the kernels).
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
#include <utility>

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

// A growable, uninitialised, 64-byte aligned array used for kernel scratch
// space (quantized activations, packed weight panels). It only grows, so
// reusing one buffer across calls does not allocate.
template <class T>
class AlignedBuffer {
 public:
  AlignedBuffer() = default;
  AlignedBuffer(const AlignedBuffer& o) { copy_from(o); }
  AlignedBuffer& operator=(const AlignedBuffer& o) {
    if (this != &o) copy_from(o);
    return *this;
  }
  AlignedBuffer(AlignedBuffer&& o) noexcept { swap(o); }
  AlignedBuffer& operator=(AlignedBuffer&& o) noexcept {
    swap(o);
    return *this;
  }
  ~AlignedBuffer() { std::free(p_); }

  // Ensures room for n elements (contents are not preserved when it grows).
  void resize(size_t n) {
    if (n > cap_) {
      std::free(p_);
      const size_t bytes = ((n * sizeof(T) + 63) / 64) * 64;
      p_ = static_cast<T*>(std::aligned_alloc(64, bytes ? bytes : 64));
      if (!p_) throw std::bad_alloc();
      cap_ = n;
    }
    n_ = n;
  }
  size_t size() const { return n_; }
  T* data() { return p_; }
  const T* data() const { return p_; }
  T& operator[](size_t i) { return p_[i]; }
  const T& operator[](size_t i) const { return p_[i]; }

 private:
  void swap(AlignedBuffer& o) noexcept {
    std::swap(p_, o.p_);
    std::swap(n_, o.n_);
    std::swap(cap_, o.cap_);
  }
  void copy_from(const AlignedBuffer& o) {
    resize(o.n_);
    for (size_t i = 0; i < o.n_; ++i) p_[i] = o.p_[i];
  }
  T* p_ = nullptr;
  size_t n_ = 0, cap_ = 0;
};

}  // namespace ms
