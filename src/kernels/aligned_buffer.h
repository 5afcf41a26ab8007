// aligned_buffer.h — a growable, uninitialised, 64-byte aligned array used for
// kernel scratch space (quantized activations, packed weight panels). It only
// grows, so reusing one buffer across calls does not allocate.
#pragma once
#include <cstddef>
#include <cstdlib>
#include <new>
#include <utility>

namespace ms {

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
