// qlegacy_avx512.cpp — AVX-512 VNNI matmul for the 32-element block formats
// (Q8_0, Q4_0, Q4_1, Q5_0, Q5_1) with Q8_32 activations.
//
// Packed panel block (16 rows x 32 weights): 8 vectors of unsigned bytes
// (vector j, lane r = weights 4j..4j+3 of row r, stored as w + kOffset), the
// row scales as floats, and for Q4_1/Q5_1 the row minima.
// VPDPBUSD(u8 weights, s8 activations) starting from -kOffset * Σq gives the
// exact signed block sum; the float update is the ref's fma per block.
#include <immintrin.h>

#include <cstdint>
#include <cstring>

#include "core/quant.h"
#include "kernels/cpu/cpu_kernels.h"
#include "kernels/cpu/pack_avx512.h"
#include "kernels/cpu/qdriver_avx512.h"
#include "kernels/panel_layout.h"

namespace ms::cpu::avx512 {
namespace {

// Lookup: 4 bits -> 0x10 in each byte whose bit is set (5th bit of Q5 quants).
inline __m512i q5_bit_lut() {
  alignas(64) int32_t t[16];
  #pragma GCC unroll 16
  for (int i = 0; i < 16; ++i) {
    uint32_t v = 0;
    #pragma GCC unroll 16
    for (int b = 0; b < 4; ++b)
      if (i & (1 << b)) v |= 0x10u << (8 * b);
    t[i] = int32_t(v);
  }
  return _mm512_load_si512(t);
}

// The 8 u8 vectors of one panel block of a 4-bit (or 5-bit) format: nibbles of
// the 16 bytes qs, optional high bits qh (element e <-> bit e of each lane).
__attribute__((always_inline)) inline void unpack_nibbles(const PanelRows& pr, size_t qs_off, bool has_qh, __m512i qh,
                                                          __m512i lut, __m512i* v) {
  const uint8_t* p[16];
#pragma GCC unroll 16
  for (int r = 0; r < 16; ++r) p[r] = pr.p[r] + qs_off;
  __m512i t[4];
  transpose_16x16(p, t);
  const __m512i m4 = _mm512_set1_epi8(0x0F);
#pragma GCC unroll 4
  for (int j = 0; j < 4; ++j) {
    v[j] = _mm512_and_si512(t[j], m4);                            // elements 4j..4j+3
    v[j + 4] = _mm512_and_si512(_mm512_srli_epi16(t[j], 4), m4);  // elements 16+4j..
  }
  if (has_qh) {
    const __m512i f = _mm512_set1_epi32(0xF);
#pragma GCC unroll 8
    for (int j = 0; j < 8; ++j) {
      const __m512i idx = _mm512_and_si512(_mm512_srli_epi32(qh, 4 * j), f);
      v[j] = _mm512_or_si512(v[j], _mm512_permutexvar_epi32(idx, lut));
    }
  }
}

template <DType T>
struct Legacy {
  static constexpr int64_t kElems = 32;
  static constexpr bool kMin = T == DType::Q4_1 || T == DType::Q5_1;
  static constexpr int kOffset = T == DType::Q8_0 ? 128 : T == DType::Q4_0 ? 8 : T == DType::Q5_0 ? 16 : 0;
  static constexpr size_t kPanelBytes = kMin ? 640 : 576;
  static constexpr int kMaxC = 6;
  static constexpr int64_t kChunkSmall = 16, kChunkLarge = 64, kMaxChunk = 64;
  static constexpr size_t kBlockBytes = T == DType::Q8_0   ? sizeof(BlockQ8_0)
                                        : T == DType::Q4_0 ? sizeof(BlockQ4_0)
                                        : T == DType::Q4_1 ? sizeof(BlockQ4_1)
                                        : T == DType::Q5_0 ? sizeof(BlockQ5_0)
                                                           : sizeof(BlockQ5_1);

