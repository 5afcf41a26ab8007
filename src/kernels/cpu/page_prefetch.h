// page_prefetch.h — software prefetches shared by the streaming kernels of
// every ISA and the read probe (x86-64 baseline: PREFETCHT0/T1 need no ISA
// extension).
#pragma once
#include <cstddef>
#include <cstdint>

namespace ms::cpu {
// Internal linkage: every kernel file (each built for its own ISA) keeps its
// own copy, so the linker cannot give an AVX2 kernel an AVX-512 copy
// (cpu_kernels.h).
namespace {

// As volatile asm: GCC 12 drops __builtin_prefetch inside functions it has
// proven side-effect free (internal linkage) before inlining them.
inline void prefetch_t0(const void* p) { asm volatile("prefetcht0 %0" : : "m"(*static_cast<const char*>(p))); }
inline void prefetch_t1(const void* p) { asm volatile("prefetcht1 %0" : : "m"(*static_cast<const char*>(p))); }

// Prefetches (into L1, or into L2 with kL2) the lines that start in
// [p, p + bytes): called once per block of a stream with p a fixed distance
// ahead of the block, it fetches every line of the stream once.
template <bool kL2>
inline void prefetch_lines(const uint8_t* p, size_t bytes) {
  const uintptr_t a = reinterpret_cast<uintptr_t>(p);
  for (uintptr_t x = (a + 63) & ~uintptr_t(63); x < a + bytes; x += 64) {
    if constexpr (kL2)
      prefetch_t1(reinterpret_cast<const void*>(x));
    else
      prefetch_t0(reinterpret_cast<const void*>(x));
  }
}

// Page-ahead prefetch for a sequential stream: called once per step of
// `bytes` with p = the stream position plus a distance, it fetches (into L2)
// the first line of each 4 KiB page as that page enters (p, p + bytes]. The
// hardware prefetchers do not cross a page boundary, so a stream that only
// prefetches a few KiB ahead restarts them late at every page; touching each
// page well ahead starts them (and the page walk) early.
inline void prefetch_page_ahead(const uint8_t* p, size_t bytes) {
  const uintptr_t a = reinterpret_cast<uintptr_t>(p), e = (a + bytes) & ~uintptr_t(4095);
  if (e > a) prefetch_t1(reinterpret_cast<const void*>(e));
}

}  // namespace
}  // namespace ms::cpu
