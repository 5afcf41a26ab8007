// qdriver_avx512.h — the loop nest shared by the AVX-512 quantized matmuls
// (include only from *_avx512.cpp files; internal linkage).
//
// Packed path (n > Fmt::kFusedMaxC): for each group of up to 32 output rows
// (2 panels of 16), for each chunk of K blocks: pack the panels' weights
// (transposed, unpacked to u8, scales as floats) into a per-thread buffer, then
// run the micro-kernel over tiles of kMaxC activation rows while the next
// chunk is prefetched. The micro-kernel keeps its float accumulators in Y
// between chunks, so every output is still one accumulator updated block by
// block. Fused path (small n): see qmatmul_any at the end.
#pragma once
#include <immintrin.h>

#include <array>
#include <cstdint>
#include <cstdlib>
#include <new>
#include <type_traits>
#include <utility>
#include <vector>

#include "kernels/cpu/cpu_kernels.h"
#include "kernels/cpu/pack_avx512.h"

namespace ms::cpu::avx512 {
namespace {

struct StreamPrefetch;
// A step of at least this many lines is spread over the tile's blocks
// (StreamPrefetch::arm); fewer go at the tile's start. Synth Q8_0, 2
// threads: 128 tokens (~50 lines a step) 15% faster spread; 512 tokens (~13
// lines) no faster, and spreading down to 8 lines cost up to 10% there.
constexpr size_t kSpreadLines = 24;

struct TileArgs {
  const uint8_t* pk;   // packed chunk: [block][panel][Fmt::kPanelBytes]
  int64_t nb;          // blocks in the chunk
  const int8_t* aq;    // activation row c0, first value of the chunk
  int64_t aq_stride;   // bytes between activation rows
  const float* ad;     // activation scales, row c0, first block of the chunk
  const int32_t* as;   // Q8_32 sums (row c0, first block), or null
  const int16_t* ab;   // Q8_256 16-sums (row c0, first of the chunk), or null
  int64_t a_blk_stride;   // elements between rows of ad / as
  int64_t ab_stride;      // elements between rows of ab
  float* Y;            // Y + c0*ldy + first row of the group
  int64_t ldy;
  __mmask16 mask[2];   // valid rows of each panel
  bool first;          // first chunk: accumulators start at zero
  int64_t pstride;     // stream kernels (kernel_rp): bytes from panel 0 to panel 1
  const int32_t* st;   // the integer sums' starts, -kOffset * as (same layout; sum_starts), or null
  StreamPrefetch* spf = nullptr;  // stream kernels: the next chunk's lines, a few per block (kernel_rp)
};

// The starts of the integer sums of a 32-element format with an offset
// (-Fmt::kOffset * Σq per token and block; Q8_32 activations), laid out once
// per call so that the micro-kernel broadcasts each from memory (a load)
// rather than multiplying and broadcasting from a general register (two more
// operations on the vector ports the VPDPBUSDs need). Null for the other
// formats. With one thread and the synth Mixtral's 14336x4096 Q8_0 panels
// from memory, this and reading the panels in place (kernel_rp) took CPU time
// per call from 13.7-14.8 ms to 12.0-12.1 at 32 tokens, 39.9-40.8 to 36.2 at
// 128 and 162-165 to 149-157 at 512 (binaries alternating, 3 times each).
template <class Fmt>
const int32_t* sum_starts(const ActsRef& A) {
  if constexpr (requires { Fmt::kOffset; }) {
    if (Fmt::kOffset == 0 || A.format != kActQ8_32) return nullptr;
    thread_local std::vector<int32_t> st;
    const int64_t n = A.n * A.nblk;
    if (st.size() < size_t(n)) st.resize(size_t(n));
    for (int64_t i = 0; i < n; ++i) st[size_t(i)] = -Fmt::kOffset * A.sum[i];
    return st.data();
  }
  return nullptr;
}

template <int RP, int C>
inline void load_acc(const TileArgs& t, __m512 (&acc)[RP][C]) {
  #pragma GCC unroll 16
  for (int p = 0; p < RP; ++p)
    #pragma GCC unroll 16
    for (int c = 0; c < C; ++c)
      acc[p][c] = t.first ? _mm512_setzero_ps() : _mm512_maskz_loadu_ps(t.mask[p], t.Y + c * t.ldy + 16 * p);
}
template <int RP, int C>
inline void store_acc(const TileArgs& t, __m512 (&acc)[RP][C]) {
  #pragma GCC unroll 16
  for (int p = 0; p < RP; ++p)
    #pragma GCC unroll 16
    for (int c = 0; c < C; ++c) _mm512_mask_storeu_ps(t.Y + c * t.ldy + 16 * p, t.mask[p], acc[p][c]);
}

// Fmt provides: kElems (weights per block), kPanelBytes, kMaxC,
//   static void pack(const WeightsRef&, const PanelRows* panels, const PanelRows* next (the next group's
//                    panels, or null), int RP, int64_t kb0, int64_t kb1, uint8_t* out)
//   template <int RP, int C> static void kernel(const TileArgs&)
//   and, with kDirectRp, template <int RP, int C> static void kernel_rp(const TileArgs&), which reads
//   the chunk where it lies in the panel layout (t.pk: panel 0 at the chunk's first block; t.pstride).
template <class Fmt, int RP, int C, bool kStream>
void run_tile(const TileArgs& t) {
  if constexpr (kStream)
    Fmt::template kernel_rp<RP, C>(t);
  else
    Fmt::template kernel<RP, C>(t);
}

template <class Fmt, int RP, bool kStream = false, class Prefetch = ChunkPrefetch>
void run_tiles(const TileArgs& base, int64_t n, const ActsRef& A, Prefetch& pf) {
  using Fn = void (*)(const TileArgs&);
  static constexpr Fn table[6] = {run_tile<Fmt, RP, 1, kStream>, run_tile<Fmt, RP, 2, kStream>,
                                  run_tile<Fmt, RP, 3, kStream>, run_tile<Fmt, RP, 4, kStream>,
                                  run_tile<Fmt, RP, 5, kStream>, run_tile<Fmt, RP, 6, kStream>};
  // As few tiles as kMaxC allows, of sizes that differ by at most one (32
  // rows: 6 6 5 5 5 5, not 6 6 6 6 6 2): a short last tile runs its few
  // accumulator chains at the VPDPBUSD latency, not its throughput. Each
  // activation row's arithmetic is the same in any tile.
  constexpr int CM = Fmt::kMaxC;
  const int64_t ntiles = (n + CM - 1) / CM, small = ntiles > 0 ? n / ntiles : 0, big = ntiles > 0 ? n % ntiles : 0;
  for (int64_t i = 0, c0 = 0; i < ntiles; ++i) {
    const int cc = int(small + (i < big ? 1 : 0));
    TileArgs t = base;
    t.aq += c0 * A.qs_stride;
    t.ad += c0 * A.nblk;
    if (t.as) t.as += c0 * A.nblk;
    if (t.st) t.st += c0 * A.nblk;
    if (t.ab) t.ab += c0 * (A.cols / 16);
    t.Y += c0 * t.ldy;
    if constexpr (std::is_same_v<Prefetch, StreamPrefetch>) {  // kernel_rp, or a packed kernel that calls spf->one()
      if (pf.per_step >= kSpreadLines) {
        pf.arm(t.nb);
        t.spf = &pf;
      } else {
        pf.step();
      }
      table[cc - 1](t);
      pf.finish();
    } else {
      pf.step();
      table[cc - 1](t);
    }
    c0 += cc;
  }
}

// The fields of TileArgs fixed for one group of `rows` (<= 32) output rows.
inline TileArgs group_args(const ActsRef& A, int64_t ldy, int rows) {
  TileArgs t{};
  t.aq_stride = A.qs_stride;
  t.a_blk_stride = A.nblk;
  t.ab_stride = A.cols / 16;
  t.ldy = ldy;
  t.mask[0] = rows >= 16 ? __mmask16(0xFFFF) : __mmask16((1u << rows) - 1);
  t.mask[1] = rows >= 32 ? __mmask16(0xFFFF) : rows > 16 ? __mmask16((1u << (rows - 16)) - 1) : __mmask16(0);
  return t;
}

// The micro-kernels over one packed chunk (blocks [kb0, kb1) of a row group
// of RP panels, packed at pk) for every activation row.
template <class Fmt, bool kStream = false, class Prefetch = ChunkPrefetch>
void run_chunk(TileArgs t, const uint8_t* pk, const ActsRef& A, int64_t kb0, int64_t kb1, float* Yg, int RP,
               Prefetch& pf) {
  const int64_t ablk = Fmt::kElems / (A.format == kActQ8_32 ? 32 : 256);  // activation blocks per weight block
  t.pk = pk;
  t.nb = kb1 - kb0;
  t.aq = A.qs + kb0 * Fmt::kElems;
  t.ad = A.d + kb0 * ablk;
  t.as = A.format == kActQ8_32 ? A.sum + kb0 * ablk : nullptr;
  if (t.st) t.st += kb0 * ablk;  // t.st arrives at block 0
  t.ab = A.format == kActQ8_256 ? A.bsum + kb0 * (Fmt::kElems / 16) : nullptr;
  t.Y = Yg;
  t.first = kb0 == 0;
  if (RP == 2)
    run_tiles<Fmt, 2, kStream>(t, A.n, A, pf);
  else
    run_tiles<Fmt, 1, kStream>(t, A.n, A, pf);
}

// Prefetches (into L2) the byte range [from, to) of one or two panel streams
// `pstride` apart, spread over `steps` calls of step(): the next chunk, while
// the micro-kernels run over this one.
//
// For the stream kernels the lines of a step are not issued at once: arm()
// sets how many lines each block of the tile issues (one(), from kernel_rp's
// block loop) and finish() issues what is left, so the prefetches are spread
// through the tile instead of queueing behind each other at its start.
struct StreamPrefetch {
  const uint8_t* base = nullptr;
  int64_t pstride = 0;
  size_t lines = 0, next = 0, total = 0, per_step = 0;
  const uint8_t* panel = nullptr;  // line `next` is panel + 64 * line
  size_t line = 0, end = 0, per_block = 0;
  void start(const uint8_t* b, int64_t stride, int np, size_t from, size_t to, int64_t steps) {
    base = b + (from & ~size_t(63));
    pstride = stride;
    lines = to > (from & ~size_t(63)) ? (to - (from & ~size_t(63)) + 63) / 64 : 0;
    total = lines * size_t(np);
    next = line = end = per_block = 0;
    panel = base;
    per_step = steps > 0 ? (total + size_t(steps) - 1) / size_t(steps) : total;
  }
  void issue() {
    prefetch_t1(panel + 64 * line);
    ++next;
    if (++line == lines) {
      line = 0;
      panel += pstride;
    }
  }
  void arm(int64_t blocks) {
    end = next + per_step < total ? next + per_step : total;
    per_block = blocks > 0 ? (end - next + size_t(blocks) - 1) / size_t(blocks) : end - next;
  }
  void one() {
    for (size_t k = 0; k < per_block && next < end; ++k) issue();
  }
  void finish() {
    while (next < end) issue();
  }
  void step() {
    arm(0);
    finish();
  }
  // The chunk after [.., kb1) of the row group whose first panel is at pan
  // (RP panels of nb blocks of `block` bytes, a panel apart), or else the
  // next group's first chunk (nrows rows, its panels following this
  // group's two), over `steps` tiles.
  void next_chunk(const uint8_t* pan, int64_t panel_bytes, int RP, int nrows, int64_t kb1, int64_t nb, int64_t kc,
                  size_t block, int64_t steps) {
    if (kb1 < nb)
      start(pan, panel_bytes, RP, size_t(kb1) * block, size_t(kb1 + kc < nb ? kb1 + kc : nb) * block, steps);
    else if (nrows > 0)
      start(pan + 2 * panel_bytes, panel_bytes, nrows > 16 ? 2 : 1, 0, size_t(kc < nb ? kc : nb) * block, steps);
  }
};

template <class Fmt>
void qmatmul(const WeightsRef& W, const ActsRef& A, int64_t r0, int64_t r1, float* Y, int64_t ldy) {
  const int64_t nb = W.cols / Fmt::kElems;
  const int64_t n = A.n;
  const int64_t kc = n <= Fmt::kMaxC ? Fmt::kChunkSmall : Fmt::kChunkLarge;
  uint8_t* buf = pack_buffer(size_t(kc) * 2 * Fmt::kPanelBytes);
  const int32_t* st = sum_starts<Fmt>(A);
  for (int64_t g = r0; g < r1; g += 32) {
    const int rows = int(r1 - g < 32 ? r1 - g : 32);
    const int RP = rows > 16 ? 2 : 1;
    PanelRows panels[2], next[2];
    panels[0].init(W.data + size_t(g) * W.row_stride, W.row_stride, rows < 16 ? rows : 16);
    if (RP == 2) panels[1].init(W.data + size_t(g + 16) * W.row_stride, W.row_stride, rows - 16);
    const int nrows = int(r1 - (g + 32) < 32 ? r1 - (g + 32) : 32);  // rows of the next group
    if (nrows > 0) {
      next[0].init(W.data + size_t(g + 32) * W.row_stride, W.row_stride, nrows < 16 ? nrows : 16);
      next[1] = next[0];
      if (nrows > 16) next[1].init(W.data + size_t(g + 48) * W.row_stride, W.row_stride, nrows - 16);
    }
    TileArgs t = group_args(A, ldy, rows);
    t.st = st;
    for (int64_t kb0 = 0; kb0 < nb; kb0 += kc) {
      const int64_t kb1 = kb0 + kc < nb ? kb0 + kc : nb;
      Fmt::pack(W, panels, nrows > 0 ? next : nullptr, RP, kb0, kb1, buf);
      // Fetch the next chunk (of this group, else the next group's first) meanwhile.
      ChunkPrefetch pf;
      const int64_t tiles = (n + Fmt::kMaxC - 1) / Fmt::kMaxC;
      if (kb1 < nb)
        pf.start(panels, RP, size_t(kb1) * Fmt::kBlockBytes, size_t(kb1 + kc < nb ? kb1 + kc : nb) * Fmt::kBlockBytes, tiles);
      else if (nrows > 0)
        pf.start(next, nrows > 16 ? 2 : 1, 0, size_t(kc < nb ? kc : nb) * Fmt::kBlockBytes, tiles);
      run_chunk<Fmt>(t, buf, A, kb0, kb1, Y + g, RP, pf);
    }
  }
}

// Small n goes to Fmt::fused<n> (n <= Fmt::kFusedMaxC <= 16): weights are
// unpacked in registers and used at once, so reading them from memory overlaps
// with the arithmetic; larger n packs panels once and reuses them. Matrices
// in the panel layout go to Fmt::fused_rp<n> (n <= Fmt::kFusedRpMaxC).
using FusedFn = void (*)(const WeightsRef&, const ActsRef&, int64_t, int64_t, float*, int64_t);

template <class Fmt, bool kPanels, int C>
void fused_at(const WeightsRef& W, const ActsRef& A, int64_t r0, int64_t r1, float* Y, int64_t ldy) {
  if constexpr (kPanels) {
    if constexpr (C <= Fmt::kFusedRpMaxC) Fmt::template fused_rp<C>(W, A, r0, r1, Y, ldy);
  } else if constexpr (C <= Fmt::kFusedMaxC) {
    Fmt::template fused<C>(W, A, r0, r1, Y, ldy);
  }
}

// fused_at<Fmt, kPanels, n> at index n - 1, for n = 1..16.
template <class Fmt, bool kPanels, size_t... I>
constexpr std::array<FusedFn, sizeof...(I)> fused_table(std::index_sequence<I...>) {
  return {fused_at<Fmt, kPanels, int(I) + 1>...};
}

template <class Fmt>
void qmatmul_any(const WeightsRef& W, const ActsRef& A, int64_t r0, int64_t r1, float* Y, int64_t ldy) {
  static constexpr auto table = fused_table<Fmt, false>(std::make_index_sequence<16>{});
  if (A.n >= 1 && A.n <= Fmt::kFusedMaxC) return table[A.n - 1](W, A, r0, r1, Y, ldy);
  qmatmul<Fmt>(W, A, r0, r1, Y, ldy);
}

// The same for a matrix in the panel layout (ops::repack_panels): Fmt
// provides fused_rp<C> for small n, and pack_rp(W, first row, RP, kb0, kb1,
// out), which unpacks blocks [kb0, kb1) of one or two panels into the
// packed format of pack().

// One call over row panels: its chunking, and for the row group at g its
// rows, panels per tile (RP), first panel and the next group's rows (whose
// first chunk is prefetched after this group's last).
template <class Fmt>
struct PanelWalk {
  int64_t nb, kc, panel_bytes, tiles, r1;
  PanelWalk(const WeightsRef& W, const ActsRef& A, int64_t r1_)
      : nb(W.cols / Fmt::kElems), kc(Fmt::kChunkLarge), panel_bytes(nb * int64_t(Fmt::kRpBlock)),
        tiles((A.n + Fmt::kMaxC - 1) / Fmt::kMaxC), r1(r1_) {}
  int rows(int64_t g) const { return int(r1 - g < 32 ? r1 - g : 32); }
  int next_rows(int64_t g) const { return int(r1 - (g + 32) < 32 ? r1 - (g + 32) : 32); }
  const uint8_t* panels(const WeightsRef& W, int64_t g) const { return W.data + (g / 16) * panel_bytes; }
  int64_t end(int64_t kb0) const { return kb0 + kc < nb ? kb0 + kc : nb; }
  // Spread over this chunk's tiles: group g's chunk after [.., kb1), or
  // after its last the next group's first.
  void prefetch_after(StreamPrefetch& pf, const WeightsRef& W, int64_t g, int RP, int64_t kb1) const {
    pf.next_chunk(panels(W, g), panel_bytes, RP, next_rows(g), kb1, nb, kc, Fmt::kRpBlock, tiles);
  }
};

// A format with kDirectRp (Q8_0, whose panel vectors are already the packed
// format's bytes) skips the copy: its kernel_rp reads each chunk where it
// lies, converting the f16 scales per block and tile, and the next chunk is
// prefetched into L2 over the tiles of this one. Packing had been 10% of a
// 512-token prefill of the synth Q8_0 Mixtral (perf, self time of
// qmatmul_panels, where pack_rp is inlined, against 37% in the kernel), and
// a larger share at 128 tokens, where a chunk is used by fewer tiles.
template <class Fmt>
void qmatmul_panels_direct(const WeightsRef& W, const ActsRef& A, int64_t r0, int64_t r1, float* Y, int64_t ldy) {
  const PanelWalk<Fmt> w(W, A, r1);
  const int32_t* st = sum_starts<Fmt>(A);
  for (int64_t g = r0; g < r1; g += 32) {
    const int rows = w.rows(g), RP = rows > 16 ? 2 : 1;
    const uint8_t* pan = w.panels(W, g);
    TileArgs t = group_args(A, ldy, rows);
    t.pstride = w.panel_bytes;
    t.st = st;
    for (int64_t kb0 = 0; kb0 < w.nb; kb0 += w.kc) {  // kc is a multiple of panel::kGroup
      const int64_t kb1 = w.end(kb0);
      StreamPrefetch pf;
      w.prefetch_after(pf, W, g, RP, kb1);
      run_chunk<Fmt, true>(t, pan + kb0 * int64_t(Fmt::kRpBlock), A, kb0, kb1, Y + g, RP, pf);
    }
  }
}

// The other formats (Q4_0, Q4_K, Q5_K, Q6_K) pack each chunk, and their
// packed kernels issue the next chunk's prefetches a
// few per block, spread over the tiles of this chunk (StreamPrefetch, as
// kernel_rp does for Q8_0), so that they neither queue behind each other in
// the packing loop nor stall it. Panels from memory, 2 threads, old and new
// alternating: Q4_0 14336x4096 at 32 tokens (the experts' share of a
// 128-token prompt) 20% faster, at 128 tokens 5%; Q4_K 10-18% and 3-8%,
// Q6_K 4096x14336 5-10% and 5%.
template <class Fmt>
void qmatmul_panels(const WeightsRef& W, const ActsRef& A, int64_t r0, int64_t r1, float* Y, int64_t ldy) {
  static constexpr auto table = fused_table<Fmt, true>(std::make_index_sequence<16>{});
  if (A.n >= 1 && A.n <= Fmt::kFusedRpMaxC) return table[A.n - 1](W, A, r0, r1, Y, ldy);
  if constexpr (Fmt::kDirectRp) return qmatmul_panels_direct<Fmt>(W, A, r0, r1, Y, ldy);
  const PanelWalk<Fmt> w(W, A, r1);
  uint8_t* buf = pack_buffer(size_t(w.kc) * 2 * Fmt::kPanelBytes);
  const int32_t* st = sum_starts<Fmt>(A);
  for (int64_t g = r0; g < r1; g += 32) {
    const int rows = w.rows(g), RP = rows > 16 ? 2 : 1;
    TileArgs t = group_args(A, ldy, rows);
    t.st = st;
    for (int64_t kb0 = 0; kb0 < w.nb; kb0 += w.kc) {
      const int64_t kb1 = w.end(kb0);
      Fmt::pack_rp(W, g, RP, kb0, kb1, buf);
      StreamPrefetch pf;
      w.prefetch_after(pf, W, g, RP, kb1);
      run_chunk<Fmt, false, StreamPrefetch>(t, buf, A, kb0, kb1, Y + g, RP, pf);
    }
  }
}

}  // namespace
}  // namespace ms::cpu::avx512
