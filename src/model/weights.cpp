#include "model/weights.h"

#include <algorithm>

#include "core/error.h"
#include "kernels/ops.h"

namespace ms {

QuantPlan parse_quant_plan(const std::string& s) {
  QuantPlan p;
  if (s == "none" || s.empty()) return p;
  if (s == "mixed") {
    p.experts = DType::Q4_K;
    p.attention = DType::Q8_0;
    p.embeddings = DType::Q8_0;
    return p;
  }
  DType t;
  if (!parse_dtype(s, &t) || !(t == DType::Q8_0 || t == DType::Q4_0 || t == DType::Q4_K))
    bad_input("--quant: unknown value '" + s + "' (expected none, q8_0, q4_0, q4_k or mixed)");
  p.experts = p.attention = p.embeddings = t;
  return p;
}

namespace {

// The K formats need rows that are whole 256-element super-blocks; narrower
// rows fall back to the 32-element format of the same bit width (with a
// per-block minimum, like the K formats), as llama.cpp's quantizer does.
DType fit_type(DType want, int64_t cols) {
  if (want == DType::F32 || cols % block_elems(want) == 0) return want;
  DType alt = DType::F32;
  if (want == DType::Q4_K) alt = DType::Q4_1;
  else if (want == DType::Q5_K) alt = DType::Q5_1;
  else if (want == DType::Q6_K) alt = DType::Q8_0;
  return (alt != DType::F32 && cols % block_elems(alt) == 0) ? alt : DType::F32;
}

std::string shape_str(const std::vector<int64_t>& s) {
  std::string r = "[";
  for (size_t i = 0; i < s.size(); ++i) r += (i ? ", " : "") + std::to_string(s[i]);
  return r + "]";
}

class Loader {
 public:
  Loader(const ModelDesc& d, MixtralWeights& w, Backend& be, bool allow_layout)
      : d_(d), w_(w), be_(be), allow_layout_(allow_layout) {}

  const TensorInfo& expect(const std::string& name, std::vector<int64_t> shape) {
    const TensorInfo& t = d_.get(name);
    if (t.shape != shape)
      bad_input(t.file + ": tensor '" + name + "' has shape " + shape_str(t.shape) + ", expected " + shape_str(shape));
    return t;
  }

  const float* vec(const std::string& name, int64_t n) {
    const TensorInfo& t = expect(name, {n});
    if (is_quantized(t.dtype)) bad_input(t.file + ": tensor '" + name + "' must be F32/F16/BF16");
    std::vector<float> v(static_cast<size_t>(n));
    ops::dequantize_row(t.dtype, t.data, v.data(), n);
    return be_.prepare_vector(v, w_.store);
  }

  // A 2-D matrix, or slice `index` of a 3-D stacked tensor. `multiplied`:
  // only ever an operand of matmul (so it may take the backend's layout).
  MatView mat(const TensorInfo& t, int64_t rows, int64_t cols, int64_t index, DType want, WeightRole role,
              int64_t layer, bool multiplied = true) {
    if (block_elems(t.dtype) > 1 && cols % block_elems(t.dtype) != 0)
      bad_input(t.file + ": tensor '" + t.name + "' rows are not whole " + dtype_name(t.dtype) + " blocks");
    const size_t rb = row_bytes(t.dtype, cols);
    const MatView m = make_mat(t.dtype, rows, cols, t.data + size_t(index) * size_t(rows) * rb);
    WeightSpec spec;
    spec.role = role;
    spec.layer = layer;
    want = fit_type(want, cols);
    spec.run_type = is_quantized(t.dtype) ? DType::F32 : want;  // quantized files keep their type
    spec.multiplied = multiplied;
    spec.allow_layout = allow_layout_;
    return be_.prepare_weight(m, spec, w_.store);
  }

  MatView mat2(const std::string& name, int64_t rows, int64_t cols, DType want, WeightRole role, int64_t layer,
               bool multiplied = true) {
    return mat(expect(name, {rows, cols}), rows, cols, 0, want, role, layer, multiplied);
  }

