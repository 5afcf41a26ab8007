// Paged attention: the scalar reference ref::paged_attention against attention
// computed in double precision over awkward shapes; every kernel (AVX2,
// AVX-512) equal to the reference bit for bit; and bit-exact invariances
// (decode == prefill, batch of N == batch of 1, thread count).
//
// Tolerance of the reference, per output element (token, head, c), from the
// data (u = 2^-24):
//  - scores: the products q_c·k_jc (q rounded to f16 for an f16 cache) are
//    added by FMAs in 16 lanes and a tree; the sum is within
//    (d + d/16 + 8)·u·scale·Σ_c|q_c k_jc| of the exact one, plus u·|s_j - max|
//    for the subtraction of the max; call the largest of these over the row's
//    keys δ.
//  - probabilities: p_j = e_j / Σe. A score error δ moves log p_j by at most 2δ;
//    the polynomial exp adds at most 2 ulp, the sum of n terms at most n·u
//    relative, the division and multiplication 1 ulp each.
//  - output: Σ_j p_j v_jc adds at most (n + 2)·u·Σ_j p_j|v_jc| by itself.
// So |ref - exact| <= (2δ + (2n + 24)·u) · Σ_j p_j|v_jc|, with p and the sums
// computed here in double. We allow twice that.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <cstring>
#include <numeric>
#include <random>
#include <vector>

#include "kernel_test_util.h"
#include "kernels/attention.h"
#include "kernels/cpu/attention_cpu.h"
#include "kernels/ref/attention_ref.h"

namespace ms::test {
namespace {

using ops::AttnImpl;
using ops::AttnTask;
using ops::KvDType;
using ops::PagedKv;

bool impl_available(AttnImpl i) {
  if (i == AttnImpl::Avx2) return has_isa(Isa::Avx2);
  if (i == AttnImpl::Avx512) return has_isa(Isa::Avx512);
  return true;
}
const char* impl_str(AttnImpl i) {
  return i == AttnImpl::Avx512 ? "avx512" : i == AttnImpl::Avx2 ? "avx2" : i == AttnImpl::Scalar ? "scalar" : "auto";
}
const AttnImpl kImpls[] = {AttnImpl::Scalar, AttnImpl::Avx2, AttnImpl::Avx512};

struct Shape {
  int64_t heads, kv_heads, dim;
};
struct TaskSpec {
  int32_t pos0, n;
};

// A paged cache holding several sequences, each in its own shuffled blocks;
// every slot no sequence owns holds NaN, so a kernel reading one fails.
struct Fixture {
  Shape s;
  KvDType dtype;
  int32_t bs;
  int64_t window;
  std::vector<TaskSpec> specs;
  std::vector<uint8_t> kpool, vpool;
  std::vector<std::vector<int32_t>> tables;
  std::vector<std::vector<float>> q;  // per task [n][heads][dim]
  PagedKv kv;

