// runtime.h — the composition root: everything needed to run a model, built
// from command-line options. Used by generate, perplexity, serve and bench.
//
//   ModelDesc (format)  -> Mixtral weights (model)  -> MixtralRunner (here)
//   Backend (kernels)   -> Mixtral forward pass (model)
//   Tokenizer (tokenizer)                               Engine (engine)
#pragma once
#include <cstdint>
#include <memory>
#include <string>

#include "core/thread_pool.h"
#include "engine/engine.h"
#include "format/model_desc.h"
#include "kernels/attention.h"
#include "tokenizer/tokenizer.h"

namespace ms {

class Backend;
class Mixtral;
class MixtralRunner;

struct RuntimeOptions {
  std::string model_path;          // HF directory or .gguf file
  int threads = 0;                 // 0 = physical cores
  std::string quant = "none";      // none | q8_0 | q4_0 | q4_k | mixed (HF checkpoints)
  int64_t kv_cache_mb = 0;         // 0 = enough for max_batch full contexts, capped at 1024 MB
  std::string kv_dtype = "auto";   // auto | f32 | f16 (auto: f16 for quantized GGUF files, else f32)
  std::string device = "cpu";      // cpu | cuda | cuda:N (kernels/device.h)
  std::string experts_on = "auto"; // cpu | gpu | auto: expert weights with --device cuda (kernels/placement.h)
  int32_t block_size = 16;
  int32_t max_batch = 64;
  int32_t max_step_tokens = 512;
  int32_t max_queue = 1024;
  // At load: fault the model file in and run one untimed forward pass of a
  // full step (max_step_tokens) so the first request pays no page faults.
  bool prefault = true;
};

struct Runtime {
  RuntimeOptions opts;
  ModelDesc desc;
  std::unique_ptr<Tokenizer> tokenizer;  // null when the model has none (token ids only)
  std::unique_ptr<TokenText> text;  // tokenizer as the engine sees it
  std::unique_ptr<ThreadPool> pool;
  std::unique_ptr<Backend> backend;  // the compute backend (kernels/backend.h)
  std::unique_ptr<Mixtral> model;
  std::unique_ptr<MixtralRunner> runner;
  std::unique_ptr<Engine> engine;
  ~Runtime();
};

// The model's tokenizer: its SentencePiece file, or the vocabulary embedded in a GGUF.
// load_tokenizer throws if there is none; try_load_tokenizer returns null then.
std::unique_ptr<Tokenizer> load_tokenizer(const ModelDesc& desc);
std::unique_ptr<Tokenizer> try_load_tokenizer(const ModelDesc& desc);
// The tokenizer, or Error(BadInput) naming what needed it.
const Tokenizer& need_tokenizer(const Runtime& rt, const char* what);

// The KV cache element type for a model: --kv-dtype, where "auto" keeps f32
// for float weights (exact agreement with transformers) and uses f16 for
// quantized GGUF files (half the memory, llama.cpp's numerics).
ops::KvDType resolve_kv_dtype(const std::string& flag, const ModelDesc& desc);

// MiB of KV cache that hold `blocks` blocks of opts.block_size positions
// (rounded up, at least 1). Checks --block-size and that the size fits:
// Error(BadInput) naming the flags otherwise.
int64_t kv_cache_mb_for_blocks(const RuntimeOptions& opts, const ModelDesc& desc, int64_t blocks);

// --device and --experts-on: their values, and that the device is there
// (CUDA built in, the ordinal present). Error(BadInput), one line, otherwise.
void check_device_options(const RuntimeOptions& opts);

// Throws Error(BadInput) with a one-line message on any problem.
std::unique_ptr<Runtime> load_runtime(const RuntimeOptions& opts);

}  // namespace ms