  // Header words per block: d (and m) in word 0; Q5 high bits in word 1.
  static constexpr int kNF = (T == DType::Q5_0 || T == DType::Q5_1) ? 2 : 1;
  static constexpr size_t kQhOff = T == DType::Q5_0 ? 2 : 4;
  static constexpr size_t kQsOff = T == DType::Q8_0 || T == DType::Q4_0 ? 2 : T == DType::Q4_1 ? 4
                                   : T == DType::Q5_0                    ? 6 : 8;

  static constexpr size_t kOffs1[1] = {0};
  static constexpr size_t kOffs2[2] = {0, kQhOff};
  static void collect(const PanelRows& pr, int64_t kb0, int64_t nb, int32_t* hdr) {
    if constexpr (kNF == 1)
      collect_u32<1>(pr, kOffs1, kBlockBytes, kb0, nb, hdr);
    else
      collect_u32<2>(pr, kOffs2, kBlockBytes, kb0, nb, hdr);
  }

  // One panel block: 8 vectors of u8 weights (+kOffset), row scales (and minima).
  __attribute__((always_inline)) static inline void block(const PanelRows& pr, int64_t b, const int32_t* hdr,
                                                          __m512i lut, __m512i* v, __m512& dw, __m512& mn) {
    const size_t bo = size_t(b) * kBlockBytes;
    const __m512i h0 = _mm512_load_si512(hdr);
    if constexpr (T == DType::Q8_0) {
      const uint8_t* q[16];
#pragma GCC unroll 16
      for (int r = 0; r < 16; ++r) q[r] = pr.p[r] + bo + kQsOff;
      transpose_16x32(q, v);
      const __m512i x80 = _mm512_set1_epi8(char(0x80));
#pragma GCC unroll 8
      for (int j = 0; j < 8; ++j) v[j] = _mm512_xor_si512(v[j], x80);
    } else {
      unpack_nibbles(pr, bo + kQsOff, kNF == 2, kNF == 2 ? _mm512_load_si512(hdr + 16) : h0, lut, v);
    }
    dw = f16lo(h0);
    if constexpr (kMin) mn = f16hi(h0);
  }

  static void pack(const WeightsRef& W, const PanelRows* panels, const PanelRows* next, int RP, int64_t kb0,
                   int64_t kb1, uint8_t* out) {
    const __m512i lut = q5_bit_lut();
    const size_t rbytes = size_t(W.cols / 32) * kBlockBytes;
    alignas(64) int32_t hdr[kMaxChunk * kNF * 16];
    for (int p = 0; p < RP; ++p) {
      const PanelRows& pr = panels[p];
      collect(pr, kb0, kb1 - kb0, hdr);
      for (int64_t b = kb0; b < kb1; ++b) {
        uint8_t* o = out + ((b - kb0) * RP + p) * kPanelBytes;
        if (b % kPfEvery == 0) prefetch_ahead(pr, next ? &next[p] : nullptr, size_t(b) * kBlockBytes + kAhead, 1, rbytes);
        __m512i v[8];
        __m512 dw, mn;
        block(pr, b, hdr + (b - kb0) * kNF * 16, lut, v, dw, mn);
#pragma GCC unroll 8
        for (int j = 0; j < 8; ++j) _mm512_store_si512(o + 64 * j, v[j]);
        _mm512_store_ps(o + 512, dw);
        if constexpr (kMin) _mm512_store_ps(o + 576, mn);
      }
    }
  }

