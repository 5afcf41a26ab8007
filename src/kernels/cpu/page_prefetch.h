// page_prefetch.h — the page-ahead prefetch shared by the streaming kernels
// and the read probe (x86-64 baseline: PREFETCHT1 needs no ISA extension).
#pragma once
#include <cstddef>
#include <cstdint>

namespace ms::cpu {

// Page-ahead prefetch for a sequential stream: called once per step of
// `bytes` with p = the stream position plus a distance, it fetches (into L2)
// the first line of each 4 KiB page as that page enters (p, p + bytes]. The
// hardware prefetchers do not cross a page boundary, so a stream that only
// prefetches a few KiB ahead restarts them late at every page; touching each
// page well ahead starts them (and the page walk) early. (Volatile asm:
// GCC 12 drops __builtin_prefetch in some inlined contexts.)
inline void prefetch_page_ahead(const uint8_t* p, size_t bytes) {
  const uintptr_t a = reinterpret_cast<uintptr_t>(p), e = (a + bytes) & ~uintptr_t(4095);
  if (e > a) asm volatile("prefetcht1 %0" : : "m"(*reinterpret_cast<const char*>(e)));
}

}  // namespace ms::cpu
