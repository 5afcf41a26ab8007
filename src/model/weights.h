// weights.h — Mixtral weights as the compute backend prepared them
// (llama2.c-style: weights here, run state in the backend).
//
// load_weights checks every tensor against the config, decides each
// matrix's run type (load-time quantization, --quant) and hands it to
// Backend::prepare_weight, which makes it an operand of its ops: the CPU
// backend keeps it in the mmap'd file in its stored type (or its panel-layout
// copy, or the quantized copy, the file pages released as it goes, so the
// model is held once); a device backend uploads it once. Norm vectors are
// converted to float32 and prepared the same way.
#pragma once
#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "core/tensor.h"
#include "format/model_desc.h"
#include "kernels/backend.h"
#include "kernels/placement.h"

namespace ms {

struct LayerWeights {
  const float* attn_norm = nullptr;  // [hidden]
  MatView wq;                    // [n_heads * head_dim, hidden]
  MatView wk;                    // [n_kv_heads * head_dim, hidden]
  MatView wv;                    // [n_kv_heads * head_dim, hidden]
  MatView wo;                    // [hidden, n_heads * head_dim]
  const float* ffn_norm = nullptr;   // [hidden]
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
  // Let the backend store matrices in its own layout (WeightSpec::allow_layout;
  // the CPU's panel layout, ops::repack_panels, where this machine's kernels
  // use it: a copy made tensor by tensor, the file's pages released as it
  // goes, so the model is still held once).
  bool repack = true;
  bool any() const { return experts != DType::F32 || attention != DType::F32 || embeddings != DType::F32; }
};
// "none" | "q8_0" | "q4_0" | "q4_k" | "mixed" (experts q4_k, the rest q8_0). Error(BadInput) otherwise.
QuantPlan parse_quant_plan(const std::string& s);

struct MixtralWeights {
  MatView tok_embd;                // [vocab, hidden]
  std::vector<LayerWeights> layers;
  const float* output_norm = nullptr;  // [hidden]
  MatView output;                  // [vocab, hidden] (= tok_embd when tied)
  WeightStore store;               // the backend's copies; store.bytes: all matrices in their run type
};

// Prepares every weight on `backend`, checking each tensor's presence, shape
// and type against cfg. Throws Error(BadInput) "PATH: tensor NAME ..." on any
// mismatch.
MixtralWeights load_weights(const ModelDesc& desc, const QuantPlan& plan, Backend& backend);

// Bytes of every matrix load_weights would prepare, in its run type (the
// stored type, or the --quant one) and row-major layout, by layer and role:
// what a device backend uploads and the offload planner (kernels/placement.h)
// places. Norm vectors are left out (kilobytes; part of the reserve).
ModelBytes model_bytes(const ModelDesc& desc, const QuantPlan& plan);

}  // namespace ms