  // Small n: unpack each panel block in registers and use it at once.
  static constexpr int kFusedMaxC = 16, kFusedRpMaxC = 16;
  static constexpr int64_t kFusedChunk = 16;
  static constexpr size_t kAhead = 640;  // prefetch distance in bytes of a row
  static constexpr int64_t kPfEvery = 64 / kBlockBytes;  // blocks per prefetch (< one line apart)
  template <int C>
  static void fused(const WeightsRef& W, const ActsRef& A, int64_t r0, int64_t r1, float* Y, int64_t ldy) {
    const int64_t nb = W.cols / 32;
    const __m512i lut = q5_bit_lut();
    alignas(64) int32_t hdr[kFusedChunk * kNF * 16];
    const size_t rbytes = size_t(nb) * kBlockBytes;
    for (int64_t g = r0; g < r1; g += 16) {
      const int rows = int(r1 - g < 16 ? r1 - g : 16);
      const __mmask16 mask = rows >= 16 ? __mmask16(0xFFFF) : __mmask16((1u << rows) - 1);
      PanelRows pr, next;
      pr.init(W.data + size_t(g) * W.row_stride, W.row_stride, rows);
      const int nrows = int(r1 - (g + 16) < 16 ? r1 - (g + 16) : 16);
      if (nrows > 0) next.init(W.data + size_t(g + 16) * W.row_stride, W.row_stride, nrows);
      __m512 acc[C];
#pragma GCC unroll 16
      for (int c = 0; c < C; ++c) acc[c] = _mm512_setzero_ps();
      for (int64_t kb0 = 0; kb0 < nb; kb0 += kFusedChunk) {
        const int64_t kb1 = kb0 + kFusedChunk < nb ? kb0 + kFusedChunk : nb;
        collect(pr, kb0, kb1 - kb0, hdr);
        for (int64_t b = kb0; b < kb1; ++b) {
          __m512i v[8];
          __m512 dw, mn;
          // Prefetch each line of the rows once, kAhead bytes ahead.
          const size_t o = size_t(b) * kBlockBytes + kAhead;
          if (o / 64 != (o + kBlockBytes) / 64) prefetch_ahead(pr, nrows > 0 ? &next : nullptr, o + kBlockBytes, 1, rbytes);
          block(pr, b, hdr + (b - kb0) * kNF * 16, lut, v, dw, mn);
#pragma GCC unroll 16
          for (int c = 0; c < C; ++c) {
            const int8_t* aq = A.qs + c * A.qs_stride + 32 * b;
            const int32_t s = A.sum[c * A.nblk + b];
            const float da = A.d[c * A.nblk + b];
            __m512i ai = kOffset ? _mm512_set1_epi32(-kOffset * s) : _mm512_setzero_si512();
#pragma GCC unroll 8
            for (int j = 0; j < 8; ++j) ai = dpbusd_bcast(ai, v[j], aq + 4 * j);
            acc[c] = _mm512_fmadd_ps(_mm512_cvtepi32_ps(ai), _mm512_mul_ps(dw, _mm512_set1_ps(da)), acc[c]);
            if constexpr (kMin) acc[c] = _mm512_fmadd_ps(mn, _mm512_set1_ps(da * float(s)), acc[c]);
          }
        }
      }
#pragma GCC unroll 16
      for (int c = 0; c < C; ++c) _mm512_mask_storeu_ps(Y + c * ldy + g, mask, acc[c]);
    }
  }