  Fixture(Shape shape, KvDType dt, int32_t block_size, int64_t win, std::vector<TaskSpec> tasks, uint64_t seed,
          float qscale = 1.0f)
      : s(shape), dtype(dt), bs(block_size), window(win), specs(std::move(tasks)) {
    std::mt19937_64 g(seed);
    int32_t nblocks = 3;
    for (const TaskSpec& t : specs) nblocks += (t.pos0 + t.n + bs - 1) / bs;
    std::vector<int32_t> perm(static_cast<size_t>(nblocks));
    std::iota(perm.begin(), perm.end(), 0);
    std::shuffle(perm.begin(), perm.end(), g);
    const size_t elem = dt == KvDType::F16 ? 2 : 4;
    const size_t n = size_t(nblocks) * size_t(bs) * size_t(s.kv_heads * s.dim);
    kpool.resize(n * elem);
    vpool.resize(n * elem);
    for (size_t i = 0; i < n; ++i) {
      if (dt == KvDType::F16) {
        const uint16_t nan = 0x7E00;
        std::memcpy(&kpool[i * 2], &nan, 2), std::memcpy(&vpool[i * 2], &nan, 2);
      } else {
        const float nan = NAN;
        std::memcpy(&kpool[i * 4], &nan, 4), std::memcpy(&vpool[i * 4], &nan, 4);
      }
    }
    kv = PagedKv{kpool.data(), vpool.data(), dt, bs, s.kv_heads, s.dim};
    size_t next = 0;
    for (size_t t = 0; t < specs.size(); ++t) {
      const int32_t ctx = specs[t].pos0 + specs[t].n;
      tables.emplace_back(perm.begin() + long(next), perm.begin() + long(next) + (ctx + bs - 1) / bs);
      next += size_t((ctx + bs - 1) / bs);
      for (int32_t p = 0; p < ctx; ++p) {
        const auto k = gaussian(size_t(s.kv_heads * s.dim), g());
        const auto v = gaussian(size_t(s.kv_heads * s.dim), g());
        ops::kv_store(kv, tables[t][size_t(p / bs)], p % bs, k.data(), v.data());
      }
      q.push_back(gaussian(size_t(specs[t].n * s.heads * s.dim), g(), qscale));
    }
  }

  // Runs attention over all tasks (or only task `only`) into fresh outputs.
  std::vector<std::vector<float>> run(AttnImpl impl, int threads, bool reference = false, int only = -1) const {
    std::vector<std::vector<float>> out;
    std::vector<AttnTask> tasks;
    for (size_t t = 0; t < specs.size(); ++t) out.emplace_back(q[t].size(), 777.0f);
    for (size_t t = 0; t < specs.size(); ++t)
      if (only < 0 || int(t) == only)
        tasks.push_back({q[t].data(), out[t].data(), specs[t].n, specs[t].pos0, tables[t].data()});
    ThreadPool pool(threads);
    if (reference)
      ref::paged_attention(tasks.data(), int64_t(tasks.size()), kv, s.heads, window, pool);
    else
      ops::paged_attention(tasks.data(), int64_t(tasks.size()), kv, s.heads, window, pool, impl);
    return out;
  }

  float key(const void* pool, size_t t, int64_t j, int64_t h, int64_t c) const {
    const int64_t off = kv.offset(tables[t][size_t(j / bs)], int32_t(j % bs), h) + c;
    if (dtype == KvDType::F32) return static_cast<const float*>(pool)[off];
    return f16_to_f32(static_cast<const uint16_t*>(pool)[off]);
  }

