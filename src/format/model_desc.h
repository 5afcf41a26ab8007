// model_desc.h — one description of a model, whatever file it came from.
//
// Tensor names are canonical (llama.cpp's short names), shapes are in
// row-major order with the output dimension first (HF order), and data points
// into a memory-mapped file. Per layer N ("blk.N."):
//   attn_norm [hidden]            attn_q [n_heads*head_dim, hidden]
//   attn_k/attn_v [n_kv_heads*head_dim, hidden]   attn_output [hidden, n_heads*head_dim]
//   ffn_norm [hidden]             ffn_gate_inp [n_experts, hidden] (router, MoE only)
//   MoE, one tensor per expert E (HF):     ffn_gate.E / ffn_up.E [ffn, hidden], ffn_down.E [hidden, ffn]
//   MoE, stacked (GGUF):                   ffn_gate_exps / ffn_up_exps [E, ffn, hidden], ffn_down_exps [E, hidden, ffn]
//   dense:                                 ffn_gate / ffn_up [ffn, hidden], ffn_down [hidden, ffn]
// Global: token_embd [vocab, hidden], output_norm [hidden], output [vocab, hidden] (absent when tied).
// (w1 = ffn_gate, w3 = ffn_up, w2 = ffn_down in Mixtral's HF naming.)
#pragma once
#include <cstdint>
#include <memory>
#include <string>
#include <unordered_map>
#include <vector>

#include "core/dtype.h"
#include "core/mmap_file.h"

namespace ms {

struct ModelConfig {
  std::string architecture;  // "MixtralForCausalLM", "MistralForCausalLM", "LlamaForCausalLM"
  int64_t vocab_size = 0;
  int64_t hidden_size = 0;
  int64_t intermediate_size = 0;
  int64_t num_layers = 0;
  int64_t num_heads = 0;
  int64_t num_kv_heads = 0;
  int64_t head_dim = 0;
  int64_t num_experts = 0;      // 0 = dense FFN
  int64_t experts_per_tok = 0;  // top-k (0 when dense)
  double rope_theta = 10000.0;
  double rms_norm_eps = 1e-5;
  int64_t sliding_window = 0;   // 0 = none; else keys j with i - W < j <= i
  int64_t max_position_embeddings = 32768;
  bool tie_word_embeddings = false;
  int32_t bos_id = 1;
  int32_t eos_id = 2;
  // True when attn_q/attn_k rows were permuted by llama.cpp's converter; the
  // rotary pairs are then adjacent (2i, 2i+1) instead of HF's rotate-half halves.
  bool rope_interleaved = false;

  bool is_moe() const { return num_experts > 0; }
};

struct TensorInfo {
  std::string name;
  DType dtype = DType::F32;
  std::vector<int64_t> shape;  // outermost first: [rows, cols] or [experts, rows, cols]
  const uint8_t* data = nullptr;
  size_t nbytes = 0;
  std::string file;  // for error messages
  int64_t numel() const {
    int64_t n = 1;
    for (int64_t d : shape) n *= d;
    return n;
  }
};

// Tokenizer data embedded in a GGUF file (tokenizer.ggml.*).
struct EmbeddedVocab {
  std::string model;  // "llama" (SentencePiece) ...
  std::vector<std::string> tokens;
  std::vector<float> scores;
  std::vector<int32_t> types;  // SentencePiece piece types: 1 normal, 2 unknown, 3 control, 6 byte ...
  int32_t bos_id = 1, eos_id = 2, unk_id = 0;
  bool add_bos = true;
};

struct ModelDesc {
  ModelConfig cfg;
  std::string path;           // what the user passed
  std::string format;         // "safetensors" | "gguf"
  std::unordered_map<std::string, TensorInfo> tensors;
  std::vector<std::shared_ptr<MappedFile>> files;  // keeps the maps alive
  std::string tokenizer_model_path;  // SentencePiece file (HF directories)
  EmbeddedVocab vocab;               // GGUF files
  std::string chat_template;         // Jinja text from the checkpoint, informational

  const TensorInfo* find(const std::string& name) const {
    auto it = tensors.find(name);
    return it == tensors.end() ? nullptr : &it->second;
  }
  // Throws Error(BadInput) "PATH: missing tensor NAME".
  const TensorInfo& get(const std::string& name) const;
};

// Loads a Hugging Face directory (config.json + safetensors) or a .gguf file.
// Every problem is an Error(BadInput) whose message names the file.
ModelDesc load_model_desc(const std::string& path);

}  // namespace ms