  // ---- The panel layout (ops::repack_panels; Q8_0 and Q4_0 only) ----
  // Panel P: one stream of groups of 8 blocks, [8 x kRpVec bytes of vectors]
  // [8 x 32 bytes of f16 scales] (kernels/panel_layout.h).
  static constexpr size_t kRpVec = T == DType::Q8_0 ? panel::kQ8_0Vec : panel::kQ4_0Vec, kRpBlock = kRpVec + 32;
  // Prefetch distance in the stream. Streaming 14336x4096 from memory,
  // alternating call by call, 2048 and 8192 bytes ran within 5% of 4096 for
  // Q8_0 and Q4_0 at 1-8 tokens (with vectors and scales in separate regions,
  // Q4_0 at 1 token had wanted 4096 over 2048 and Q8_0 2048 over 4096).
  static constexpr size_t kRpAhead = 4096;
  // From 3 tokens on, each line is also prefetched into L2 twice as far
  // ahead. The more work per block, the less the L1 prefetches alone keep
  // enough reads in flight: streaming 14336x4096 matrices from memory with
  // 2 threads, alternating call by call, this read Q8_0 at 4 tokens 10-20%
  // faster and at 8 tokens 7-12% (Q4_0: 3-7%, 0-7%) when memory was fast,
  // and made no difference when it was slow; at 1-2 tokens it was 1-6%
  // slower, so Q8_0 keeps the L1 prefetch alone there. Q4_0, whose blocks go
  // by twice as fast, takes it from 1 token: on a day when the kernel read
  // below the plain read probe, Q4_0 at 1-2 tokens read 14-19% faster with
  // it (Q8_0 4% slower), and batch-1 decode of the synth Mixtral was 10%
  // faster (binaries alternating, 3 times). Decode steps of the synth
  // Mixtral (alternating step by step): batch 4 and 16, 0-3% faster. From
  // 13 tokens on the kernel is compute-bound even from memory: there the
  // extra instructions only cost (3-5% with the weights in L2, none gained
  // from memory), so they go without. Q8_0 also goes without at 3, 5 and 6
  // tokens: there, streaming 14336x4096 from memory with 2 threads
  // (alternating call by call, 3 times), it read at 37-60 GB/s with them and
  // 60-81 without when memory was fast (when slow, within 15% either way; at
  // 4 and 7-8 tokens no consistent difference), and batch-16 decode of the
  // synth Q8_0 Mixtral, where 3, 5 and 6 are about half of the experts' token
  // counts, ran 6-35% faster without (binaries alternating, 5 pairs).
  static constexpr bool far_prefetch(int C) {
    if (T == DType::Q4_0) return C <= 12;
    return C == 4 || (C >= 7 && C <= 12);
  }
  static constexpr size_t kRpFar = 8192;
  // Up to kPageToC tokens, each 4 KiB page of the stream is also touched
  // kRpPage bytes ahead (prefetch_page_ahead). Streaming 14336x4096 matrices
  // from memory with 2 threads, alternating call by call: Q4_0 at 1-5 tokens
  // 15-36% faster, Q8_0 at 1-6 tokens 4-20%; from 6 (Q4_0) or 8 (Q8_0)
  // tokens, where the kernel is near compute-bound, it was up to 30% slower;
  // both formats stop at 5.
  static constexpr int kPageToC = 5;
  static constexpr size_t kRpPage = 32768;

  // The 8 u8 vectors (+kOffset) and the scales of one panel block.
  __attribute__((always_inline)) static inline void block_rp(const uint8_t* vec, const uint8_t* scl, __m512i* v,
                                                             __m512& dw) {
    if constexpr (T == DType::Q8_0) {
#pragma GCC unroll 8
      for (int j = 0; j < 8; ++j) v[j] = _mm512_loadu_si512(vec + 64 * j);
    } else {
      const __m512i m4 = _mm512_set1_epi8(0x0F);
#pragma GCC unroll 4
      for (int j = 0; j < 4; ++j) {
        const __m512i q = _mm512_loadu_si512(vec + 64 * j);
        v[j] = _mm512_and_si512(q, m4);
        v[j + 4] = _mm512_and_si512(_mm512_srli_epi16(q, 4), m4);
      }
    }
    dw = _mm512_cvtph_ps(_mm256_loadu_si256(reinterpret_cast<const __m256i*>(scl)));
  }

