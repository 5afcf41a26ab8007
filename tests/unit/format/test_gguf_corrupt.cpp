// Broken GGUF files must give Error(BadInput) naming the file, never a crash:
// hand-made headers with one thing wrong each, a real fixture truncated at
// many lengths, and single-byte corruptions all over the header of a real
// fixture and of a small writer-made model.
#include <fcntl.h>
#include <gtest/gtest.h>
#include <unistd.h>

#include <algorithm>
#include <filesystem>
#include <random>

#include "format/gguf.h"
#include "format/gguf_writer.h"
#include "gguf_test_util.h"

namespace ms {
namespace {

using test::Bytes;
using test::expect_bad_input;
using test::temp_path;

void expect_open_fails(const std::string& bytes, const std::string& part) {
  static int n = 0;
  const std::string path = temp_path("bad" + std::to_string(n++) + ".gguf");
  test::write_file(path, bytes);
  SCOPED_TRACE(part);
  expect_bad_input([&] { GgufFile::open(path); }, path + ": ");
  expect_bad_input([&] { GgufFile::open(path); }, part);
  std::filesystem::remove(path);
}

// A valid one-tensor file: kv "general.architecture"="llama", tensor "w" F32 [4].
Bytes valid_prefix(uint64_t n_tensors = 1) {
  Bytes b;
  b.header(n_tensors, 1).str("general.architecture").u32(8).str("llama");
  return b;
}

TEST(GgufCorrupt, HandMade) {
  {  // sanity: the baseline opens
    Bytes b = valid_prefix();
    b.tensor("w", {4}, 0, 0).pad(32).zeros(16);
    const std::string path = temp_path("good.gguf");
    test::write_file(path, b.b);
    auto g = GgufFile::open(path);
    EXPECT_EQ(g->tensors().at(0).nbytes, 16u);
    EXPECT_EQ(g->get_str("general.architecture"), "llama");
  }
  {  // version 2 has the same layout
    Bytes b;
    b.header(1, 1, 2).str("general.architecture").u32(8).str("llama");
    b.tensor("w", {8}, 1, 0).pad(32).zeros(16);
    const std::string path = test::temp_path("good_v2.gguf");
    test::write_file(path, b.b);
    auto g = GgufFile::open(path);
    EXPECT_EQ(g->version(), 2u);
    EXPECT_EQ(g->tensors().at(0).dtype, DType::F16);
  }
  expect_open_fails("", "bad magic");
  expect_open_fails("GGU", "bad magic");
  expect_open_fails("GGML0000000000000000000000", "bad magic");
  expect_open_fails(Bytes().header(0, 0, 1).b, "version 1 is not supported");
  expect_open_fails(Bytes().header(0, 0, 4).b, "unsupported GGUF version 4");
  expect_open_fails(Bytes().header(0, 0, 0x03000000).b, "big-endian");
  expect_open_fails(std::string("GGUF\3\0\0\0", 8), "truncated");
  expect_open_fails(Bytes().header(uint64_t(1) << 62, 0).b, "tensor count");
  expect_open_fails(Bytes().header(0, ~uint64_t(0)).b, "metadata count");
  expect_open_fails(Bytes().header(0, 1).u64(~uint64_t(0)).zeros(16).b, "runs past the end");
  expect_open_fails(Bytes().header(0, 1).str("k").u32(13).u32(0).b, "unknown value type 13");
  expect_open_fails(Bytes().header(0, 1).str("").u32(4).u32(0).b, "is empty");
  expect_open_fails(Bytes().header(0, 2).str("k").u32(4).u32(0).str("k").u32(4).u32(0).b, "'k' appears twice");
  expect_open_fails(Bytes().header(0, 1).str("k").u32(8).u64(100).b, "metadata 'k': string length 100");
  expect_open_fails(Bytes().header(0, 1).str("k").u32(9).u32(6).u64(uint64_t(1) << 61).b, "array of 2305843009213693952 float32");
  expect_open_fails(Bytes().header(0, 1).str("k").u32(9).u32(8).u64(~uint64_t(0) / 2).b, "strings runs past the end");
  expect_open_fails(Bytes().header(0, 1).str("k").u32(9).u32(77).u64(0).b, "unknown array element type 77");
  {
    Bytes b;
    b.header(0, 1).str("deep").u32(9);
    for (int i = 0; i < 20; ++i) b.u32(9).u64(1);
    b.u32(4).u64(0);
    expect_open_fails(b.b, "nested more than");
  }
  expect_open_fails(Bytes().header(0, 1).str("general.alignment").u32(4).u32(48).b, "not a power of two");
  expect_open_fails(Bytes().header(0, 1).str("general.alignment").u32(4).u32(0).b, "not a power of two");
  expect_open_fails(Bytes().header(0, 1).str("general.alignment").u32(5).u32(uint32_t(-8)).b, "positive integer");
  expect_open_fails(Bytes().header(0, 1).str("general.alignment").u32(8).str("x").b, "positive integer");
  // Tensor infos.
  auto with = [](std::vector<uint64_t> ne, uint32_t type, uint64_t off, size_t data = 64) {
    Bytes b = valid_prefix();
    b.tensor("blk.0.attn_q.weight", std::move(ne), type, off).pad(32).zeros(data);
    return b.b;
  };
  expect_open_fails(with({}, 0, 0), "has 0 dimensions");
  expect_open_fails(with({1, 1, 1, 1, 1}, 0, 0), "has 5 dimensions");
  expect_open_fails(with({4, 0}, 0, 0), "invalid dimension 0");
  expect_open_fails(with({uint64_t(1) << 63}, 0, 0), "invalid dimension");
  expect_open_fails(with({uint64_t(1) << 40, uint64_t(1) << 40}, 0, 0), "element count overflows");
  expect_open_fails(with({uint64_t(1) << 61}, 0, 0), "byte size overflows");
  expect_open_fails(with({32}, 99, 0), "tensor 'blk.0.attn_q.weight' has GGML type unknown (id 99)");
  expect_open_fails(with({256}, 10, 0), "tensor 'blk.0.attn_q.weight' has GGML type Q2_K (id 10), which moeserve does not support");
  expect_open_fails(with({33}, 8, 0), "row of 33 elements is not a whole number of Q8_0 blocks of 32");
  expect_open_fails(with({4}, 0, 16), "offset 16 is not a multiple of the alignment 32");
  expect_open_fails(with({32}, 0, 0, 64), "lies outside the file");
  expect_open_fails(with({4}, 0, ~uint64_t(0) - 31), "lies outside the file");
  {
    Bytes b = valid_prefix(2);
    b.tensor("a", {16}, 0, 0).tensor("b", {8}, 0, 32).pad(32).zeros(128);
    expect_open_fails(b.b, "tensors 'a' and 'b' overlap");
  }
  {
    Bytes b = valid_prefix(2);
    b.tensor("a", {8}, 0, 0).tensor("a", {8}, 0, 32).pad(32).zeros(128);
    expect_open_fails(b.b, "tensor 'a' appears twice");
  }
  {
    Bytes b = valid_prefix();
    b.tensor("a", {8}, 0, 0);  // data section missing entirely
    expect_open_fails(b.b, "truncated");
  }
  expect_bad_input([] { GgufFile::open("/nonexistent/x.gguf"); }, "/nonexistent/x.gguf");
  expect_bad_input([] { GgufFile::open(MOESERVE_FIXTURES); }, "not a regular file");
}

// Opens and describes the file; only ms::Error(BadInput) may come out.
// Returns true if it loaded.
bool survives(const std::string& path, bool desc) {
  try {
    auto g = GgufFile::open(path);
    if (desc) (void)load_gguf_desc(path);
    return true;
  } catch (const Error& e) {
    EXPECT_EQ(e.kind(), ErrorKind::BadInput) << e.what();
    EXPECT_EQ(std::string(e.what()).rfind(path + ": ", 0), 0u) << e.what();
    return false;
  }
}

class ScratchCopy {
 public:
  ScratchCopy(const std::string& src, const std::string& name) : path_(temp_path(name)) {
    std::filesystem::copy_file(src, path_, std::filesystem::copy_options::overwrite_existing);
    fd_ = ::open(path_.c_str(), O_RDWR);
    EXPECT_GE(fd_, 0);
  }
  ~ScratchCopy() {
    ::close(fd_);
    std::filesystem::remove(path_);
  }
  const std::string& path() const { return path_; }
  uint8_t byte(size_t pos) const {
    uint8_t b = 0;
    EXPECT_EQ(::pread(fd_, &b, 1, off_t(pos)), 1);
    return b;
  }
  void set(size_t pos, uint8_t b) { EXPECT_EQ(::pwrite(fd_, &b, 1, off_t(pos)), 1); }
  void truncate(size_t n) { EXPECT_EQ(::ftruncate(fd_, off_t(n)), 0); }

