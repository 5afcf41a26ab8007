#include <gtest/gtest.h>

#include <map>
#include <random>

#include "engine/detokenizer.h"

namespace ms {
namespace {

// Ids: 0 "" (control), 1..: the given pieces; bytes go through byte tokens 1000+b.
class MapText : public TokenText {
 public:
  explicit MapText(std::vector<std::string> pieces) : pieces_(std::move(pieces)) {}
  std::string token_bytes(int32_t id) const override {
    if (id >= 1000) return std::string(1, static_cast<char>(id - 1000));
    if (id <= 0 || id > static_cast<int32_t>(pieces_.size())) return "";
    return pieces_[id - 1];
  }

 private:
  std::vector<std::string> pieces_;
};

int32_t byte_tok(unsigned char b) { return 1000 + b; }

// Feeds tokens one by one; returns the per-token texts and the flush text.
std::vector<std::string> feed(Detokenizer& d, const std::vector<int32_t>& ids, bool flush = true) {
  std::vector<std::string> out;
  for (int32_t id : ids) out.push_back(d.add(id));
  if (flush) out.push_back(d.flush());
  return out;
}

std::string join(const std::vector<std::string>& v) {
  std::string s;
  for (const auto& x : v) s += x;
  return s;
}

bool valid_utf8(const std::string& s) {
  std::string copy = s;
  return decode_utf8_prefix(copy, true) == s;
}

TEST(Detokenizer, StripsOneLeadingSpaceOfTheFirstPiece) {
  MapText t({" Hello", " world", "  two"});
  Detokenizer d(t, {});
  EXPECT_EQ(join(feed(d, {1, 2})), "Hello world");
  Detokenizer d2(t, {});
  EXPECT_EQ(join(feed(d2, {3, 1})), " two Hello");  // only one space removed
  Detokenizer d3(t, {});
  EXPECT_EQ(join(feed(d3, {0, 0, 1})), "Hello");  // control tokens do not count
}

TEST(Detokenizer, MultiByteCharacterSplitAcrossByteTokens) {
  MapText t({" a"});
  Detokenizer d(t, {});
  // "€" = E2 82 AC, fed as three byte-fallback tokens.
  const auto out = feed(d, {1, byte_tok(0xE2), byte_tok(0x82), byte_tok(0xAC), 1});
  EXPECT_EQ(out[0], "a");
  EXPECT_EQ(out[1], "");
  EXPECT_EQ(out[2], "");
  EXPECT_EQ(out[3], "\xE2\x82\xAC");
  EXPECT_EQ(out[4], " a");
  EXPECT_EQ(out[5], "");
}

TEST(Detokenizer, InvalidBytesBecomeReplacementCharactersLikeSentencePiece) {
  MapText t({"a"});
  // A lead byte followed by a normal piece: one U+FFFD per bad byte.
  Detokenizer d(t, {});
  const std::string s = join(feed(d, {byte_tok(0xE2), byte_tok(0x82), 1}));
  EXPECT_EQ(s, "\xEF\xBF\xBD\xEF\xBF\xBD" "a");
  // A stray continuation byte.
  Detokenizer d2(t, {});
  EXPECT_EQ(join(feed(d2, {1, byte_tok(0x80), 1})), "a\xEF\xBF\xBD" "a");
  // Unfinished at the end: flushed as U+FFFD per byte.
  Detokenizer d3(t, {});
  const auto out = feed(d3, {1, byte_tok(0xF0), byte_tok(0x9F)});
  EXPECT_EQ(out[0] + out[1] + out[2], "a");
  EXPECT_EQ(out[3], "\xEF\xBF\xBD\xEF\xBF\xBD");
  // Overlong and surrogate encodings are invalid.
  Detokenizer d4(t, {});
  EXPECT_EQ(join(feed(d4, {byte_tok(0xC0), byte_tok(0x80)})), "\xEF\xBF\xBD\xEF\xBF\xBD");
  Detokenizer d5(t, {});
  EXPECT_EQ(join(feed(d5, {byte_tok(0xED), byte_tok(0xA0), byte_tok(0x80)})),
            "\xEF\xBF\xBD\xEF\xBF\xBD\xEF\xBF\xBD");
}

TEST(Detokenizer, OutputIsAlwaysValidUtf8) {
  MapText t({" x", "y"});
  std::mt19937 rng(5);
  for (int trial = 0; trial < 200; ++trial) {
    Detokenizer d(t, {});
    std::string all;
    for (int i = 0; i < 30; ++i) {
      const int32_t id = rng() % 3 == 0 ? 1 + static_cast<int32_t>(rng() % 2) : byte_tok(rng() % 256);
      const std::string piece = d.add(id);
      EXPECT_TRUE(valid_utf8(piece));
      all += piece;
    }
    all += d.flush();
    EXPECT_TRUE(valid_utf8(all));
  }
}

TEST(Detokenizer, StopStringAcrossTokenBoundaries) {
  MapText t({" The", " end", " is", " near", ".", " E", "nd"});
  Detokenizer d(t, {"End."});
  // " The E" "nd" "." -> "The" then stop; " E" is held back until it is known.
  const auto out = feed(d, {1, 6, 7, 5, 2}, false);
  EXPECT_EQ(out[0], "The");
  EXPECT_EQ(out[1], " ");  // "E" might start "End.": held back
  EXPECT_EQ(out[2], "");   // "End" too
  EXPECT_EQ(out[3], "");   // "End." found: dropped
  EXPECT_TRUE(d.stopped());
  EXPECT_EQ(d.emitted(), "The ");
  EXPECT_EQ(out[4], "");  // nothing after a stop
}

TEST(Detokenizer, HeldBackTextIsReleasedWhenItCannotBeAStop) {
  MapText t({" a", " st", "o", "x", " b"});
  Detokenizer d(t, {"stop"});
  const auto out = feed(d, {1, 2, 3, 4, 5});
  EXPECT_EQ(out[0], "a");
  EXPECT_EQ(out[1], " ");     // "st" held back
  EXPECT_EQ(out[2], "");      // "sto" held back
  EXPECT_EQ(out[3], "stox");  // cannot be "stop" any more
  EXPECT_EQ(out[4], " b");
  EXPECT_EQ(out[5], "");
  EXPECT_FALSE(d.stopped());
  EXPECT_EQ(d.emitted(), "a stox b");
}

TEST(Detokenizer, HeldBackTextIsFlushedAtTheEnd) {
  MapText t({" a", " st"});
  Detokenizer d(t, {"stop"});
  const auto out = feed(d, {1, 2});
  EXPECT_EQ(out[0], "a");
  EXPECT_EQ(out[1], " ");
  EXPECT_EQ(out[2], "st");
  EXPECT_EQ(d.emitted(), "a st");
}

TEST(Detokenizer, EarliestOfSeveralStopStringsWins) {
  MapText t({" one two three"});
  Detokenizer d(t, {"three", "two"});
  const auto out = feed(d, {1});
  EXPECT_EQ(out[0], "one ");
  EXPECT_TRUE(d.stopped());
}

TEST(Detokenizer, StopStringWithMultiByteCharacters) {
  MapText t({" x"});
  Detokenizer d(t, {"\xE2\x82\xAC!"});  // "€!"
  const auto out =
      feed(d, {1, byte_tok(0xE2), byte_tok(0x82), byte_tok(0xAC), byte_tok('!'), 1}, false);
  EXPECT_EQ(out[0], "x");
  EXPECT_EQ(out[3], "");  // "€" held: could start "€!"
  EXPECT_EQ(out[4], "");
  EXPECT_TRUE(d.stopped());
  EXPECT_EQ(d.emitted(), "x");
}

TEST(Detokenizer, StopStringInsideTheFirstPieceAfterTheStrippedSpace) {
  MapText t({" Hi"});
  Detokenizer d(t, {" Hi"});  // the leading space was stripped: no match
  EXPECT_EQ(join(feed(d, {1})), "Hi");
  EXPECT_FALSE(d.stopped());
}

TEST(Detokenizer, EmptyStopStringsAreIgnored) {
  MapText t({" a"});
  Detokenizer d(t, {""});
  EXPECT_EQ(join(feed(d, {1, 1})), "a a");
}

}  // namespace
}  // namespace ms
