// The streaming detokenizer (engine) against libsentencepiece's own decode
// (tokenizer) of the same ids, on the bundled Mistral v1 tokenizer: the text
// streamed token by token, then flushed, equals Tokenizer::decode, for
// sequences that start with <unk>, byte pieces such as <0x20>, the bare "▁"
// piece, control tokens, split multi-byte characters and random ids.
#include <gtest/gtest.h>

#include <random>

#include "engine/detokenizer.h"
#include "tokenizer/tokenizer.h"

namespace ms {
namespace {

const Tokenizer& tok() {
  static auto t = Tokenizer::from_file(std::string(MOESERVE_SOURCE_DIR) + "/models/tiny-mixtral-kjv/tokenizer.model");
  return *t;
}

class Text : public TokenText {
 public:
  std::string token_bytes(int32_t id) const override { return tok().token_bytes(id); }
  bool leading_space_is_marker(int32_t id) const override { return tok().leading_space_is_marker(id); }
};

std::string stream(const std::vector<int32_t>& ids) {
  Text text;
  Detokenizer d(text, {});
  std::string out;
  for (int32_t id : ids) out += d.add(id);
  return out + d.flush();
}

int32_t id_of(const std::string& piece) {
  for (int32_t i = 0; i < tok().vocab_size(); ++i)
    if (tok().piece(i) == piece) return i;
  ADD_FAILURE() << "no piece " << piece;
  return 0;
}

TEST(DetokenizerSpm, FirstTokenSpaceAsSentencePiece) {
  const int32_t unk = 0, bos = tok().bos_id(), eos = tok().eos_id();
  const int32_t sp20 = id_of("<0x20>"), bare = id_of("\xE2\x96\x81"), the = id_of("\xE2\x96\x81the");
  const int32_t e2 = id_of("<0xE2>"), x82 = id_of("<0x82>"), xac = id_of("<0xAC>"), ff = id_of("<0xFF>");
  const std::vector<std::vector<int32_t>> cases = {
      {the, the},       {unk, the},        {unk},          {sp20, the},       {sp20},
      {bare, the},      {bare},            {bare, bare, the}, {bos, the},     {bos, unk, the},
      {bos, sp20, the}, {eos, bare, unk},  {e2, x82, xac, the}, {e2, the},    {ff, sp20},
      {the, unk, sp20}, {bos, bos, bare, sp20, the},
      {id_of("<0xC9>"), bos, id_of("<0xAB>")},  // a control token ends a byte run (found by fuzz_tokenizer)
      {id_of("<0xC9>"), id_of("<0xAB>")},       // "ɫ" from one run
  };
  for (const auto& ids : cases) {
    SCOPED_TRACE(::testing::PrintToString(ids));
    EXPECT_EQ(stream(ids), tok().decode(ids));
  }
  // The cases this fixes: a first <unk> or <0x20> keeps its space.
  EXPECT_EQ(stream({unk, the}).substr(0, 1), " ");
  EXPECT_EQ(stream({sp20, the}), "  the");
}

TEST(DetokenizerSpm, RandomIdsMatchDecode) {
  std::mt19937 rng(7);
  const int32_t V = tok().vocab_size();
  for (int iter = 0; iter < 2000; ++iter) {
    std::vector<int32_t> ids(1 + rng() % 12);
    for (auto& id : ids) {
      const uint32_t r = rng() % 10;
      id = r < 3 ? int32_t(rng() % 259)          // <unk>, <s>, </s> and the byte pieces
           : r < 4 ? 28705                        // "▁" in the Mistral v1 vocabulary
                   : int32_t(rng() % uint32_t(V));
    }
    ASSERT_EQ(stream(ids), tok().decode(ids)) << ::testing::PrintToString(ids);
  }
}

}  // namespace
}  // namespace ms