 private:
  std::string path_;
  int fd_ = -1;
};

const std::string kFixture = test::fixture("gguf/tiny-mixtral-kjv.Q4_K_M.gguf");

TEST(GgufCorrupt, TruncatedFixture) {
  auto g = GgufFile::open(kFixture);
  uint64_t end = 0;  // end of the last tensor's bytes
  for (const auto& t : g->tensors()) end = std::max<uint64_t>(end, g->data_offset() + t.offset + t.nbytes);
  const size_t size = g->mapped()->size();
  g.reset();
  ASSERT_LE(end, size);

  std::vector<size_t> cuts = {size, size_t(end), size_t(end) - 1, 0, 1, 3, 4, 7, 8, 15, 16, 23, 24};
  std::mt19937_64 rng(42);
  for (size_t i = 25; i < 200; ++i) cuts.push_back(i);
  for (int i = 0; i < 300; ++i) cuts.push_back(size_t(rng() % (size_t(end) + 1)));
  std::sort(cuts.rbegin(), cuts.rend());  // shrink the copy step by step
  cuts.erase(std::unique(cuts.begin(), cuts.end()), cuts.end());
  ScratchCopy c(kFixture, "trunc.gguf");
  int loaded = 0;
  for (size_t n : cuts) {
    c.truncate(n);
    SCOPED_TRACE(n);
    const bool ok = survives(c.path(), true);
    EXPECT_EQ(ok, n >= end) << "truncated to " << n << " of " << size << " bytes";
    loaded += ok;
  }
  EXPECT_GE(loaded, 1);
}

TEST(GgufCorrupt, ByteFlipsInFixtureHeader) {
  auto g = GgufFile::open(kFixture);
  const size_t header = g->data_offset();
  const std::string& first = g->tensors().front().name;
  // Start of the tensor infos: the u64 length in front of the first name.
  const std::string all(reinterpret_cast<const char*>(g->mapped()->data()), header);
  const size_t infos = all.rfind(first) - 8;
  g.reset();

  std::vector<size_t> where;
  for (size_t i = 0; i < 96; ++i) where.push_back(i);  // magic, counts, first keys
  for (size_t i = infos; i < std::min(header, infos + 200); ++i) where.push_back(i);  // first tensor infos, every byte
  for (size_t i = header - 64; i < header; ++i) where.push_back(i);  // the last one and the padding
  std::mt19937_64 rng(7);
  for (int i = 0; i < 300; ++i) where.push_back(infos + size_t(rng() % (header - infos)));  // other tensor infos
  for (int i = 0; i < 300; ++i) where.push_back(size_t(rng() % header));  // anywhere in the metadata
  ScratchCopy c(kFixture, "flip.gguf");
  int failed = 0, total = 0;
  for (size_t pos : where) {
    const uint8_t orig = c.byte(pos);
    for (uint8_t mask : {uint8_t(0x80), uint8_t(0xFF)}) {
      c.set(pos, uint8_t(orig ^ mask));
      SCOPED_TRACE(pos);
      failed += !survives(c.path(), false);
      ++total;
    }
    c.set(pos, orig);
  }
  EXPECT_TRUE(survives(c.path(), true));  // restored
  // Most flips in structure bytes are caught; some (inside strings, floats) are harmless.
  EXPECT_GT(failed, total / 4);
}

TEST(GgufCorrupt, EveryByteOfSmallModel) {
  // A small model made by the writer: flip every header byte three ways and
  // describe it, and cut it at every length through the header.
  const std::string path = temp_path("small_model.gguf");
  {
    GgufWriter w;
    w.add_str("general.architecture", "llama");
    w.add_u32("llama.block_count", 1);
    w.add_u32("llama.embedding_length", 32);
    w.add_u32("llama.feed_forward_length", 64);
    w.add_u32("llama.attention.head_count", 2);
    w.add_u32("llama.attention.head_count_kv", 1);
    w.add_u32("llama.expert_count", 2);
    w.add_u32("llama.expert_used_count", 1);
    w.add_f32("llama.rope.freq_base", 1e6f);
    w.add_arr_str("tokenizer.ggml.tokens", {"<unk>", "<s>", "</s>", "a"});
    w.add_arr_f32("tokenizer.ggml.scores", {0, 0, 0, -1});
    w.add_arr_i32("tokenizer.ggml.token_type", {2, 3, 3, 1});
    size_t total = 0;
    auto add = [&](const std::string& n, DType t, std::vector<int64_t> s) { total += w.add_tensor(n, t, s); };
    add("token_embd.weight", DType::F16, {4, 32});
    add("blk.0.attn_norm.weight", DType::F32, {32});
    add("blk.0.attn_q.weight", DType::Q8_0, {32, 32});
    add("blk.0.attn_k.weight", DType::Q8_0, {16, 32});
    add("blk.0.attn_v.weight", DType::Q8_0, {16, 32});
    add("blk.0.attn_output.weight", DType::Q4_0, {32, 32});
    add("blk.0.ffn_norm.weight", DType::F32, {32});
    add("blk.0.ffn_gate_inp.weight", DType::F32, {2, 32});
    add("blk.0.ffn_gate_exps.weight", DType::BF16, {2, 64, 32});
    add("blk.0.ffn_up_exps.weight", DType::BF16, {2, 64, 32});
    add("blk.0.ffn_down_exps.weight", DType::BF16, {2, 32, 64});
    add("output_norm.weight", DType::F32, {32});
    w.open(path);
    const std::string zeros(total, '\0');
    w.write(zeros.data(), zeros.size());
    w.close();
  }
  ASSERT_TRUE(survives(path, true));
  auto g = GgufFile::open(path);
  const size_t header = g->data_offset();
  uint64_t end = 0;
  for (const auto& t : g->tensors()) end = std::max<uint64_t>(end, g->data_offset() + t.offset + t.nbytes);
  g.reset();
  EXPECT_TRUE(load_gguf_desc(path).cfg.tie_word_embeddings);

  ScratchCopy c(path, "small_flip.gguf");
  for (size_t pos = 0; pos < header; ++pos) {
    const uint8_t orig = c.byte(pos);
    for (uint8_t mask : {uint8_t(0x01), uint8_t(0x80), uint8_t(0xFF)}) {
      c.set(pos, uint8_t(orig ^ mask));
      SCOPED_TRACE(pos);
      survives(c.path(), true);
    }
    c.set(pos, orig);
  }
  // Every length through the header, then a stride through the data.
  const size_t size = std::filesystem::file_size(path);
  std::vector<size_t> cuts = {size, size_t(end), size_t(end) - 1};
  for (size_t n = 0; n < std::min(size, header + 64); ++n) cuts.push_back(n);
  for (size_t n = header + 64; n < size; n += 61) cuts.push_back(n);
  std::sort(cuts.rbegin(), cuts.rend());
  cuts.erase(std::unique(cuts.begin(), cuts.end()), cuts.end());
  for (size_t n : cuts) {
    c.truncate(n);
    SCOPED_TRACE(n);
    EXPECT_EQ(survives(c.path(), true), n >= end);
  }
}

}  // namespace
}  // namespace ms
