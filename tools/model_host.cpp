// model_host.cpp — the multi-model server's loader (see model_host.h).
#include "model_host.h"

#include <malloc.h>

#include <algorithm>
#include <cstdio>
#include <filesystem>
#include <thread>

#include "core/checked.h"
#include "core/error.h"
#include "kernels/backend.h"
#include "mixtral_runner.h"
#include "model/kv_cache.h"
#include "model/mixtral.h"
#include "model/weights.h"

namespace ms::cli {

namespace {

class VocabText : public TokenText {
 public:
  explicit VocabText(const Tokenizer* t) : t_(t) {}
  std::string token_bytes(int32_t id) const override { return t_ ? t_->token_bytes(id) : std::string(); }
  bool leading_space_is_marker(int32_t id) const override { return t_ && t_->leading_space_is_marker(id); }

 private:
  const Tokenizer* t_;
};

// KV cache MiB for a model: the flag, or enough for max_batch full
// contexts capped at 1 GiB (as load_runtime sizes it).
int64_t kv_mb_for(const RuntimeOptions& o, const ModelDesc& desc, ops::KvDType kv) {
  if (o.kv_cache_mb > 0) return o.kv_cache_mb;
  const ModelConfig& c = desc.cfg;
  const int64_t per_block = KvCache::bytes_per_block(c, o.block_size, kv);
  const int64_t blocks_per_seq = (c.max_position_embeddings + o.block_size - 1) / o.block_size;
  const std::optional<int64_t> bytes = checked_product({int64_t(o.max_batch), blocks_per_seq, per_block});
  return !bytes || *bytes >= (int64_t(1024) << 20) ? 1024 : std::max<int64_t>(1, (*bytes + (1 << 20) - 1) >> 20);
}

}  // namespace

struct ModelHost::Weights {
  ModelDesc desc;
  std::unique_ptr<Tokenizer> tokenizer;
  std::unique_ptr<TokenText> text;
  std::unique_ptr<Backend> backend;
  std::unique_ptr<Mixtral> model;
  ~Weights() {
    model.reset();
    backend.reset();
  }
};

struct ModelHost::Instance : ModelInstance {
  std::shared_ptr<Weights> weights;
  std::shared_ptr<StepDriver> driver;  // outlives the engine
  std::unique_ptr<MixtralRunner> runner;
  std::unique_ptr<Engine> engine;
  ~Instance() override {
    if (driver && driver->on_driver_thread()) {
      // The last holder let go inside a step (a finished request of an
      // unloaded model): that step is still running, so stop the engine
      // from another thread once it is over.
      std::thread([e = std::move(engine), r = std::move(runner), w = std::move(weights), d = std::move(driver)]() mutable {
        e->stop();
        e.reset();
        r.reset();
        w.reset();
        d.reset();
        malloc_trim(0);
      }).detach();
      return;
    }
    if (engine) engine->stop();
    engine.reset();
    driver.reset();
    runner.reset();
    weights.reset();
    malloc_trim(0);  // hand freed KV and weight copies back to the system now
  }
};

ModelHost::ModelHost(int threads)
    : pool_(std::make_unique<ThreadPool>(threads)), driver_(std::make_shared<StepDriver>()) {}

ModelHost::~ModelHost() = default;

ModelEntry ModelHost::declare(const ServedModelSpec& s, const ModelDefaults& d) {
  Plan p;
  p.spec = s;
  RuntimeOptions& ro = p.ro;
  ro.model_path = s.path;
  ro.quant = s.quant.value_or(d.quant);
  ro.kv_dtype = s.kv_dtype.value_or(d.kv_dtype);
  ro.kv_cache_mb = s.kv_cache_mb.value_or(d.kv_cache_mb);
  ro.max_batch = static_cast<int32_t>(s.max_batch.value_or(d.max_batch));
  ro.max_queue = static_cast<int32_t>(s.max_queue.value_or(d.max_queue));
  ro.max_step_tokens = static_cast<int32_t>(s.max_step_tokens.value_or(d.max_step_tokens));
  ro.threads = pool_->size();
  auto fail = [&s](const std::string& what) { bad_input("model '" + s.name + "': " + what); };
  if (ro.max_batch < 1 || ro.max_batch > 65536) fail("max_batch must be in 1..65536");
  if (ro.max_queue < 1) fail("max_queue must be >= 1");
  if (ro.max_step_tokens < 1) fail("max_step_tokens must be >= 1");
  if (ro.kv_cache_mb < 0 || ro.kv_cache_mb > (int64_t(1) << 30)) fail("kv_cache_mb must be in 0..1073741824");
  ModelDesc desc;
  QuantPlan plan;
  ops::KvDType kv{};
  try {
    plan = parse_quant_plan(ro.quant);
    desc = load_model_desc(ro.model_path);
    kv = resolve_kv_dtype(ro.kv_dtype, desc);
  } catch (const Error& e) {
    fail(e.what());
  }
  if (plan.any() && desc.format == "gguf") fail("quant applies to float checkpoints; " + s.path + " is already a GGUF file");
  std::error_code ec;
  const std::filesystem::path canon = std::filesystem::weakly_canonical(s.path, ec);
  p.weights_key = (ec ? s.path : canon.string()) + "|" + ro.quant;

  ModelEntry e;
  e.name = s.name;
  e.autoload = s.autoload;
  e.pinned = s.pinned;
  e.preload = s.preload;
  e.fallback = s.fallback;
  e.weights_key = p.weights_key;
  for (const auto& f : desc.files) e.weights_bytes += static_cast<int64_t>(f->size());
  e.other_bytes = kv_mb_for(ro, desc, kv) << 20;
  std::lock_guard<std::mutex> lk(mu_);
  plans_[s.name] = std::move(p);
  return e;
}

std::vector<ProvisionedSpec> ModelHost::provisioned(const std::string& name) const {
  std::lock_guard<std::mutex> lk(mu_);
  auto it = plans_.find(name);
  return it == plans_.end() ? std::vector<ProvisionedSpec>{} : it->second.spec.provisioned;
}

std::shared_ptr<ModelHost::Weights> ModelHost::weights_for(const Plan& p) {
  std::lock_guard<std::mutex> build(build_mu_);
  {
    std::lock_guard<std::mutex> lk(mu_);
    if (auto w = weights_[p.weights_key].lock()) return w;
  }
  auto w = std::make_shared<Weights>();
  const QuantPlan plan = parse_quant_plan(p.ro.quant);
  w->desc = load_model_desc(p.ro.model_path);
  w->tokenizer = try_load_tokenizer(w->desc);
  if (w->tokenizer && w->tokenizer->vocab_size() > w->desc.cfg.vocab_size)
    bad_input(p.ro.model_path + ": tokenizer has " + std::to_string(w->tokenizer->vocab_size()) +
              " pieces but the model's vocab_size is " + std::to_string(w->desc.cfg.vocab_size));
  w->text = std::make_unique<VocabText>(w->tokenizer.get());
  if (!plan.any())
    for (const auto& f : w->desc.files) f->populate();
  w->backend = make_backend("cpu", *pool_);
  w->model = std::make_unique<Mixtral>(w->desc, plan, *w->backend);
  std::lock_guard<std::mutex> lk(mu_);
  weights_[p.weights_key] = w;
  return w;
}

std::shared_ptr<ModelInstance> ModelHost::load(const std::string& name) {
  Plan p;
  {
    std::lock_guard<std::mutex> lk(mu_);
    auto it = plans_.find(name);
    if (it == plans_.end()) bad_input("unknown model '" + name + "'");
    p = it->second;
  }
  auto inst = std::make_shared<Instance>();
  inst->weights = weights_for(p);
  const ModelDesc& desc = inst->weights->desc;
  const ops::KvDType kv = resolve_kv_dtype(p.ro.kv_dtype, desc);
  const int64_t mb = kv_mb_for(p.ro, desc, kv);
  const int32_t num_blocks = KvCache::blocks_for_mb(desc.cfg, mb, p.ro.block_size, kv);
  if (num_blocks < 1)
    bad_input("kv_cache_mb " + std::to_string(mb) + " holds no KV block (one block needs " +
              std::to_string(KvCache::bytes_per_block(desc.cfg, p.ro.block_size, kv)) + " bytes)");
  inst->runner = std::make_unique<MixtralRunner>(*inst->weights->model, num_blocks, p.ro.block_size, kv);
  EngineOptions eo;
  eo.block_size = p.ro.block_size;
  eo.num_blocks = num_blocks;
  eo.max_batch = p.ro.max_batch;
  eo.max_step_tokens = p.ro.max_step_tokens;
  eo.max_queue = p.ro.max_queue;
  inst->engine = std::make_unique<Engine>(*inst->runner, *inst->weights->text, eo);
  inst->driver = driver_;
  inst->engine->start(*driver_);
  ServerBackend& b = inst->backend;
  b.engine = inst->engine.get();
  b.tokenizer = inst->weights->tokenizer.get();
  b.max_context = desc.cfg.max_position_embeddings;
  b.num_layers = desc.cfg.num_layers;
  b.num_experts = desc.cfg.num_experts;
  b.max_queue = p.ro.max_queue;
  b.vocab_size = desc.cfg.vocab_size;
  return inst;
}

}  // namespace ms::cli
