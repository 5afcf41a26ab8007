// model_runner.h — the model and the tokenizer as the model-agnostic engine
// sees them: interfaces the composition root implements over the real model
// (tools/mixtral_runner.h) and tests implement with fakes.
#pragma once
#include <cstdint>
#include <string>
#include <vector>

#include "model/batch.h"

namespace ms {

// The model as the engine sees it. The real one wraps model/Mixtral; tests use fakes.
class ModelRunner {
 public:
  virtual ~ModelRunner() = default;
  virtual int64_t vocab_size() const = 0;
  virtual int64_t max_context() const = 0;
  virtual int32_t eos_id() const = 0;
  virtual int64_t num_layers() const = 0;
  virtual int64_t num_experts() const = 0;
  // Executes one step; block tables index into a pool of `num_blocks` blocks of `block_size`.
  // `out` is reused across steps: out.logits holds the previous step's rows
  // (the runner sizes it to this step's rows and fills every one it returns).
  virtual void forward(const std::vector<SeqChunk>& chunks, ForwardOutput& out) = 0;
};

// Token id -> the bytes it stands for in text (SentencePiece "▁" -> ' ',
// byte-fallback pieces -> one raw byte, control tokens -> ""), for incremental
// detokenisation and stop strings.
class TokenText {
 public:
  virtual ~TokenText() = default;
  virtual std::string token_bytes(int32_t id) const = 0;
  // Whether a ' ' that token_bytes(id) starts with is SentencePiece's "▁"
  // word marker, which decoding drops when the token is the first with text.
  // The <unk> surface (" ⁇ ") and byte pieces (<0x20>) keep theirs.
  virtual bool leading_space_is_marker(int32_t id) const { return true; }
};

}  // namespace ms