  // Small n: one sequential pass over each panel, arithmetic as in fused().
  // From kHeaderC tokens on, the integer sums' starts (-kOffset * Σq) and
  // the activation scales are first laid out as [b][token] arrays, so that
  // each start is one broadcast load rather than a multiply and a broadcast
  // from a general register (with the weights in L2, pinned to one core: 2-7%
  // faster at 4-6 tokens for Q8_0, 3-10% for Q4_0; none at 3, 2-4% slower
  // at 2). From kInterleaveC tokens on, the activations are interleaved too,
  // [b][token][32 bytes]: every operand of the inner loop is then one pointer
  // plus a constant, where a base register per token ran out of registers
  // and spilled (about 15% faster at 12-16 tokens, weights in L2).
  static constexpr int kInterleaveC = 7, kHeaderC = 4;
  static_assert(kHeaderC <= kInterleaveC, "interleaved activations come with [b][token] starts and scales");
  template <int C>
  static void fused_rp(const WeightsRef& W, const ActsRef& A, int64_t r0, int64_t r1, float* Y, int64_t ldy) {
    const int64_t nb = W.cols / 32;
    const size_t panel_bytes = size_t(nb) * kRpBlock;
    constexpr bool kInter = C >= kInterleaveC, kHdr = C >= kHeaderC;
    ActView av{A.qs, A.sum, A.d, A.qs_stride, A.nblk};
    if constexpr (kHdr) {
      const size_t qbytes = kInter ? size_t(nb) * C * 32 : 0;
      uint8_t* buf = pack_buffer(qbytes + size_t(nb) * C * 8);
      int8_t* ia = reinterpret_cast<int8_t*>(buf);
      int32_t* st = reinterpret_cast<int32_t*>(buf + qbytes);
      float* da = reinterpret_cast<float*>(st + nb * C);
      for (int c = 0; c < C; ++c)
        for (int64_t b = 0; b < nb; ++b) {
          if constexpr (kInter) std::memcpy(ia + (b * C + c) * 32, A.qs + c * A.qs_stride + 32 * b, 32);
          st[b * C + c] = -kOffset * A.sum[c * A.nblk + b];
          da[b * C + c] = A.d[c * A.nblk + b];
        }
      av = kInter ? ActView{ia, st, da, 0, 0} : ActView{A.qs, st, da, A.qs_stride, 0};
    }
    // The chunk's first lines, which no earlier block prefetched.
    // (Measured as decode steps alternating with and without this and the
    // cross-panel prefetch below: Q4_0 5% faster at batch 1, 6-10% at 4-16;
    // Q8_0 3-4% at 4-16.)
    const uint8_t* first = W.data + size_t(r0 / 16) * panel_bytes;
    for (size_t o = 0; o < kRpAhead; o += 64) prefetch_t0(first + o);
    for (int64_t g = r0; g < r1; g += 16) {
      const int rows = int(r1 - g < 16 ? r1 - g : 16);
      const __mmask16 mask = rows >= 16 ? __mmask16(0xFFFF) : __mmask16((1u << rows) - 1);
      rp_pass<C, kInter, kHdr>(W.data + size_t(g / 16) * panel_bytes, nb, av, Y + g, ldy, mask);
    }
  }

  // The activations as fused_rp reads them: A's own rows, or interleaved;
  // the sums and scales as A holds them, or as [b][token] arrays.
  struct ActView {
    const int8_t* qs;
    const int32_t* s;  // [b][token]: the starts of the sums; else A's Σq
    const float* d;
    int64_t qs_stride;  // activations not interleaved only
    int64_t nblk;       // sums and scales not as [b][token] only
  };

  // Prefetches the lines that start in [p, p + kRpBlock): over successive
  // blocks, every line of the stream once. Past a panel's end this reaches
  // into the next panel, which follows it.
  template <bool kL2>
  __attribute__((always_inline)) static inline void prefetch_block(const uint8_t* p) {
    prefetch_lines<kL2>(p, kRpBlock);
  }

