// Cross-check against files written by llama.cpp (tests/fixtures/gguf): the
// quantized GGUFs were made from the bf16 GGUF by llama-quantize.
//  - Our legacy quantizers reproduce its Q8_0/Q4_0/Q5_0/Q5_1 tensors byte for byte.
//  - Our dequantization of its Q4_K/Q6_K tensors reproduces the bf16 weights to
//    the expected accuracy (so the block layouts agree), and our Q4_K/Q6_K
//    quantizers are no less accurate than its on the same tensors.
// A minimal GGUF reader lives here; the real loader is in src/format.
#include <gtest/gtest.h>

#include <cmath>
#include <fstream>
#include <functional>
#include <iterator>
#include <stdexcept>
#include <map>
#include <string>

#include "kernel_test_util.h"

namespace ms::test {
namespace {

struct GgufTensor {
  DType t;
  int64_t cols = 0, rows = 1;
  size_t offset = 0;
};

struct Gguf {
  std::vector<uint8_t> bytes;
  size_t data = 0;
  std::map<std::string, GgufTensor> tensors;
  const uint8_t* at(const GgufTensor& t) const { return bytes.data() + data + t.offset; }
};

bool ggml_type(uint32_t id, DType* t) {
  switch (id) {
    case 0: *t = DType::F32; return true;
    case 1: *t = DType::F16; return true;
    case 2: *t = DType::Q4_0; return true;
    case 3: *t = DType::Q4_1; return true;
    case 6: *t = DType::Q5_0; return true;
    case 7: *t = DType::Q5_1; return true;
    case 8: *t = DType::Q8_0; return true;
    case 12: *t = DType::Q4_K; return true;
    case 13: *t = DType::Q5_K; return true;
    case 14: *t = DType::Q6_K; return true;
    case 30: *t = DType::BF16; return true;
    default: return false;
  }
}

Gguf read_gguf(const std::string& path) {
  Gguf g;
  std::ifstream f(path, std::ios::binary);
  g.bytes.assign(std::istreambuf_iterator<char>(f), {});
  size_t o = 0;
  auto rd = [&](size_t n) {
    if (o + n > g.bytes.size()) throw std::runtime_error("truncated gguf");
    const uint8_t* p = g.bytes.data() + o;
    o += n;
    return p;
  };
  auto u32 = [&] { uint32_t v; std::memcpy(&v, rd(4), 4); return v; };
  auto u64 = [&] { uint64_t v; std::memcpy(&v, rd(8), 8); return v; };
  auto str = [&] { const uint64_t n = u64(); return std::string(reinterpret_cast<const char*>(rd(n)), n); };
  std::function<void(uint32_t)> skip = [&](uint32_t type) {
    static const size_t sz[] = {1, 1, 2, 2, 4, 4, 4, 1, 0, 0, 8, 8, 8};
    if (type == 8) {
      str();
    } else if (type == 9) {
      const uint32_t et = u32();
      const uint64_t n = u64();
      for (uint64_t i = 0; i < n; ++i) skip(et);
    } else {
      rd(sz[type]);
    }
  };
  if (std::memcmp(rd(4), "GGUF", 4) != 0) throw std::runtime_error("not gguf");
  u32();
  const uint64_t nt = u64(), nkv = u64();
  size_t alignment = 32;
  for (uint64_t i = 0; i < nkv; ++i) {
    const std::string key = str();
    const uint32_t type = u32();
    if (key == "general.alignment" && type == 4)
      alignment = u32();
    else
      skip(type);
  }
  for (uint64_t i = 0; i < nt; ++i) {
    const std::string name = str();
    const uint32_t nd = u32();
    GgufTensor t;
    for (uint32_t d = 0; d < nd; ++d) {
      const int64_t v = int64_t(u64());
      if (d == 0)
        t.cols = v;
      else
        t.rows *= v;
    }
    const uint32_t type = u32();
    t.offset = size_t(u64());
    if (ggml_type(type, &t.t)) g.tensors[name] = t;
  }
  g.data = (o + alignment - 1) / alignment * alignment;
  return g;
}

std::string fixture(const char* name) { return std::string(MOESERVE_FIXTURES) + "/gguf/" + name; }

std::vector<float> to_f32(const Gguf& g, const GgufTensor& t) {
  std::vector<float> x(size_t(t.rows * t.cols));
  const size_t rb = row_bytes(t.t, t.cols);
  for (int64_t r = 0; r < t.rows; ++r) ops::dequantize_row(t.t, g.at(t) + r * rb, x.data() + r * t.cols, t.cols);
  return x;
}

class GgufCrossCheck : public ::testing::Test {
 protected:
  static void SetUpTestSuite() { src_ = new Gguf(read_gguf(fixture("tiny-mixtral-kjv.bf16.gguf"))); }
  static void TearDownTestSuite() { delete src_; }
  static Gguf* src_;
};
Gguf* GgufCrossCheck::src_ = nullptr;

TEST_F(GgufCrossCheck, LegacyQuantizersReproduceLlamaQuantizeBytes) {
  int checked = 0;
  for (const char* file : {"tiny-mixtral-kjv.Q8_0.gguf", "tiny-mixtral-kjv.Q4_0.gguf", "tiny-mixtral-kjv.Q4_K_M.gguf"}) {
    const Gguf q = read_gguf(fixture(file));
    for (const auto& [name, t] : q.tensors) {
      if (t.t != DType::Q8_0 && t.t != DType::Q4_0 && t.t != DType::Q4_1 && t.t != DType::Q5_0 && t.t != DType::Q5_1)
        continue;
      const auto it = src_->tensors.find(name);
      ASSERT_NE(it, src_->tensors.end()) << name;
      ASSERT_EQ(it->second.cols, t.cols);
      const std::vector<float> x = to_f32(*src_, it->second);
      const size_t rb = row_bytes(t.t, t.cols);
      std::vector<uint8_t> mine(rb);
      for (int64_t r = 0; r < t.rows; ++r) {
        ops::quantize_row(t.t, x.data() + r * t.cols, mine.data(), t.cols);
        ASSERT_EQ(0, std::memcmp(mine.data(), q.at(t) + r * rb, rb)) << file << " " << name << " row " << r;
      }
      ++checked;
    }
  }
  EXPECT_GT(checked, 30);
}

TEST_F(GgufCrossCheck, KQuantLayoutsAndQuality) {
  const Gguf q = read_gguf(fixture("tiny-mixtral-kjv.Q4_K_M.gguf"));
  int checked = 0;
  for (const auto& [name, t] : q.tensors) {
    if (t.t != DType::Q4_K && t.t != DType::Q6_K) continue;
    const std::vector<float> x = to_f32(*src_, src_->tensors.at(name));
    const std::vector<float> theirs = to_f32(q, t);
    std::vector<float> ours(x.size());
    std::vector<uint8_t> buf(row_bytes(t.t, t.cols));
    for (int64_t r = 0; r < t.rows; ++r) {
      ops::quantize_row(t.t, x.data() + r * t.cols, buf.data(), t.cols);
      ops::dequantize_row(t.t, buf.data(), ours.data() + r * t.cols, t.cols);
    }
    double e_theirs = 0, e_ours = 0, s = 0;
    for (size_t i = 0; i < x.size(); ++i) {
      s += double(x[i]) * x[i];
      e_theirs += double(x[i] - theirs[i]) * (x[i] - theirs[i]);
      e_ours += double(x[i] - ours[i]) * (x[i] - ours[i]);
    }
    const double rel_theirs = std::sqrt(e_theirs / s), rel_ours = std::sqrt(e_ours / s);
    // A layout mistake would give errors of order 1.
    EXPECT_LT(rel_theirs, t.t == DType::Q4_K ? 0.1 : 0.03) << name;
    EXPECT_LE(rel_ours, rel_theirs * 1.005) << name << " ours " << rel_ours << " llama.cpp " << rel_theirs;
    RecordProperty(name + "_rel_rmse_ours_vs_llamacpp", std::to_string(rel_ours) + " " + std::to_string(rel_theirs));
    ++checked;
  }
  EXPECT_EQ(checked, 4);
}

}  // namespace
}  // namespace ms::test
