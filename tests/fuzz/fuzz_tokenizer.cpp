// (d) tokenizer encode, chat template and the streaming detokenizer. The
// input is (1) encoded as text and decoded back (SentencePiece round trip of
// valid UTF-8 is exact up to the dummy-prefix space), (2) read as a chat of
// messages split at NUL bytes, and (3) read as 16-bit token ids that the
// engine's streaming detokenizer turns into text token by token: that text
// must equal SentencePiece's decode of the same ids, byte for byte.
#include <cstddef>
#include <cstdint>
#include <cstring>

#include "core/error.h"
#include "engine/detokenizer.h"
#include "fuzz_util.h"
#include "tokenizer/chat.h"
#include "tokenizer/tokenizer.h"

namespace {

const ms::Tokenizer& tok() {
  static auto t = ms::Tokenizer::from_file(std::string(MOESERVE_SOURCE_DIR) + "/models/tiny-mixtral-kjv/tokenizer.model");
  return *t;
}

class Text : public ms::TokenText {
 public:
  std::string token_bytes(int32_t id) const override { return tok().token_bytes(id); }
  bool leading_space_is_marker(int32_t id) const override { return tok().leading_space_is_marker(id); }
};

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const std::string_view in(reinterpret_cast<const char*>(data), size);
  // (1) encode / decode
  if (ms::is_valid_utf8(in)) {
    const auto ids = tok().encode(in);
    for (int32_t id : ids) ms::fuzz::check(id >= 0 && id < tok().vocab_size(), "encode id outside the vocabulary");
    (void)tok().decode(ids);
  } else {
    bool refused = false;
    try {
      (void)tok().encode(in);
    } catch (const ms::Error&) {
      refused = true;
    }
    ms::fuzz::check(refused, "invalid UTF-8 was encoded");
  }
  // (2) chat template over NUL-separated messages, roles alternating
  std::vector<ms::ChatMessage> msgs;
  static const char* kRoles[] = {"system", "user", "assistant", "user"};
  size_t start = 0;
  for (size_t i = 0; i <= size && msgs.size() < 16; ++i)
    if (i == size || in[i] == '\0') {
      msgs.push_back({kRoles[msgs.size() % 4], std::string(in.substr(start, i - start))});
      start = i + 1;
    }
  try {
    (void)ms::encode_chat(tok(), msgs);
  } catch (const ms::Error&) {
  }
  // (3) streaming detokenizer == SentencePiece decode
  std::vector<int32_t> ids;
  for (size_t i = 0; i + 1 < size && ids.size() < 256; i += 2) {
    uint16_t v;
    std::memcpy(&v, data + i, 2);
    ids.push_back(int32_t(v % uint32_t(tok().vocab_size())));
  }
  Text text;
  ms::Detokenizer d(text, {});
  std::string streamed;
  for (int32_t id : ids) streamed += d.add(id);
  streamed += d.flush();
  ms::fuzz::check(streamed == tok().decode(ids), "streaming detokenizer differs from SentencePiece decode");
  return 0;
}
