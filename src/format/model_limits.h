// model_limits.h — the bounds every model description must satisfy.
//
// A model file is untrusted input (docs/SECURITY.md). Whatever format a
// ModelConfig came from (config.json, GGUF metadata), validate_config()
// checks each count against the limits below and every size the model and
// the runtime derive from them (q/kv widths, per-layer and per-token byte
// counts) with overflow-checked arithmetic. Past this point the model,
// the kernels and the runtime trust the description: no product of its
// fields can wrap, and every loop bound equals a tensor's checked shape.
//
// The limits are generous for real models (Mixtral-8x7B: hidden 4096, 32
// layers, 32 heads of 128, 8 KV heads, FFN 14336, 8 experts top-2, vocab
// 32000, context 32768) and small enough that their products fit in int64
// several times over.
#pragma once
#include <cstdint>
#include <string>

#include "format/model_desc.h"

namespace ms::model_limits {

constexpr int64_t kMaxVocab = int64_t(1) << 20;          // 1,048,576 tokens
constexpr int64_t kMaxHidden = int64_t(1) << 16;         // 65,536
constexpr int64_t kMaxFfn = int64_t(1) << 18;            // 262,144
constexpr int64_t kMaxLayers = 1024;
constexpr int64_t kMaxHeads = 1024;                      // query heads; KV heads <= heads
constexpr int64_t kMaxHeadDim = 1024;                    // even
constexpr int64_t kMaxAttnWidth = int64_t(1) << 17;      // heads * head_dim
constexpr int64_t kMaxExperts = 1024;
constexpr int64_t kMaxExpertsPerTok = 64;
constexpr int64_t kMaxContext = int64_t(1) << 24;        // 16,777,216 positions
constexpr double kMaxRopeTheta = 1e12;
constexpr double kMaxRmsEps = 1.0;
// Every tensor the model reads has at most this many elements.
constexpr int64_t kMaxTensorElems = int64_t(1) << 40;
// GGUF containers.
constexpr uint64_t kMaxGgufTensors = 1 << 20;
constexpr uint64_t kMaxGgufMetadata = 1 << 20;
constexpr uint64_t kMaxGgufKeyBytes = 65535;             // the GGUF spec's key limit
// safetensors header JSON (the format's own limit is 100 MB).
constexpr uint64_t kMaxSafetensorsHeader = 100u << 20;

}  // namespace ms::model_limits

namespace ms {

// Checks every field of `cfg` against model_limits and their derived sizes
// for overflow. Throws Error(BadInput) "ORIGIN: invalid config: ..." naming
// the field, its value and the allowed range.
void validate_config(const ModelConfig& cfg, const std::string& origin);

}  // namespace ms
