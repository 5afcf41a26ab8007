// Tokenizer: ids identical to SentencePiece's reference cases, decoding,
// token bytes, UTF-8 helpers, and the Mistral v1 chat format.
#include <gtest/gtest.h>

#include <fstream>
#include <nlohmann/json.hpp>

#include "core/error.h"
#include "tokenizer/chat.h"
#include "tokenizer/tokenizer.h"

namespace ms {
namespace {

std::string model_path() { return std::string(MOESERVE_SOURCE_DIR) + "/models/tiny-mixtral-kjv/tokenizer.model"; }

const Tokenizer& tok() {
  static auto t = Tokenizer::from_file(model_path());
  return *t;
}

TEST(Tokenizer, ReferenceCases) {
  std::ifstream in(std::string(MOESERVE_FIXTURES) + "/reference/tiny-mixtral-kjv.json");
  const auto j = nlohmann::json::parse(in);
  ASSERT_FALSE(j["tokenizer"].empty());
  for (const auto& c : j["tokenizer"]) {
    const std::string text = c["text"];
    EXPECT_EQ(tok().encode(text), c["ids"].get<std::vector<int32_t>>()) << text;
  }
  // Prompts: ids = [BOS] + encode(prompt).
  for (const auto& p : j["prompts"]) {
    auto ids = tok().encode(p["prompt"].get<std::string>());
    ids.insert(ids.begin(), 1);
    EXPECT_EQ(ids, p["ids"].get<std::vector<int32_t>>());
  }
}

TEST(Tokenizer, DecodeRoundTripAndTokenBytes) {
  const std::string text = "In the beginning God created the heaven and the earth. \xC3\xBC \xF0\x9F\x99\x82";
  const auto ids = tok().encode(text);
  EXPECT_EQ(tok().decode(ids), text);
  std::string bytes;
  for (int32_t id : ids) bytes += tok().token_bytes(id);
  EXPECT_EQ(bytes, " " + text);  // SentencePiece's dummy prefix shows as a leading space
  EXPECT_EQ(tok().token_bytes(1), "");  // <s>
  EXPECT_EQ(tok().vocab_size(), 32000);
  EXPECT_EQ(tok().bos_id(), 1);
  EXPECT_EQ(tok().eos_id(), 2);
}

TEST(Tokenizer, RejectsInvalidUtf8AndMissingFile) {
  EXPECT_THROW(tok().encode("bad \xC3("), Error);
  EXPECT_THROW(Tokenizer::from_file("/nonexistent/tokenizer.model"), Error);
}

TEST(Utf8, CompletePrefixHoldsBackPartialCharacters) {
  EXPECT_EQ(utf8_complete_prefix("abc"), 3u);
  EXPECT_EQ(utf8_complete_prefix("ab\xF0\x9F"), 2u);
  EXPECT_EQ(utf8_complete_prefix("ab\xF0\x9F\x99\x82"), 6u);
  EXPECT_EQ(utf8_complete_prefix("\xE6\xBC"), 0u);
  EXPECT_TRUE(is_valid_utf8("\xE6\xBC\xA2"));
  EXPECT_FALSE(is_valid_utf8("\xC0\x80"));      // overlong
  EXPECT_FALSE(is_valid_utf8("\xED\xA0\x80"));  // surrogate
  EXPECT_FALSE(is_valid_utf8("\xF0\x9F"));      // truncated
}

TEST(Chat, MistralCommonExamples) {
  EXPECT_EQ(encode_chat(tok(), {{"user", "Hello"}, {"assistant", "Hi there."}, {"user", "Bye"}}),
            (std::vector<int32_t>{1, 733, 16289, 28793, 22557, 733, 28748, 16289, 28793, 15359, 736, 28723, 2, 733,
                                  16289, 28793, 2463, 28706, 733, 28748, 16289, 28793}));
  EXPECT_EQ(encode_chat(tok(), {{"system", "Be brief."}, {"user", "Name a river."}}),
            (std::vector<int32_t>{1, 733, 16289, 28793, 1739, 6817, 28723, 13, 13, 952, 264, 7782, 28723, 733, 28748,
                                  16289, 28793}));
}

TEST(Chat, JoinsConsecutiveRolesAndFoldsSystem) {
  const auto a = encode_chat(tok(), {{"user", "A"}, {"user", "B"}});
  const auto b = encode_chat(tok(), {{"user", "A\n\nB"}});
  EXPECT_EQ(a, b);
  const auto c = encode_chat(tok(), {{"system", "S1"}, {"user", "U"}, {"system", "S2"}});
  const auto d = encode_chat(tok(), {{"user", "S1\n\nS2\n\nU"}});
  EXPECT_EQ(c, d);
}

TEST(Chat, RejectsBadRoleOrder) {
  EXPECT_THROW(encode_chat(tok(), {{"assistant", "x"}}), Error);
  EXPECT_THROW(encode_chat(tok(), {{"system", "x"}}), Error);
  EXPECT_THROW(encode_chat(tok(), {}), Error);
  EXPECT_THROW(encode_chat(tok(), {{"user", "a"}, {"tool", "b"}}), Error);
  EXPECT_THROW(encode_chat(tok(), {{"user", "a"}, {"assistant", "b"}, {"assistant2", "c"}}), Error);
}

}  // namespace
}  // namespace ms