  // One panel: per block, the tokens in groups of at most 8 (so that a
  // group's integer sums and the block's weights fit in registers). I: the
  // activations are interleaved; H: the starts and scales are [b][token].
  template <int C, bool I, bool H>
  __attribute__((always_inline)) static inline void rp_pass(const uint8_t* pan, int64_t nb, const ActView& av, float* Y,
                                                            int64_t ldy, __mmask16 mask) {
    constexpr int G0 = token_group0(C);
    __m512 acc[C];
#pragma GCC unroll 16
    for (int c = 0; c < C; ++c) acc[c] = _mm512_setzero_ps();
    for (int64_t g0 = 0; g0 < nb; g0 += panel::kGroup) {
      const int64_t n = nb - g0 < panel::kGroup ? nb - g0 : panel::kGroup;
      const uint8_t* gv = pan + size_t(g0) * kRpBlock;  // the group's vectors, then its scales
      const uint8_t* gs = gv + size_t(n) * kRpVec;
      for (int64_t j = 0; j < n; ++j) {
        const int64_t b = g0 + j;
        prefetch_block<false>(pan + size_t(b) * kRpBlock + kRpAhead);
        if constexpr (C <= kPageToC) prefetch_page_ahead(pan + size_t(b) * kRpBlock + kRpPage, kRpBlock);
        if constexpr (far_prefetch(C)) prefetch_block<true>(pan + size_t(b) * kRpBlock + kRpFar);
        __m512i v[8];
        __m512 dw;
        block_rp(gv + size_t(j) * kRpVec, gs + 32 * j, v, dw);
        rp_group<C, 0, G0, I, H>(v, dw, av, b, acc);
        if constexpr (C > G0) rp_group<C, G0, C - G0, I, H>(v, dw, av, b, acc);
      }
    }
#pragma GCC unroll 16
    for (int c = 0; c < C; ++c) _mm512_mask_storeu_ps(Y + c * ldy, mask, acc[c]);
  }

  // Tokens C0..C0+CC-1 of block b.
  template <int C, int C0, int CC, bool I, bool H>
  __attribute__((always_inline)) static inline void rp_group(const __m512i* v, __m512 dw, const ActView& av, int64_t b,
                                                             __m512* acc) {
    // Integer sums are exact in any order: K independent chains per row
    // (and rows interleaved) keep the VPDPBUSD latency hidden at small n.
    constexpr int K = CC <= 4 ? 2 : 1;
    __m512i ai[CC][K];
#pragma GCC unroll 16
    for (int c = 0; c < CC; ++c) {
      ai[c][0] = H ? _mm512_set1_epi32(av.s[b * C + C0 + c]) : _mm512_set1_epi32(-kOffset * av.s[(C0 + c) * av.nblk + b]);
      if constexpr (K == 2) ai[c][K - 1] = _mm512_setzero_si512();
    }
#pragma GCC unroll 8
    for (int j = 0; j < 8; ++j)
#pragma GCC unroll 16
      for (int c = 0; c < CC; ++c) {
        const int8_t* a = I ? av.qs + (b * C + C0 + c) * 32 + 4 * j : av.qs + (C0 + c) * av.qs_stride + 32 * b + 4 * j;
        ai[c][j % K] = dpbusd_bcast(ai[c][j % K], v[j], a);
      }
#pragma GCC unroll 16
    for (int c = 0; c < CC; ++c) {
      const __m512i isum = K == 2 ? _mm512_add_epi32(ai[c][0], ai[c][K - 1]) : ai[c][0];
      const float d = H ? av.d[b * C + C0 + c] : av.d[(C0 + c) * av.nblk + b];
      acc[C0 + c] = _mm512_fmadd_ps(_mm512_cvtepi32_ps(isum), _mm512_mul_ps(dw, _mm512_set1_ps(d)), acc[C0 + c]);
    }
  }

