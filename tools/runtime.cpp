#include "runtime.h"

#include <algorithm>
#include <numeric>

#include "core/error.h"
#include "core/checked.h"
#include "kernels/backend.h"
#include "kernels/device.h"
#include "kernels/placement.h"
#include "mixtral_runner.h"
#include "model/kv_cache.h"
#include "model/mixtral.h"
#include "tokenizer/spm_proto.h"

namespace ms {

Runtime::~Runtime() {
  if (engine) engine->stop();
}

namespace {

class TokenizerText : public TokenText {
 public:
  explicit TokenizerText(const Tokenizer* t) : t_(t) {}
  std::string token_bytes(int32_t id) const override { return t_ ? t_->token_bytes(id) : std::string(); }
  bool leading_space_is_marker(int32_t id) const override { return t_ && t_->leading_space_is_marker(id); }

 private:
  const Tokenizer* t_;  // null for models without a tokenizer: ids only
};

std::unique_ptr<Tokenizer> tokenizer_from_vocab(const ModelDesc& d) {
  const EmbeddedVocab& v = d.vocab;
  if (v.tokens.empty()) bad_input(d.path + ": the GGUF file has no tokenizer.ggml.tokens");
  if (v.model != "llama")
    bad_input(d.path + ": tokenizer model '" + v.model + "' is not supported (only SentencePiece 'llama')");
  SpmVocab sv;
  sv.pieces = v.tokens;
  sv.scores = v.scores.empty() ? std::vector<float>(v.tokens.size(), 0.0f) : v.scores;
  sv.types = v.types.empty() ? std::vector<int32_t>(v.tokens.size(), kSpmNormal) : v.types;
  sv.unk_id = v.unk_id;
  sv.bos_id = v.bos_id;
  sv.eos_id = v.eos_id;
  return Tokenizer::from_serialized_proto(build_spm_proto(sv, d.path), d.path);
}

}  // namespace

std::unique_ptr<Tokenizer> load_tokenizer(const ModelDesc& d) {
  if (!d.tokenizer_model_path.empty()) return Tokenizer::from_file(d.tokenizer_model_path);
  if (d.format != "gguf") bad_input(d.path + ": no tokenizer.model (SentencePiece) in the model directory");
  return tokenizer_from_vocab(d);
}

std::unique_ptr<Tokenizer> try_load_tokenizer(const ModelDesc& d) {
  if (d.format != "gguf" && d.tokenizer_model_path.empty()) return nullptr;
  return load_tokenizer(d);
}

const Tokenizer& need_tokenizer(const Runtime& rt, const char* what) {
  if (!rt.tokenizer) bad_input(rt.opts.model_path + ": the model has no tokenizer (needed for " + what + ")");
  return *rt.tokenizer;
}

ops::KvDType resolve_kv_dtype(const std::string& flag, const ModelDesc& desc) {
  if (flag == "f32") return ops::KvDType::F32;
  if (flag == "f16") return ops::KvDType::F16;
  if (flag != "auto") bad_input("--kv-dtype: unknown value '" + flag + "' (expected auto, f32 or f16)");
  // Quantized GGUF files run with llama.cpp's f16 cache; float weights keep
  // f32 so they agree exactly with the float reference.
  if (desc.format != "gguf") return ops::KvDType::F32;
  for (const auto& [name, t] : desc.tensors)
    if (is_quantized(t.dtype)) return ops::KvDType::F16;
  return ops::KvDType::F32;
}

namespace {
void check_block_size(int32_t block_size) {
  if (block_size <= 0 || block_size > 4096) bad_input("--block-size must be in 1..4096");
}
}  // namespace

void check_device_options(const RuntimeOptions& opts) {
  const DeviceSpec dev = parse_device(opts.device);
  const ExpertsOn experts = parse_experts_on(opts.experts_on);
  if (!dev.is_cuda() && experts == ExpertsOn::Gpu) bad_input("--experts-on gpu needs --device cuda");
  check_device_available(dev);
  // A CUDA build on a machine with the device gets this far: the CUDA
  // backend's kernels are the GPU half of issue 22, not written yet.
  if (dev.is_cuda())
    bad_input("--device " + device_name(dev) + ": this build has no CUDA backend yet (its kernels are not written)");
}

int64_t kv_cache_mb_for_blocks(const RuntimeOptions& opts, const ModelDesc& desc, int64_t blocks) {
  check_block_size(opts.block_size);
  const int64_t per_block = KvCache::bytes_per_block(desc.cfg, opts.block_size, resolve_kv_dtype(opts.kv_dtype, desc));
  const std::optional<int64_t> bytes = checked_mul(per_block, blocks);
  if (!bytes || *bytes > (int64_t(1) << 50))
    bad_input("the KV cache needed for these lengths and batch sizes is too large");
  return std::max<int64_t>(1, (*bytes + (1 << 20) - 1) >> 20);
}

namespace {

// One forward pass of a full step's worth of prompt tokens into KV blocks
// that no sequence holds yet (the engine overwrites them before reading):
// the activation buffers, the kernels' packing buffers, the KV cache pages
// it touches and the weights' pages are all faulted in and sized, so the
// first request runs at the warm speed. Without it, the first 128-token
// prefill of the synth Mixtral Q8_0 ran at about 60% of the second.
void warm_up(MixtralRunner& runner, const ModelConfig& c, const RuntimeOptions& opts, int32_t num_blocks) {
  const int64_t cap = std::min<int64_t>(int64_t(num_blocks) * opts.block_size, c.max_position_embeddings);
  const int32_t n = int32_t(std::min<int64_t>(opts.max_step_tokens, cap));
  if (n <= 0 || c.vocab_size <= 0) return;
  std::vector<int32_t> tokens(static_cast<size_t>(n));
  for (int32_t i = 0; i < n; ++i) tokens[size_t(i)] = int32_t((int64_t(i) * 7919 + 3) % c.vocab_size);
  const int32_t blocks = (n + opts.block_size - 1) / opts.block_size;
  std::vector<int32_t> table(static_cast<size_t>(blocks));
  std::iota(table.begin(), table.end(), 0);
  ForwardOutput out;
  runner.forward({SeqChunk{tokens.data(), n, 0, table.data(), blocks, LogitsWanted::Last}}, out);
}

}  // namespace

std::unique_ptr<Runtime> load_runtime(const RuntimeOptions& opts) {
  auto rt = std::make_unique<Runtime>();
  rt->opts = opts;
  check_block_size(opts.block_size);
  if (opts.max_batch <= 0 || opts.max_batch > 65536) bad_input("--max-batch must be in 1..65536");
  if (opts.kv_cache_mb < 0 || opts.kv_cache_mb > (int64_t(1) << 30))
    bad_input("--kv-cache-mb must be in 0..1073741824 (0: sized from the context)");
  const QuantPlan plan = parse_quant_plan(opts.quant);
  check_device_options(opts);
  rt->desc = load_model_desc(opts.model_path);
  const ops::KvDType kv_dtype = resolve_kv_dtype(opts.kv_dtype, rt->desc);
  if (plan.any() && rt->desc.format == "gguf")
    bad_input("--quant applies to float checkpoints; " + opts.model_path + " is already a GGUF file");
  rt->tokenizer = try_load_tokenizer(rt->desc);
  rt->text = std::make_unique<TokenizerText>(rt->tokenizer.get());
  if (rt->tokenizer && rt->tokenizer->vocab_size() > rt->desc.cfg.vocab_size)
    bad_input(opts.model_path + ": tokenizer has " + std::to_string(rt->tokenizer->vocab_size()) +
              " pieces but the model's vocab_size is " + std::to_string(rt->desc.cfg.vocab_size));
  rt->pool = std::make_unique<ThreadPool>(opts.threads);
  // Fault the file in now rather than during the first requests (skipped
  // for files larger than memory, and for load-time quantization, which
  // reads each tensor once). Before the model is built: weights copied into
  // the kernels' panel layout release their file pages as they go, and must
  // not be faulted back in afterwards.
  if (!plan.any() && opts.prefault)
    for (const auto& f : rt->desc.files) f->populate();
  rt->backend = make_backend("cpu", *rt->pool);
  rt->model = std::make_unique<Mixtral>(rt->desc, plan, *rt->backend);

  const ModelConfig& c = rt->desc.cfg;
  int64_t mb = opts.kv_cache_mb;
  if (mb == 0) {
    // Enough for max_batch full contexts, capped at 1 GiB.
    const int64_t per_block = KvCache::bytes_per_block(c, opts.block_size, kv_dtype);
    // validate_config bounds the context and the per-position bytes, the
    // flags above bound the rest; a product past int64 still means "more than the cap".
    const int64_t blocks_per_seq = (c.max_position_embeddings + opts.block_size - 1) / opts.block_size;
    const std::optional<int64_t> bytes = checked_product({int64_t(opts.max_batch), blocks_per_seq, per_block});
    mb = !bytes || *bytes >= (int64_t(1024) << 20) ? 1024 : (*bytes + (1 << 20) - 1) >> 20;
  }
  const int32_t num_blocks = KvCache::blocks_for_mb(c, mb, opts.block_size, kv_dtype);
  if (num_blocks < 1)
    bad_input("--kv-cache-mb " + std::to_string(mb) + " holds no KV block (one block needs " +
              std::to_string(KvCache::bytes_per_block(c, opts.block_size, kv_dtype)) + " bytes)");
  rt->runner = std::make_unique<MixtralRunner>(*rt->model, num_blocks, opts.block_size, kv_dtype);
  if (opts.prefault) warm_up(*rt->runner, c, opts, num_blocks);

  EngineOptions eo;
  eo.block_size = opts.block_size;
  eo.num_blocks = num_blocks;
  eo.max_batch = opts.max_batch;
  eo.max_step_tokens = opts.max_step_tokens;
  eo.max_queue = opts.max_queue;
  rt->engine = std::make_unique<Engine>(*rt->runner, *rt->text, eo);
  return rt;
}

}  // namespace ms
