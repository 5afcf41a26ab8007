// spm_proto: a SentencePiece model rebuilt from a GGUF file's tokenizer.ggml.*
// arrays must tokenize exactly like the original tokenizer.model.
#include <gtest/gtest.h>

#include <algorithm>
#include <fstream>
#include <nlohmann/json.hpp>
#include <sstream>

#include "core/error.h"
#include "format/gguf.h"
#include "tokenizer/spm_proto.h"
#include "tokenizer/tokenizer.h"

namespace ms {
namespace {

std::string model_path() { return std::string(MOESERVE_SOURCE_DIR) + "/models/tiny-mixtral-kjv/tokenizer.model"; }
std::string fixture(const std::string& rel) { return std::string(MOESERVE_FIXTURES) + "/" + rel; }

std::string slurp(const std::string& path) {
  std::ifstream f(path, std::ios::binary);
  std::stringstream ss;
  ss << f.rdbuf();
  return ss.str();
}

const Tokenizer& original() {
  static auto t = Tokenizer::from_file(model_path());
  return *t;
}

SpmVocab vocab_from_gguf(const std::string& path) {
  auto g = GgufFile::open(path);
  SpmVocab v;
  v.pieces = g->get_str_arr("tokenizer.ggml.tokens");
  v.scores = g->get_f32_arr("tokenizer.ggml.scores");
  v.types = g->get_i32_arr("tokenizer.ggml.token_type");
  v.bos_id = g->get_i32("tokenizer.ggml.bos_token_id");
  v.eos_id = g->get_i32("tokenizer.ggml.eos_token_id");
  v.unk_id = g->get_i32("tokenizer.ggml.unknown_token_id", 0);
  return v;
}

const Tokenizer& from_gguf() {
  static auto t = [] {
    const std::string path = fixture("gguf/tiny-mixtral-kjv.Q4_0.gguf");
    return Tokenizer::from_serialized_proto(build_spm_proto(vocab_from_gguf(path), path), path);
  }();
  return *t;
}

// Texts: the reference tokenizer cases, each held-out line, the whole held-out text, extras.
std::vector<std::string> texts() {
  std::vector<std::string> out;
  const auto j = nlohmann::json::parse(slurp(fixture("reference/tiny-mixtral-kjv.json")));
  for (const auto& c : j["tokenizer"]) out.push_back(c["text"].get<std::string>());
  for (const auto& p : j["prompts"]) out.push_back(p["prompt"].get<std::string>());
  const std::string held = slurp(fixture("reference/heldout.txt"));
  EXPECT_GT(held.size(), 10000u);
  std::istringstream lines(held);
  for (std::string line; std::getline(lines, line);) out.push_back(line);
  out.push_back(held);
  for (const char* s : {"  two leading", "trailing  ", "\t\ttabs", "\xE2\x96\x81 literal block", "<0x41> <unk> [INST]",
                        "\xF0\x9F\xA6\x80\xF0\x9F\xA7\xAC rare emoji", "\xE4\xB8\x80\xE4\xBA\x8C\xE4\xB8\x89\xE5\x9B\x9B",
                        "x\r\ny", " ", "\n"})
    out.push_back(s);
  return out;
}

TEST(SpmProto, GgufVocabEncodesLikeOriginal) {
  const auto j = nlohmann::json::parse(slurp(fixture("reference/tiny-mixtral-kjv.json")));
  for (const auto& c : j["tokenizer"]) {
    const std::string text = c["text"];
    EXPECT_EQ(from_gguf().encode(text), c["ids"].get<std::vector<int32_t>>()) << text;
  }
  size_t n_tokens = 0;
  for (const std::string& t : texts()) {
    const auto ids = original().encode(t);
    ASSERT_EQ(from_gguf().encode(t), ids) << t.substr(0, 200);
    EXPECT_EQ(from_gguf().decode(ids), original().decode(ids));
    n_tokens += ids.size();
  }
  EXPECT_GT(n_tokens, 20000u);  // the held-out text is ~9k tokens, counted twice
}

TEST(SpmProto, GgufVocabTablesLikeOriginal) {
  const Tokenizer& a = original();
  const Tokenizer& b = from_gguf();
  ASSERT_EQ(a.vocab_size(), 32000);
  ASSERT_EQ(b.vocab_size(), a.vocab_size());
  EXPECT_EQ(b.bos_id(), 1);
  EXPECT_EQ(b.eos_id(), 2);
  for (int32_t id = 0; id < a.vocab_size(); ++id) {
    ASSERT_EQ(b.piece(id), a.piece(id)) << id;
    ASSERT_EQ(b.token_bytes(id), a.token_bytes(id)) << id;
    ASSERT_EQ(b.is_control(id), a.is_control(id)) << id;
  }
}

TEST(SpmProto, ReadModelFileAndRebuild) {
  const SpmModel m = read_spm_model(model_path());
  ASSERT_EQ(m.vocab.pieces.size(), 32000u);
  EXPECT_EQ(m.vocab.pieces[0], "<unk>");
  EXPECT_EQ(m.vocab.types[0], kSpmUnknown);
  EXPECT_EQ(m.vocab.types[1], kSpmControl);
  EXPECT_EQ(m.vocab.types[3], kSpmByte);
  EXPECT_EQ(m.vocab.types[300], kSpmNormal);
  EXPECT_EQ(m.vocab.scores[261], -2.0f);
  EXPECT_EQ(m.vocab.unk_id, 0);
  EXPECT_EQ(m.vocab.bos_id, 1);
  EXPECT_EQ(m.vocab.eos_id, 2);
  EXPECT_EQ(m.vocab.pad_id, -1);
  // Mistral v1: BPE, byte fallback, dummy prefix, whitespace kept.
  EXPECT_EQ(m.options.model_type, 2);
  EXPECT_EQ(m.options.byte_fallback, 1);
  EXPECT_TRUE(m.options.add_dummy_prefix);
  EXPECT_FALSE(m.options.remove_extra_whitespaces);
  EXPECT_TRUE(m.options.escape_whitespaces);
  EXPECT_TRUE(m.options.split_digits);
  EXPECT_TRUE(m.options.allow_whitespace_only_pieces);
  // The GGUF arrays are the same pieces.
  const SpmVocab g = vocab_from_gguf(fixture("gguf/tiny-mixtral-kjv.bf16.gguf"));
  EXPECT_EQ(g.pieces, m.vocab.pieces);
  EXPECT_EQ(g.scores, m.vocab.scores);
  EXPECT_EQ(g.types, m.vocab.types);
  // Rebuilt with the options read from the file: same ids.
  auto t = Tokenizer::from_serialized_proto(build_spm_proto(m.vocab, "rebuilt", m.options), "rebuilt");
  for (const std::string& s : texts()) ASSERT_EQ(t->encode(s), original().encode(s)) << s.substr(0, 200);
}

TEST(SpmProto, OptionsChangeTokenization) {
  // The options are really used: without the dummy prefix "Hello" is no longer "▁Hello".
  const SpmModel m = read_spm_model(model_path());
  SpmOptions o = m.options;
  o.add_dummy_prefix = false;
  auto t = Tokenizer::from_serialized_proto(build_spm_proto(m.vocab, "x", o), "x");
  EXPECT_EQ(original().encode("Hello"), (std::vector<int32_t>{22557}));
  EXPECT_NE(t->encode("Hello"), original().encode("Hello"));
  // byte_fallback -1 (auto) turns on with all 256 byte pieces present: a
  // character with no piece becomes its UTF-8 bytes <0xF0> <0x9F> ...
  const std::string rare = "\xF0\x9F\xA6\x80";
  o = m.options;
  o.byte_fallback = -1;
  auto au = Tokenizer::from_serialized_proto(build_spm_proto(m.vocab, "x", o), "x");
  const auto with = original().encode(rare);
  EXPECT_EQ(au->encode(rare), with);
  EXPECT_NE(std::find(with.begin(), with.end(), 3 + 0xF0), with.end());
  // ... and off when the byte pieces are missing: the character is <unk> (0).
  SpmVocab nb = m.vocab;
  for (auto& t : nb.types)
    if (t == kSpmByte) t = kSpmUnused;
  auto nt = Tokenizer::from_serialized_proto(build_spm_proto(nb, "x", o), "x");
  const auto without = nt->encode(rare);
  EXPECT_NE(std::find(without.begin(), without.end(), 0), without.end());
  EXPECT_EQ(nt->encode("Hello world"), original().encode("Hello world"));
}

TEST(SpmProto, Errors) {
  SpmVocab v;
  auto expect_bad = [](const SpmVocab& v, const std::string& part) {
    try {
      build_spm_proto(v, "ORIGIN");
      ADD_FAILURE() << "no error for " << part;
    } catch (const Error& e) {
      EXPECT_EQ(e.kind(), ErrorKind::BadInput);
      EXPECT_NE(std::string(e.what()).find("ORIGIN: "), std::string::npos) << e.what();
      EXPECT_NE(std::string(e.what()).find(part), std::string::npos) << e.what();
    }
  };
  expect_bad(v, "empty tokenizer vocabulary");
  v.pieces = {"<unk>", "<s>", "</s>", "a"};
  v.scores = {0, 0, 0};
  v.types = {2, 3, 3, 1};
  expect_bad(v, "differ in length");
  v.scores.push_back(-1);
  v.unk_id = 4;
  expect_bad(v, "unknown-token id 4");
  v.unk_id = 3;
  expect_bad(v, "is not of the unknown type");
  v.unk_id = 0;
  v.eos_id = 9;
  expect_bad(v, "EOS id 9");
  v.eos_id = 2;
  v.types[3] = 9;
  expect_bad(v, "token 3 has invalid type 9");
  v.types[3] = 1;
  v.pieces[3] = "";
  expect_bad(v, "token 3 is an empty string");
  v.pieces[3] = "a";
  auto t = Tokenizer::from_serialized_proto(build_spm_proto(v, "ok"), "ok");
  EXPECT_EQ(t->vocab_size(), 4);
  EXPECT_EQ(t->encode("a"), (std::vector<int32_t>{0, 3}));  // "▁" unknown, then "a"
  try {
    read_spm_model("/nonexistent/tokenizer.model");
    ADD_FAILURE();
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("/nonexistent/tokenizer.model"), std::string::npos);
  }
}

}  // namespace
}  // namespace ms