  // Per output element, attention in double precision and the allowed
  // |ref - exact| derived above.
  struct Accuracy {
    std::vector<std::vector<float>> exact;
    std::vector<std::vector<double>> tol;
  };
  Accuracy accuracy() const {
    const int64_t d = s.dim, group = s.heads / s.kv_heads;
    const double u = 0x1p-24, scale = 1.0 / std::sqrt(double(d));
    std::vector<std::vector<double>> tol;
    std::vector<std::vector<float>> exact;
    for (size_t t = 0; t < specs.size(); ++t) {
      tol.emplace_back(q[t].size());
      exact.emplace_back(q[t].size());
      for (int32_t i = 0; i < specs[t].n; ++i) {
        const int64_t pos = specs[t].pos0 + i;
        const int64_t j0 = window > 0 ? std::max<int64_t>(0, pos - window + 1) : 0, n = pos - j0 + 1;
        for (int64_t h = 0; h < s.heads; ++h) {
          const float* qv = q[t].data() + (i * s.heads + h) * d;
          std::vector<double> qr(static_cast<size_t>(d)), sc(static_cast<size_t>(n)), mag(static_cast<size_t>(n));
          for (int64_t c = 0; c < d; ++c)
            qr[size_t(c)] = dtype == KvDType::F16 ? double(f16_to_f32(f32_to_f16(qv[c]))) : double(qv[c]);
          double mx = -INFINITY;
          for (int64_t j = j0; j <= pos; ++j) {
            double a = 0, m = 0;
            for (int64_t c = 0; c < d; ++c) {
              const double pr = qr[size_t(c)] * key(kv.k, t, j, h / group, c);
              a += pr, m += std::fabs(pr);
            }
            sc[size_t(j - j0)] = a * scale, mag[size_t(j - j0)] = m * scale;
            mx = std::max(mx, a * scale);
          }
          double sum = 0, delta = 0;
          for (int64_t k = 0; k < n; ++k) {
            delta = std::max(delta, double(d + d / 16 + 8) * u * mag[size_t(k)] + u * std::fabs(sc[size_t(k)] - mx));
            sc[size_t(k)] = std::exp(sc[size_t(k)] - mx);
            sum += sc[size_t(k)];
          }
          const double rel = 2.0 * (2.0 * delta + double(2 * n + 24) * u);
          double* tr = tol[t].data() + (i * s.heads + h) * d;
          std::vector<double> o(static_cast<size_t>(d), 0.0);
          for (int64_t c = 0; c < d; ++c) tr[c] = 0;
          for (int64_t j = j0; j <= pos; ++j) {
            const double pj = sc[size_t(j - j0)] / sum;
            for (int64_t c = 0; c < d; ++c) {
              const double v = key(kv.v, t, j, h / group, c);
              tr[c] += pj * std::fabs(v);
              o[size_t(c)] += pj * v;
            }
          }
          for (int64_t c = 0; c < d; ++c) {
            tr[c] = rel * tr[c] + 1e-30;
            exact[t][size_t((i * s.heads + h) * d + c)] = float(o[size_t(c)]);
          }
        }
      }
    }
    return {exact, tol};
  }
};

void check(const Fixture& f, const std::vector<std::vector<float>>& got, const std::vector<std::vector<float>>& want,
           const std::vector<std::vector<double>>& tol, const std::string& what, double* worst) {
  for (size_t t = 0; t < got.size(); ++t)
    for (size_t i = 0; i < got[t].size(); ++i) {
      const double err = std::fabs(double(got[t][i]) - double(want[t][i]));
      *worst = std::max(*worst, err / tol[t][i]);
      ASSERT_LE(err, tol[t][i]) << what << " task " << t << " element " << i << ": " << got[t][i] << " vs "
                                << want[t][i];
    }
}

std::vector<TaskSpec> mixed_tasks(bool long_prefill) {
  // Contexts 1, 7, 33 and 300: prefill from 0, a later chunk, decode steps.
  std::vector<TaskSpec> t = {{0, 1}, {0, 7}, {20, 13}, {299, 1}, {263, 37}, {32, 1}};
  if (long_prefill) t.push_back({0, 300});
  return t;
}

bool bit_equal(const std::vector<std::vector<float>>& a, const std::vector<std::vector<float>>& b) {
  for (size_t t = 0; t < a.size(); ++t)
    if (a[t].size() != b[t].size() || std::memcmp(a[t].data(), b[t].data(), a[t].size() * 4) != 0) return false;
  return true;
}

class AttentionShapes : public ::testing::TestWithParam<Shape> {};

TEST_P(AttentionShapes, ReferenceAccurateAndKernelsBitIdentical) {
  const Shape s = GetParam();
  uint64_t seed = uint64_t(s.heads * 1000 + s.kv_heads * 100 + s.dim);
  double worst = 0;  // largest |ref - exact| / tolerance seen (reported)
  for (KvDType dt : {KvDType::F32, KvDType::F16})
    for (int32_t bs : {16, 32})
      for (int64_t window : {0, 5}) {
        const Fixture f(s, dt, bs, window, mixed_tasks(s.heads * s.dim <= 640), ++seed, window ? 3.0f : 1.0f);
        const auto want = f.run(AttnImpl::Scalar, 2, /*reference=*/true);
        const auto acc = f.accuracy();
        const std::string cfg = std::string(dt == KvDType::F16 ? " f16" : " f32") + " bs " + std::to_string(bs) +
                                " window " + std::to_string(window);
        check(f, want, acc.exact, acc.tol, "ref" + cfg, &worst);
        for (AttnImpl impl : kImpls) {
          if (!impl_available(impl)) continue;
          const std::string what = impl_str(impl) + cfg;
          const auto got1 = f.run(impl, 1);
          EXPECT_TRUE(bit_equal(got1, want)) << what << ": not the reference's bits";
          // Any thread count, and each task alone: the same bits.
          EXPECT_TRUE(bit_equal(got1, f.run(impl, 3))) << what << ": 1 vs 3 threads";
          for (int only = 0; only < int(f.specs.size()); ++only) {
            const auto alone = f.run(impl, 2, false, only);
            EXPECT_EQ(std::memcmp(alone[size_t(only)].data(), got1[size_t(only)].data(), alone[size_t(only)].size() * 4), 0)
                << what << ": task " << only << " alone vs batched";
          }
        }
      }
  std::printf("  largest error / tolerance: %.3g\n", worst);
}

INSTANTIATE_TEST_SUITE_P(All, AttentionShapes,
                         ::testing::Values(Shape{32, 8, 128}, Shape{32, 8, 64}, Shape{4, 4, 128}, Shape{8, 1, 128},
                                           Shape{4, 4, 80}, Shape{8, 2, 64}, Shape{6, 3, 8}, Shape{4, 2, 20}),
                         [](const auto& i) {
                           return "h" + std::to_string(i.param.heads) + "_kv" + std::to_string(i.param.kv_heads) +
                                  "_d" + std::to_string(i.param.dim);
                         });

// Blocks smaller than a SIMD key chunk, and not dividing it.
TEST(Attention, OddBlockSizes) {
  for (const Shape s : {Shape{8, 2, 64}, Shape{4, 4, 80}})
    for (int32_t bs : {1, 5})
      for (int64_t window : {0, 5}) {
        const Fixture f(s, KvDType::F16, bs, window, {{0, 40}, {70, 1}, {30, 9}}, uint64_t(bs * 10 + window));
        const auto want = f.run(AttnImpl::Scalar, 2, /*reference=*/true);
        const auto acc = f.accuracy();
        double worst = 0;
        check(f, want, acc.exact, acc.tol, "ref bs " + std::to_string(bs), &worst);
        for (AttnImpl impl : kImpls) {
          if (!impl_available(impl)) continue;
          EXPECT_TRUE(bit_equal(f.run(impl, 3), want)) << impl_str(impl) << " bs " << bs << ": not the reference's bits";
        }
      }
}

// One token's output is bit-identical whether computed alone (decode at pos p),
// inside a prefill from 0, or inside a later chunk, for every kernel.
TEST(Attention, DecodeEqualsPrefillBitExact) {
  for (KvDType dt : {KvDType::F32, KvDType::F16})
    for (int64_t window : {0, 5}) {
      const Shape s{32, 8, 128};
      const Fixture f(s, dt, 16, window, {{0, 70}}, 99);
      for (AttnImpl impl : kImpls) {
        if (!impl_available(impl)) continue;
        const auto full = f.run(impl, 2);
        const size_t row = size_t(s.heads * s.dim);
        ThreadPool pool(2);
        for (int32_t p : {0, 1, 5, 15, 16, 17, 31, 32, 33, 47, 64, 69}) {
          std::vector<float> out(row);
          const AttnTask t{f.q[0].data() + size_t(p) * row, out.data(), 1, p, f.tables[0].data()};
          ops::paged_attention(&t, 1, f.kv, s.heads, window, pool, impl);
          EXPECT_EQ(std::memcmp(out.data(), full[0].data() + size_t(p) * row, row * 4), 0)
              << impl_str(impl) << " window " << window << " decode at " << p;
        }
        // A chunk [p0, p0 + n) (as a later prefill step) next to a decode task.
        for (auto [p0, n] : {std::pair{9, 30}, std::pair{33, 37}, std::pair{1, 1}}) {
          std::vector<float> out(size_t(n) * row), out2(row);
          const AttnTask t[2] = {{f.q[0].data() + size_t(p0) * row, out.data(), n, p0, f.tables[0].data()},
                                 {f.q[0].data() + 50 * row, out2.data(), 1, 50, f.tables[0].data()}};
          ops::paged_attention(t, 2, f.kv, s.heads, window, pool, impl);
          EXPECT_EQ(std::memcmp(out.data(), full[0].data() + size_t(p0) * row, out.size() * 4), 0)
              << impl_str(impl) << " window " << window << " chunk at " << p0;
          EXPECT_EQ(std::memcmp(out2.data(), full[0].data() + 50 * row, row * 4), 0) << impl_str(impl);
        }
      }
    }
}

// Auto runs the kernel set ops::isa_name() names.
TEST(Attention, AutoIsTheMatmulIsa) {
  const Fixture f(Shape{8, 2, 64}, KvDType::F16, 16, 0, {{0, 20}, {5, 3}}, 5);
  const std::string n = ops::isa_name();
  const AttnImpl expect = n == "avx512" ? AttnImpl::Avx512 : n == "avx2" ? AttnImpl::Avx2 : AttnImpl::Scalar;
  EXPECT_TRUE(bit_equal(f.run(AttnImpl::Auto, 2), f.run(expect, 2))) << n;
}

// The KV cache's f32 -> f16 stores: each SIMD converter equals the scalar
// f32_to_f16 bit for bit, over lengths around the vector widths and values
// that exercise every rounding path (ties, subnormals, overflow, NaN payloads).
TEST(Attention, F16RowConversionMatchesScalar) {
  std::vector<uint32_t> special = {0x00000000u, 0x80000000u, 0x33000000u, 0x33000001u, 0x387fe000u, 0x38800000u,
                                   0x38801000u, 0x38803000u, 0x3f801000u, 0x3f803000u, 0x477fe000u, 0x477ff000u,
                                   0x477fefffu, 0x7f7fffffu, 0x7f800000u, 0xff800000u, 0x7fc00000u, 0x7f800001u,
                                   0xffffffffu, 0x00000001u, 0x80400000u, 0x3c000000u};
  std::mt19937 rng(7);
  for (int64_t n : {1, 7, 8, 9, 15, 16, 17, 33, 4097}) {
    std::vector<float> x(static_cast<size_t>(n));
    for (int64_t i = 0; i < n; ++i) {
      uint32_t u = i < int64_t(special.size()) && n > 30 ? special[size_t(i)] : uint32_t(rng());
      if (i % 3 == 1) u = (u & 0x807fffffu) | (uint32_t(100 + rng() % 50) << 23);  // mostly in f16's range
      std::memcpy(&x[size_t(i)], &u, 4);
    }
    std::vector<uint16_t> want(static_cast<size_t>(n)), got(static_cast<size_t>(n), 0xABCD);
    for (int64_t i = 0; i < n; ++i) want[size_t(i)] = f32_to_f16(x[size_t(i)]);
    ops::f32_to_f16_row(x.data(), got.data(), n);
    EXPECT_EQ(got, want) << "dispatched, n=" << n;
    if (has_isa(Isa::Avx512)) {
      std::fill(got.begin(), got.end(), 0xABCD);
      cpu::avx512::f32_to_f16_row(x.data(), got.data(), n);
      EXPECT_EQ(got, want) << "avx512, n=" << n;
    }
    if (has_isa(Isa::Avx2)) {
      std::fill(got.begin(), got.end(), 0xABCD);
      cpu::avx2::f32_to_f16_row(x.data(), got.data(), n);
      EXPECT_EQ(got, want) << "avx2, n=" << n;
    }
  }
}

}  // namespace
}  // namespace ms::test
