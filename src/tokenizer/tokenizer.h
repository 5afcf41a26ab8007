// tokenizer.h — SentencePiece tokenization through libsentencepiece.
//
// A Tokenizer is made from a SentencePiece model file (HF directories carry
// tokenizer.model) or from a serialized ModelProto built from a GGUF file's
// tokenizer.ggml.* arrays (spm_proto.h). Either way ids are SentencePiece's own.
#pragma once
#include <cstdint>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

namespace sentencepiece { class SentencePieceProcessor; }

namespace ms {

class Tokenizer {
 public:
  // Throws Error(BadInput) naming the file if it cannot be loaded.
  static std::unique_ptr<Tokenizer> from_file(const std::string& path);
  static std::unique_ptr<Tokenizer> from_serialized_proto(const std::string& bytes, const std::string& origin);
  ~Tokenizer();

  // Plain encoding, no BOS/EOS. Input must be valid UTF-8 (Error(BadInput) otherwise).
  std::vector<int32_t> encode(std::string_view text) const;
  // SentencePiece decoding (leading space of the first piece removed).
  std::string decode(const std::vector<int32_t>& ids) const;
  // The raw bytes a token stands for inside running text: "▁" -> ' ',
  // byte pieces <0xNN> -> that byte, control/unknown tokens -> "".
  std::string token_bytes(int32_t id) const;
  // True for pieces whose leading ' ' in token_bytes is the "▁" marker
  // (normal and user-defined pieces); false for <unk>, byte and control pieces.
  bool leading_space_is_marker(int32_t id) const;
  std::string piece(int32_t id) const;  // the piece string as stored
  int32_t vocab_size() const;
  int32_t bos_id() const;
  int32_t eos_id() const;
  bool is_control(int32_t id) const;

 private:
  Tokenizer();
  void build_tables();
  std::unique_ptr<sentencepiece::SentencePieceProcessor> sp_;
  std::vector<std::string> bytes_;  // token_bytes per id
  std::vector<bool> marker_;        // leading_space_is_marker per id
};

// True if s is valid UTF-8.
bool is_valid_utf8(std::string_view s);
// Length of the longest prefix of s that ends on a whole UTF-8 character
// (an incomplete trailing sequence is held back; invalid bytes are not held).
size_t utf8_complete_prefix(std::string_view s);

}  // namespace ms
