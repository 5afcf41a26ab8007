// detokenizer.h — incremental detokenisation of one request's output, with
// stop strings.
//
// The full output text is defined as SentencePiece decode(generated ids):
//   concat(token_bytes(id)), where a token whose leading ' ' is the "▁" word
//   marker (TokenText::leading_space_is_marker: a normal piece, not <unk> or a
//   byte piece) loses that space when it is the first token with any text, as
//   libsentencepiece's Decode does (control tokens have none; "▁" alone then
//   "▁the" decodes to " the", <unk> then "▁the" to " ⁇  the"); a token
//   without text ends a run of byte pieces (<0xC9> <s> <0xAB> is two U+FFFD);
//   decoded as UTF-8 the way SentencePiece does: a valid character is kept,
//   each byte that does not start a valid character becomes U+FFFD.
// add() returns only text that is final: whole UTF-8 characters (an
// incomplete trailing sequence is held back until the next bytes decide it)
// and nothing that could still be the beginning of a stop string. When a stop
// string appears, the text before it is returned, the stop string and all
// after it are dropped, and stopped() becomes true. flush() releases what is
// held back at the end of generation (an unfinished character becomes U+FFFD
// per byte, as SentencePiece would decode it).
#pragma once
#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "engine/model_runner.h"
#include "engine/request.h"

namespace ms {

class Detokenizer {
 public:
  Detokenizer(const TokenText& text, std::vector<std::string> stop_strings);

  std::string add(int32_t token);
  // The same for raw token bytes; marker: as leading_space_is_marker.
  std::string add_bytes(std::string_view bytes, bool marker = true);
  std::string flush();
  bool stopped() const { return stopped_; }
  // Everything emitted so far (for tests and diagnostics).
  const std::string& emitted() const { return emitted_; }

 private:
  std::string release(std::string text, bool final);

  const TokenText* text_;
  std::vector<std::string> stops_;
  size_t max_stop_ = 0;
  bool at_start_ = true;     // no text yet: a marker space is still to drop
  bool stopped_ = false;
  std::string pending_;      // raw bytes of an unfinished UTF-8 character
  std::string held_;         // decoded text that may begin a stop string
  std::string emitted_;
};

// Decodes raw bytes to valid UTF-8 with SentencePiece's rules (see above).
// With final == false an incomplete character at the end is left in `bytes`
// (the consumed part is erased); with final == true everything is consumed.
std::string decode_utf8_prefix(std::string& bytes, bool final);

}  // namespace ms