 private:
  const ModelDesc& d_;
  MixtralWeights& w_;
  Backend& be_;
  bool allow_layout_;
};

}  // namespace

MixtralWeights load_weights(const ModelDesc& d, const QuantPlan& plan, Backend& backend) {
  const ModelConfig& c = d.cfg;
  MixtralWeights w;
  Loader L(d, w, backend, plan.repack);
  const int64_t H = c.hidden_size, F = c.intermediate_size, V = c.vocab_size;
  const int64_t QD = c.num_heads * c.head_dim, KD = c.num_kv_heads * c.head_dim;
  // Embeddings are gathered, not multiplied.
  w.tok_embd = L.mat2("token_embd", V, H, DType::F32, WeightRole::Embedding, -1, false);
  for (int64_t l = 0; l < c.num_layers; ++l) {
    const std::string b = "blk." + std::to_string(l) + ".";
    LayerWeights lw;
    lw.attn_norm = L.vec(b + "attn_norm", H);
    lw.wq = L.mat2(b + "attn_q", QD, H, plan.attention, WeightRole::Attention, l);
    lw.wk = L.mat2(b + "attn_k", KD, H, plan.attention, WeightRole::Attention, l);
    lw.wv = L.mat2(b + "attn_v", KD, H, plan.attention, WeightRole::Attention, l);
    lw.wo = L.mat2(b + "attn_output", H, QD, plan.attention, WeightRole::Attention, l);
    lw.ffn_norm = L.vec(b + "ffn_norm", H);
    if (c.is_moe()) {
      const int64_t E = c.num_experts;
      lw.router = L.mat2(b + "ffn_gate_inp", E, H, DType::F32, WeightRole::Router, l);
      if (d.find(b + "ffn_gate_exps")) {
        const TensorInfo& g = L.expect(b + "ffn_gate_exps", {E, F, H});
        const TensorInfo& u = L.expect(b + "ffn_up_exps", {E, F, H});
        const TensorInfo& dn = L.expect(b + "ffn_down_exps", {E, H, F});
        for (int64_t e = 0; e < E; ++e) {
          lw.w1.push_back(L.mat(g, F, H, e, plan.experts, WeightRole::Expert, l));
          lw.w3.push_back(L.mat(u, F, H, e, plan.experts, WeightRole::Expert, l));
          lw.w2.push_back(L.mat(dn, H, F, e, plan.experts, WeightRole::Expert, l));
        }
      } else {
        for (int64_t e = 0; e < E; ++e) {
          const std::string s = "." + std::to_string(e);
          lw.w1.push_back(L.mat2(b + "ffn_gate" + s, F, H, plan.experts, WeightRole::Expert, l));
          lw.w3.push_back(L.mat2(b + "ffn_up" + s, F, H, plan.experts, WeightRole::Expert, l));
          lw.w2.push_back(L.mat2(b + "ffn_down" + s, H, F, plan.experts, WeightRole::Expert, l));
        }
      }
    } else {
      lw.w1.push_back(L.mat2(b + "ffn_gate", F, H, plan.experts, WeightRole::Expert, l));
      lw.w3.push_back(L.mat2(b + "ffn_up", F, H, plan.experts, WeightRole::Expert, l));
      lw.w2.push_back(L.mat2(b + "ffn_down", H, F, plan.experts, WeightRole::Expert, l));
    }
    w.layers.push_back(std::move(lw));
  }
  w.output_norm = L.vec("output_norm", H);
  if (c.tie_word_embeddings || !d.find("output"))
    w.output = w.tok_embd;
  else
    w.output = L.mat2("output", V, H, plan.embeddings, WeightRole::Output, -1);
  return w;
}

ModelBytes model_bytes(const ModelDesc& d, const QuantPlan& plan) {
  const ModelConfig& c = d.cfg;
  ModelBytes mb;
  mb.layers.resize(size_t(c.num_layers));
  // The same names, shapes and run types as load_weights (checked there).
  auto bytes = [&](const std::string& name, DType want) -> int64_t {
    const TensorInfo& t = d.get(name);
    if (t.shape.empty()) return 0;
    const int64_t cols = t.shape.back();
    int64_t rows = 1;
    for (size_t i = 0; i + 1 < t.shape.size(); ++i) rows *= t.shape[i];
    const DType run = is_quantized(t.dtype) || fit_type(want, cols) == DType::F32 ? t.dtype : fit_type(want, cols);
    return int64_t(row_bytes(run, cols)) * rows;
  };
  mb.embedding = bytes("token_embd", DType::F32);
  for (int64_t l = 0; l < c.num_layers; ++l) {
    const std::string b = "blk." + std::to_string(l) + ".";
    LayerBytes& lb = mb.layers[size_t(l)];
    for (const char* n : {"attn_q", "attn_k", "attn_v", "attn_output"}) lb.dense += bytes(b + n, plan.attention);
    if (c.is_moe()) {
      lb.dense += bytes(b + "ffn_gate_inp", DType::F32);
      if (d.find(b + "ffn_gate_exps")) {
        for (const char* n : {"ffn_gate_exps", "ffn_up_exps", "ffn_down_exps"}) lb.experts += bytes(b + n, plan.experts);
      } else {
        for (int64_t e = 0; e < c.num_experts; ++e)
          for (const char* n : {"ffn_gate.", "ffn_up.", "ffn_down."})
            lb.experts += bytes(b + n + std::to_string(e), plan.experts);
      }
    } else {
      for (const char* n : {"ffn_gate", "ffn_up", "ffn_down"}) lb.experts += bytes(b + n, plan.experts);
    }
  }
  if (!(c.tie_word_embeddings || !d.find("output"))) mb.output = bytes("output", plan.embeddings);
  return mb;
}

}  // namespace ms
