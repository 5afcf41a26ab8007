// weights.h — Mixtral weights as views into the model file, in their stored
// type (llama2.c-style: weights here, run state in mixtral.h).
//
// Matrices stay in the mmap'd file unless load-time quantization (--quant)
// asks for another type; then each tensor is quantized on its own into an
// owned buffer and the file pages it came from are released, so the bf16
// model and its quantized copy are never both resident.
// Norm vectors are small and converted to float32 copies.
#pragma once
#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "core/aligned.h"
#include "core/tensor.h"
#include "format/model_desc.h"

namespace ms {

struct LayerWeights {
  std::vector<float> attn_norm;  // [hidden]
  MatView wq;                    // [n_heads * head_dim, hidden]
  MatView wk;                    // [n_kv_heads * head_dim, hidden]
  MatView wv;                    // [n_kv_heads * head_dim, hidden]
  MatView wo;                    // [hidden, n_heads * head_dim]
  std::vector<float> ffn_norm;   // [hidden]
  MatView router;                // [n_experts, hidden] (MoE only)
  // One entry per expert (a single entry for a dense FFN):
  std::vector<MatView> w1;       // gate [ffn, hidden]
  std::vector<MatView> w3;       // up   [ffn, hidden]
  std::vector<MatView> w2;       // down [hidden, ffn]
};

// Load-time quantization of float checkpoints.
struct QuantPlan {
  DType experts = DType::F32;    // F32 = keep stored type
  DType attention = DType::F32;
  DType embeddings = DType::F32; // token_embd and output
  // Store Q8_0 / Q4_0 matrices in the kernels' panel layout (ops::repack_panels)
  // where this machine's kernels use it: a copy made tensor by tensor, the
  // file's pages released as it goes, so the model is still held once.
  bool repack = true;
  bool any() const { return experts != DType::F32 || attention != DType::F32 || embeddings != DType::F32; }
};
// "none" | "q8_0" | "q4_0" | "q4_k" | "mixed" (experts q4_k, the rest q8_0). Error(BadInput) otherwise.
QuantPlan parse_quant_plan(const std::string& s);

struct MixtralWeights {
  MatView tok_embd;                // [vocab, hidden]
  std::vector<LayerWeights> layers;
  std::vector<float> output_norm;  // [hidden]
  MatView output;                  // [vocab, hidden] (= tok_embd when tied)
  std::vector<std::vector<uint8_t, AlignedAllocator<uint8_t>>> owned;  // quantized copies
  size_t weight_bytes = 0;         // bytes of all matrices in their run type
};

// Builds the views, checking every tensor's presence, shape and type against
// cfg. Throws Error(BadInput) "PATH: tensor NAME ..." on any mismatch.
class ThreadPool;
MixtralWeights load_weights(const ModelDesc& desc, const QuantPlan& plan, ThreadPool& pool);

}  // namespace ms
