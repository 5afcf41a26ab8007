// scratch.cpp — the SIMD kernels' per-thread packing buffer. Baseline code
// (no ISA flags), so one definition serves the AVX2 and AVX-512 files.
#include <cstdlib>
#include <new>

#include "kernels/cpu/cpu_kernels.h"

namespace ms::cpu {

uint8_t* pack_buffer(size_t bytes) {
  struct Buf {
    uint8_t* p = nullptr;
    size_t cap = 0;
    ~Buf() { std::free(p); }
  };
  thread_local Buf b;
  if (bytes > b.cap) {
    std::free(b.p);
    b.cap = (bytes + 4095) / 4096 * 4096;
    b.p = static_cast<uint8_t*>(std::aligned_alloc(64, b.cap));
    if (!b.p) {
      b.cap = 0;
      throw std::bad_alloc();
    }
  }
  return b.p;
}

}  // namespace ms::cpu