  // Large n: unpack chunks of one or two panels into the packed format of
  // pack() and run the same micro-kernels.
  static void pack_rp(const WeightsRef& W, int64_t g, int RP, int64_t kb0, int64_t kb1, uint8_t* out) {
    const int64_t nb = W.cols / 32;
    const size_t panel_bytes = size_t(nb) * kRpBlock;
    for (int p = 0; p < RP; ++p) {
      const uint8_t* pan = W.data + size_t(g / 16 + p) * panel_bytes;
      for (int64_t b = kb0; b < kb1; ++b) {
        uint8_t* o = out + ((b - kb0) * RP + p) * kPanelBytes;
        __m512i v[8];
        __m512 dw;
        block_rp(pan + panel::vec_offset(kRpVec, b), pan + panel::scale_offset(kRpVec, nb, b), v, dw);
#pragma GCC unroll 8
        for (int j = 0; j < 8; ++j) _mm512_store_si512(o + 64 * j, v[j]);
        _mm512_store_ps(o + 512, dw);
      }
    }
  }

  // The micro-kernel's work on block b of the chunk: RP panels' 8 weight
  // vectors at wv[p] + 64 s, their row scales dw[p] (and minima at mv[p]).
  template <int RP, int C, bool kSt = false>
  __attribute__((always_inline)) static inline void mk_block(const TileArgs& t, int64_t b, const uint8_t* const* wv,
                                                             const __m512* dw, const uint8_t* const* mv,
                                                             __m512 (&acc)[RP][C]) {
    const int8_t* aq = t.aq;
    __m512i ai[RP][C];
    #pragma GCC unroll 16
    for (int c = 0; c < C; ++c) {
      if constexpr (kSt) {  // one broadcast load per accumulator
        #pragma GCC unroll 16
        for (int p = 0; p < RP; ++p) ai[p][c] = _mm512_set1_epi32(t.st[c * t.a_blk_stride + b]);
      } else {
        const __m512i init = kOffset ? _mm512_set1_epi32(-kOffset * t.as[c * t.a_blk_stride + b]) : _mm512_setzero_si512();
        #pragma GCC unroll 16
        for (int p = 0; p < RP; ++p) ai[p][c] = init;
      }
    }
    #pragma GCC unroll 16
    for (int s = 0; s < 8; ++s) {
      __m512i w[RP];
      #pragma GCC unroll 16
      for (int p = 0; p < RP; ++p) w[p] = _mm512_loadu_si512(wv[p] + 64 * s);  // panel streams: 32-byte aligned
      #pragma GCC unroll 16
      for (int c = 0; c < C; ++c) {
        const __m512i x = _mm512_set1_epi32(load_i32(aq + c * t.aq_stride + 32 * b + 4 * s));
        #pragma GCC unroll 16
        for (int p = 0; p < RP; ++p) ai[p][c] = _mm512_dpbusd_epi32(ai[p][c], w[p], x);
      }
    }
    #pragma GCC unroll 16
    for (int p = 0; p < RP; ++p) {
      #pragma GCC unroll 16
      for (int c = 0; c < C; ++c) {
        const __m512 da = _mm512_set1_ps(t.ad[c * t.a_blk_stride + b]);
        acc[p][c] = _mm512_fmadd_ps(_mm512_cvtepi32_ps(ai[p][c]), _mm512_mul_ps(dw[p], da), acc[p][c]);
      }
      if constexpr (kMin) {
        const __m512 m = _mm512_load_ps(reinterpret_cast<const float*>(mv[p]));
        #pragma GCC unroll 16
        for (int c = 0; c < C; ++c) {
          const float s = t.ad[c * t.a_blk_stride + b] * float(t.as[c * t.a_blk_stride + b]);
          acc[p][c] = _mm512_fmadd_ps(m, _mm512_set1_ps(s), acc[p][c]);
        }
      }
    }
  }

