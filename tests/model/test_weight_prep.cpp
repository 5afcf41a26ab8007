// Weights and KV storage go through the backend (Backend::prepare_weight,
// prepare_vector, alloc_kv): every matrix once, with its role and layer, in
// the run type model_bytes() predicts (what a device backend uploads and the
// offload planner places); on the CPU the weights stay in the mapping with
// no second copy, and the KV cache is the backend's memory.
#include <gtest/gtest.h>

#include <map>
#include <utility>

#include "core/thread_pool.h"
#include "kernels/cpu/cpu_backend.h"
#include "model_util.h"

namespace ms::test {
namespace {

// The CPU backend, recording what the model asks of it.
class RecordingBackend final : public cpu::CpuBackend {
 public:
  using cpu::CpuBackend::CpuBackend;
  MatView prepare_weight(const MatView& host, const WeightSpec& spec, WeightStore& store) override {
    const MatView m = cpu::CpuBackend::prepare_weight(host, spec, store);
    const int64_t bytes = int64_t(row_bytes(m.dtype, m.cols)) * m.rows;
    calls.push_back({spec, m});
    if (spec.role == WeightRole::Expert) layers[spec.layer].experts += bytes;
    else if (spec.role == WeightRole::Attention || spec.role == WeightRole::Router) layers[spec.layer].dense += bytes;
    else other[spec.role] += bytes;
    return m;
  }
  std::unique_ptr<Buffer> alloc_kv(size_t bytes) override {
    kv_allocs.push_back(bytes);
    return cpu::CpuBackend::alloc_kv(bytes);
  }
  std::vector<std::pair<WeightSpec, MatView>> calls;
  std::map<int64_t, LayerBytes> layers;
  std::map<WeightRole, int64_t> other;
  std::vector<size_t> kv_allocs;
};

struct Loaded {
  ModelDesc desc;
  ThreadPool pool{2};
  std::unique_ptr<RecordingBackend> be;
  std::unique_ptr<Mixtral> model;
  Loaded(const std::string& path, const std::string& quant) : desc(load_model_desc(path)) {
    be = std::make_unique<RecordingBackend>(pool);
    QuantPlan plan = parse_quant_plan(quant);
    plan.repack = false;  // row-major, as a device backend stores them
    model = std::make_unique<Mixtral>(desc, plan, *be);
  }
};

void expect_bytes_as_planned(const std::string& path, const std::string& quant) {
  Loaded L(path, quant);
  const ModelConfig& c = L.desc.cfg;
  const ModelBytes mb = model_bytes(L.desc, parse_quant_plan(quant));
  ASSERT_EQ(mb.layers.size(), size_t(c.num_layers));
  int64_t total = mb.embedding + mb.output;
  for (int64_t l = 0; l < c.num_layers; ++l) {
    EXPECT_EQ(L.be->layers[l].dense, mb.layers[size_t(l)].dense) << "layer " << l;
    EXPECT_EQ(L.be->layers[l].experts, mb.layers[size_t(l)].experts) << "layer " << l;
    EXPECT_GT(mb.layers[size_t(l)].experts, 0);
    total += mb.layers[size_t(l)].dense + mb.layers[size_t(l)].experts;
  }
  EXPECT_EQ(L.be->other[WeightRole::Embedding], mb.embedding);
  EXPECT_EQ(L.be->other[WeightRole::Output], mb.output);
  EXPECT_EQ(int64_t(L.model->weights().store.bytes), total);
  // Every matrix once: q, k, v, o, router and 3 per expert per layer, the embedding, the output unless tied.
  const int64_t per_layer = 4 + (c.is_moe() ? 1 + 3 * c.num_experts : 3);
  EXPECT_EQ(int64_t(L.be->calls.size()), c.num_layers * per_layer + 1 + (mb.output > 0 ? 1 : 0));
  for (const auto& [spec, m] : L.be->calls) {
    EXPECT_EQ(spec.multiplied, spec.role != WeightRole::Embedding);
    EXPECT_FALSE(spec.allow_layout);
    EXPECT_FALSE(m.panel16);
  }
}

TEST(WeightPrep, GgufBytesByLayerAsPlanned) {
  expect_bytes_as_planned(fixture("gguf/tiny-mixtral-kjv.Q4_K_M.gguf"), "none");
}
TEST(WeightPrep, LoadTimeQuantizedBytesAsPlanned) { expect_bytes_as_planned(bundled_model(), "mixed"); }
TEST(WeightPrep, FloatBytesAsPlanned) { expect_bytes_as_planned(bundled_model(), "none"); }

// On the CPU a GGUF model's matrices are views into the mapped file: no copy.
TEST(WeightPrep, CpuKeepsWeightsInTheMapping) {
  Loaded L(fixture("gguf/tiny-mixtral-kjv.Q8_0.gguf"), "none");
  ASSERT_EQ(L.desc.files.size(), 1u);
  const uint8_t* lo = L.desc.files[0]->data();
  const uint8_t* hi = lo + L.desc.files[0]->size();
  for (const auto& [spec, m] : L.be->calls) {
    EXPECT_GE(m.data, lo);
    EXPECT_LE(m.data + m.row_stride * size_t(m.rows), hi);
  }
  // The store holds only the norm vectors' f32 copies (2 per layer + the final one).
  const MixtralWeights& w = L.model->weights();
  EXPECT_EQ(w.store.buffers.size(), size_t(2 * L.desc.cfg.num_layers + 1));
  EXPECT_EQ(w.layers[0].attn_norm, reinterpret_cast<const float*>(w.store.buffers[0]->data()));
}

TEST(WeightPrep, KvCacheMemoryComesFromTheBackend) {
  Loaded L(fixture("gguf/tiny-mixtral-kjv.Q8_0.gguf"), "none");
  const ModelConfig& c = L.desc.cfg;
  KvCache kv(L.model->backend(), c, 8, 16, ops::KvDType::F16);
  const size_t per = size_t(c.num_layers) * 8 * 16 * size_t(c.num_kv_heads * c.head_dim) * 2;
  ASSERT_EQ(L.be->kv_allocs.size(), 2u);  // K and V
  EXPECT_EQ(L.be->kv_allocs[0], (per + 63) & ~size_t(63));
  EXPECT_EQ(kv.bytes(), 2 * per);
  const ops::PagedKv p0 = kv.layer(0), p1 = kv.layer(1);
  EXPECT_EQ(static_cast<uint8_t*>(p1.k) - static_cast<uint8_t*>(p0.k), std::ptrdiff_t(per / size_t(c.num_layers)));
}

}  // namespace
}  // namespace ms::test
