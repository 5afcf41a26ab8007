// hf_config.h — Hugging Face config.json -> ModelConfig, and HF tensor names
// -> the canonical names of model_desc.h.
#pragma once
#include <string>

#include "format/model_desc.h"

namespace ms {

// Parses config.json text. Throws Error(BadInput) "PATH: ..." for malformed
// JSON, missing/mistyped fields, inconsistent values or unsupported architectures.
ModelConfig parse_hf_config(const std::string& json_text, const std::string& path);

// "model.layers.3.self_attn.q_proj.weight" -> "blk.3.attn_q"; "" if not a tensor we use.
std::string canonical_hf_name(const std::string& hf_name);

// Loads a Hugging Face model directory.
ModelDesc load_hf_desc(const std::string& dir);

}  // namespace ms
