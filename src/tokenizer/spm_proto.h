// spm_proto.h — SentencePiece ModelProto without libprotobuf.
//
// GGUF files carry a SentencePiece vocabulary as plain arrays
// (tokenizer.ggml.tokens / scores / token_type). build_spm_proto() turns such
// arrays back into a serialized sentencepiece.ModelProto (hand-written
// protobuf wire format) that Tokenizer::from_serialized_proto() loads. The
// default options are those of Mistral's / Llama's tokenizer.model (BPE,
// byte fallback, identity normalizer with a dummy prefix, whitespace not
// collapsed), so the result tokenizes exactly as the original file.
//
// read_spm_model() goes the other way: it loads a tokenizer.model with
// libsentencepiece and returns its pieces and the options that matter for
// encoding (used by `moeserve synth` to embed the Mistral vocabulary).
//
// Field numbers (sentencepiece_model.proto): ModelProto 1 pieces, 2
// trainer_spec, 3 normalizer_spec; SentencePiece 1 piece, 2 score, 3 type;
// TrainerSpec 3 model_type, 4 vocab_size, 24 treat_whitespace_as_suffix,
// 25 split_digits, 26 allow_whitespace_only_pieces, 35 byte_fallback,
// 40-43 unk/bos/eos/pad id, 45-48 their pieces; NormalizerSpec 1 name,
// 3 add_dummy_prefix, 4 remove_extra_whitespaces, 5 escape_whitespaces.
#pragma once
#include <cstdint>
#include <string>
#include <vector>

namespace ms {

// Piece types (SentencePiece's enum; GGUF token_type uses the same numbers).
enum SpmPieceType : int32_t {
  kSpmNormal = 1, kSpmUnknown = 2, kSpmControl = 3, kSpmUserDefined = 4, kSpmUnused = 5, kSpmByte = 6,
};

struct SpmVocab {
  std::vector<std::string> pieces;
  std::vector<float> scores;   // same length as pieces
  std::vector<int32_t> types;  // same length; SpmPieceType values
  int32_t unk_id = 0, bos_id = 1, eos_id = 2, pad_id = -1;  // -1 = none (bos/eos/pad)
};

struct SpmOptions {
  int32_t model_type = 2;  // 1 UNIGRAM, 2 BPE, 3 WORD, 4 CHAR
  // -1: on when the vocabulary holds all 256 byte pieces <0x00>..<0xFF>.
  int byte_fallback = -1;
  bool add_dummy_prefix = true;
  bool remove_extra_whitespaces = false;
  bool escape_whitespaces = true;
  bool treat_whitespace_as_suffix = false;
  bool allow_whitespace_only_pieces = true;
  bool split_digits = true;
};

// Serialized ModelProto. Throws Error(BadInput) "ORIGIN: ..." if the arrays
// are inconsistent (lengths, ids out of range, unknown piece types, no
// unknown piece at unk_id).
std::string build_spm_proto(const SpmVocab& vocab, const std::string& origin, const SpmOptions& opts = {});

struct SpmModel {
  SpmVocab vocab;
  SpmOptions options;  // as stored in the file
};
// Loads a SentencePiece model file. Throws Error(BadInput) naming the file.
SpmModel read_spm_model(const std::string& path);

}  // namespace ms