  // Over a packed chunk (pack / pack_rp).
  template <int RP, int C>
  static void kernel(const TileArgs& t) {
    if (t.st)
      kernel_packed<RP, C, true>(t);
    else
      kernel_packed<RP, C, false>(t);
  }
  template <int RP, int C, bool kSt>
  static void kernel_packed(const TileArgs& t) {
    __m512 acc[RP][C];
    load_acc<RP, C>(t, acc);
    for (int64_t b = 0; b < t.nb; ++b) {
      const uint8_t* blk = t.pk + b * RP * kPanelBytes;
      const uint8_t* wv[RP];
      const uint8_t* mv[RP];
      __m512 dw[RP];
      #pragma GCC unroll 16
      for (int p = 0; p < RP; ++p) {
        wv[p] = blk + p * kPanelBytes;
        mv[p] = wv[p] + 576;
        dw[p] = _mm512_load_ps(reinterpret_cast<const float*>(wv[p] + 512));
      }
      if (t.spf) t.spf->one();
      mk_block<RP, C, kSt>(t, b, wv, dw, mv, acc);
    }
    store_acc<RP, C>(t, acc);
  }

  // Q8_0 in the panel layout: over the chunk where it lies (qmatmul_panels_direct).
  // t.pk is panel 0 at the chunk's first block, a group boundary; panel 1
  // follows t.pstride bytes on. Each group of panel::kGroup blocks holds the
  // vectors, then the f16 scales (the panel's last group may be shorter).
  static constexpr bool kDirectRp = T == DType::Q8_0;
  template <int RP, int C>
  static void kernel_rp(const TileArgs& t) {
    static_assert(kDirectRp, "only Q8_0's panel vectors are the packed format's bytes");
    __m512 acc[RP][C];
    load_acc<RP, C>(t, acc);
    for (int64_t g = 0; g < t.nb; g += panel::kGroup) {
      const int64_t n = t.nb - g < panel::kGroup ? t.nb - g : panel::kGroup;
      const uint8_t* gv = t.pk + g * int64_t(kRpBlock);
      for (int64_t j = 0; j < n; ++j) {
        const uint8_t* wv[RP];
        __m512 dw[RP];
        #pragma GCC unroll 16
        for (int p = 0; p < RP; ++p) {
          const uint8_t* base = gv + p * t.pstride;
          wv[p] = base + j * int64_t(kRpVec);
          dw[p] = _mm512_cvtph_ps(_mm256_loadu_si256(reinterpret_cast<const __m256i*>(base + n * int64_t(kRpVec) + 32 * j)));
        }
        if (t.spf) t.spf->one();
        mk_block<RP, C, kOffset != 0>(t, g + j, wv, dw, wv, acc);
      }
    }
    store_acc<RP, C>(t, acc);
  }
};

}  // namespace

// Entry point for the legacy formats (called from matmul_q in acts_avx512.cpp).
void qmatmul_legacy(const WeightsRef& W, const ActsRef& A, int64_t r0, int64_t r1, float* Y, int64_t ldy) {
  if (W.panel16) {
    if (W.dtype == DType::Q8_0) return qmatmul_panels<Legacy<DType::Q8_0>>(W, A, r0, r1, Y, ldy);
    if (W.dtype == DType::Q4_0) return qmatmul_panels<Legacy<DType::Q4_0>>(W, A, r0, r1, Y, ldy);
    return;
  }
  switch (W.dtype) {
    case DType::Q8_0: return qmatmul_any<Legacy<DType::Q8_0>>(W, A, r0, r1, Y, ldy);
    case DType::Q4_0: return qmatmul_any<Legacy<DType::Q4_0>>(W, A, r0, r1, Y, ldy);
    case DType::Q4_1: return qmatmul_any<Legacy<DType::Q4_1>>(W, A, r0, r1, Y, ldy);
    case DType::Q5_0: return qmatmul_any<Legacy<DType::Q5_0>>(W, A, r0, r1, Y, ldy);
    case DType::Q5_1: return qmatmul_any<Legacy<DType::Q5_1>>(W, A, r0, r1, Y, ldy);
    default: return;
  }
}

}  // namespace ms::cpu::avx512
