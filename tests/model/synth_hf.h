// synth_hf.h — writes small random Mixtral/Mistral checkpoints in Hugging
// Face layout (config.json + model.safetensors) for configurations the
// fixtures do not cover, and a naive double-precision forward pass written
// straight from the model's definition (no cache, no batching, no paging) to
// compare the real implementation against.
#pragma once
#include <cmath>
#include <cstdint>
#include <filesystem>
#include <fstream>
#include <map>
#include <nlohmann/json.hpp>
#include <random>
#include <string>
#include <vector>

#include "core/dtype.h"

namespace ms::test {

struct SynthSpec {
  std::string arch = "MixtralForCausalLM";
  int64_t vocab = 97, hidden = 48, ffn = 40, layers = 2, heads = 4, kv_heads = 2, head_dim = 12;
  bool explicit_head_dim = false;
  int64_t experts = 4, top_k = 2;
  int64_t sliding_window = 0;
  bool tie = false;
  std::string dtype = "BF16";  // F32 | F16 | BF16
  double rope_theta = 10000.0;
  uint32_t seed = 1;
};

// Weights as the checkpoint stores them, rounded to its dtype and back.
struct SynthWeights {
  std::map<std::string, std::vector<double>> t;  // HF name -> values
  std::map<std::string, std::vector<int64_t>> shape;
};

inline uint16_t to16(const std::string& dt, float f) { return dt == "F16" ? f32_to_f16(f) : f32_to_bf16(f); }
inline double from16(const std::string& dt, uint16_t h) { return dt == "F16" ? f16_to_f32(h) : bf16_to_f32(h); }

inline SynthWeights write_synth(const SynthSpec& s, const std::string& dir) {
  namespace fs = std::filesystem;
  fs::create_directories(dir);
  nlohmann::json cfg = {{"architectures", {s.arch}},
                        {"vocab_size", s.vocab},
                        {"hidden_size", s.hidden},
                        {"intermediate_size", s.ffn},
                        {"num_hidden_layers", s.layers},
                        {"num_attention_heads", s.heads},
                        {"num_key_value_heads", s.kv_heads},
                        {"rms_norm_eps", 1e-5},
                        {"rope_theta", s.rope_theta},
                        {"max_position_embeddings", 4096},
                        {"tie_word_embeddings", s.tie},
                        {"bos_token_id", 1},
                        {"eos_token_id", 2},
                        {"hidden_act", "silu"}};
  cfg["sliding_window"] = s.sliding_window > 0 ? nlohmann::json(s.sliding_window) : nlohmann::json(nullptr);
  if (s.explicit_head_dim) cfg["head_dim"] = s.head_dim;
  if (s.arch == "MixtralForCausalLM") {
    cfg["num_local_experts"] = s.experts;
    cfg["num_experts_per_tok"] = s.top_k;
  }
  std::ofstream(dir + "/config.json") << cfg.dump(2);

  SynthWeights w;
  std::mt19937 rng(s.seed);
  auto add = [&](const std::string& name, std::vector<int64_t> shape, double scale, double offset) {
    int64_t n = 1;
    for (auto d : shape) n *= d;
    std::uniform_real_distribution<double> U(-1.0, 1.0);
    std::vector<double> v(static_cast<size_t>(n));
    for (auto& x : v) x = offset + scale * U(rng);
    w.t[name] = v;
    w.shape[name] = shape;
  };
  const int64_t H = s.hidden, QD = s.heads * s.head_dim, KD = s.kv_heads * s.head_dim;
  add("model.embed_tokens.weight", {s.vocab, H}, 1.0, 0);
  for (int64_t l = 0; l < s.layers; ++l) {
    const std::string p = "model.layers." + std::to_string(l) + ".";
    add(p + "input_layernorm.weight", {H}, 0.2, 1.0);
    add(p + "post_attention_layernorm.weight", {H}, 0.2, 1.0);
    add(p + "self_attn.q_proj.weight", {QD, H}, 1.5 / std::sqrt(double(H)), 0);
    add(p + "self_attn.k_proj.weight", {KD, H}, 1.5 / std::sqrt(double(H)), 0);
    add(p + "self_attn.v_proj.weight", {KD, H}, 1.0 / std::sqrt(double(H)), 0);
    add(p + "self_attn.o_proj.weight", {H, QD}, 1.0 / std::sqrt(double(QD)), 0);
    if (s.arch == "MixtralForCausalLM") {
      add(p + "block_sparse_moe.gate.weight", {s.experts, H}, 3.0 / std::sqrt(double(H)), 0);
      for (int64_t e = 0; e < s.experts; ++e) {
        const std::string q = p + "block_sparse_moe.experts." + std::to_string(e) + ".";
        add(q + "w1.weight", {s.ffn, H}, 1.5 / std::sqrt(double(H)), 0);
        add(q + "w3.weight", {s.ffn, H}, 1.5 / std::sqrt(double(H)), 0);
        add(q + "w2.weight", {H, s.ffn}, 1.0 / std::sqrt(double(s.ffn)), 0);
      }
    } else {
      add(p + "mlp.gate_proj.weight", {s.ffn, H}, 1.5 / std::sqrt(double(H)), 0);
      add(p + "mlp.up_proj.weight", {s.ffn, H}, 1.5 / std::sqrt(double(H)), 0);
      add(p + "mlp.down_proj.weight", {H, s.ffn}, 1.0 / std::sqrt(double(s.ffn)), 0);
    }
  }
  add("model.norm.weight", {H}, 0.2, 1.0);
  if (!s.tie) add("lm_head.weight", {s.vocab, H}, 2.0 / std::sqrt(double(H)), 0);

  // Serialise; round the stored values so the naive model sees exactly the file's numbers.
  nlohmann::json header = nlohmann::json::object();
  std::string data;
  const size_t es = s.dtype == "F32" ? 4 : 2;
  for (auto& [name, v] : w.t) {
    const size_t b = data.size();
    for (auto& x : v) {
      if (es == 4) {
        const float f = float(x);
        x = f;
        data.append(reinterpret_cast<const char*>(&f), 4);
      } else {
        const uint16_t h = to16(s.dtype, float(x));
        x = from16(s.dtype, h);
        data.append(reinterpret_cast<const char*>(&h), 2);
      }
    }
    header[name] = {{"dtype", s.dtype}, {"shape", w.shape[name]}, {"data_offsets", {b, data.size()}}};
  }
  std::string hs = header.dump();
  while (hs.size() % 8) hs += ' ';
  std::ofstream out(dir + "/model.safetensors", std::ios::binary);
  const uint64_t n = hs.size();
  out.write(reinterpret_cast<const char*>(&n), 8);
  out << hs << data;
  return w;
}

// The model, computed naively in double for a whole sequence: logits [T][vocab].
inline std::vector<double> naive_forward(const SynthSpec& s, const SynthWeights& w, const std::vector<int32_t>& ids) {
  const int64_t T = int64_t(ids.size()), H = s.hidden, D = s.head_dim, F = s.ffn;
  const int64_t QD = s.heads * D, KD = s.kv_heads * D;
  auto W = [&](const std::string& n) -> const std::vector<double>& { return w.t.at(n); };
  auto matvec = [](const std::vector<double>& m, int64_t rows, int64_t cols, const double* x, double* y) {
    for (int64_t r = 0; r < rows; ++r) {
      double a = 0;
      for (int64_t c = 0; c < cols; ++c) a += m[size_t(r * cols + c)] * x[c];
      y[r] = a;
    }
  };
  auto rms = [&](const double* x, const std::vector<double>& g, double* y) {
    double ss = 0;
    for (int64_t i = 0; i < H; ++i) ss += x[i] * x[i];
    const double inv = 1.0 / std::sqrt(ss / double(H) + 1e-5);
    for (int64_t i = 0; i < H; ++i) y[i] = x[i] * inv * g[size_t(i)];
  };
  auto rope = [&](double* v, int64_t pos) {  // HF rotate-half
    for (int64_t i = 0; i < D / 2; ++i) {
      const double f = std::pow(s.rope_theta, -double(2 * i) / double(D));
      const double c = std::cos(pos * f), sn = std::sin(pos * f);
      const double a = v[i], b = v[i + D / 2];
      v[i] = a * c - b * sn;
      v[i + D / 2] = b * c + a * sn;
    }
  };
  std::vector<double> x(static_cast<size_t>(T * H));
  for (int64_t t = 0; t < T; ++t)
    for (int64_t i = 0; i < H; ++i) x[size_t(t * H + i)] = W("model.embed_tokens.weight")[size_t(ids[size_t(t)] * H + i)];
  std::vector<double> h(static_cast<size_t>(H)), q(static_cast<size_t>(T * QD)), k(static_cast<size_t>(T * KD)), v(static_cast<size_t>(T * KD)), att(static_cast<size_t>(QD)), o(static_cast<size_t>(H));
  for (int64_t l = 0; l < s.layers; ++l) {
    const std::string p = "model.layers." + std::to_string(l) + ".";
    for (int64_t t = 0; t < T; ++t) {
      rms(&x[size_t(t * H)], W(p + "input_layernorm.weight"), h.data());
      matvec(W(p + "self_attn.q_proj.weight"), QD, H, h.data(), &q[size_t(t * QD)]);
      matvec(W(p + "self_attn.k_proj.weight"), KD, H, h.data(), &k[size_t(t * KD)]);
      matvec(W(p + "self_attn.v_proj.weight"), KD, H, h.data(), &v[size_t(t * KD)]);
      for (int64_t hh = 0; hh < s.heads; ++hh) rope(&q[size_t(t * QD + hh * D)], t);
      for (int64_t hh = 0; hh < s.kv_heads; ++hh) rope(&k[size_t(t * KD + hh * D)], t);
    }
    std::vector<double> xnew = x;
    for (int64_t t = 0; t < T; ++t) {
      for (int64_t hh = 0; hh < s.heads; ++hh) {
        const int64_t kh = hh / (s.heads / s.kv_heads);
        const int64_t j0 = s.sliding_window > 0 ? std::max<int64_t>(0, t - s.sliding_window + 1) : 0;
        std::vector<double> sc;
        double mx = -1e300;
        for (int64_t j = j0; j <= t; ++j) {
          double a = 0;
          for (int64_t c = 0; c < D; ++c) a += q[size_t(t * QD + hh * D + c)] * k[size_t(j * KD + kh * D + c)];
          sc.push_back(a / std::sqrt(double(D)));
          mx = std::max(mx, sc.back());
        }
        double sum = 0;
        for (auto& e : sc) sum += (e = std::exp(e - mx));
        for (int64_t c = 0; c < D; ++c) {
          double a = 0;
          for (int64_t j = j0; j <= t; ++j) a += sc[size_t(j - j0)] / sum * v[size_t(j * KD + kh * D + c)];
          att[size_t(hh * D + c)] = a;
        }
      }
      matvec(W(p + "self_attn.o_proj.weight"), H, QD, att.data(), o.data());
      for (int64_t i = 0; i < H; ++i) xnew[size_t(t * H + i)] += o[size_t(i)];
    }
    x = xnew;
    for (int64_t t = 0; t < T; ++t) {
      rms(&x[size_t(t * H)], W(p + "post_attention_layernorm.weight"), h.data());
      std::vector<std::pair<int64_t, double>> chosen;
      if (s.arch == "MixtralForCausalLM") {
        std::vector<double> r(static_cast<size_t>(s.experts));
        matvec(W(p + "block_sparse_moe.gate.weight"), s.experts, H, h.data(), r.data());
        double mx = -1e300, sum = 0;
        for (double e : r) mx = std::max(mx, e);
        for (double& e : r) sum += (e = std::exp(e - mx));
        for (double& e : r) e /= sum;
        std::vector<int64_t> idx(size_t(s.experts));
        for (int64_t e = 0; e < s.experts; ++e) idx[size_t(e)] = e;
        std::stable_sort(idx.begin(), idx.end(), [&](int64_t a, int64_t b) { return r[size_t(a)] > r[size_t(b)]; });
        double tot = 0;
        for (int64_t kk = 0; kk < s.top_k; ++kk) tot += r[size_t(idx[size_t(kk)])];
        for (int64_t kk = 0; kk < s.top_k; ++kk) chosen.push_back({idx[size_t(kk)], r[size_t(idx[size_t(kk)])] / tot});
      } else {
        chosen.push_back({-1, 1.0});
      }
      for (auto [e, wt] : chosen) {
        const std::string q2 = e < 0 ? p + "mlp." : p + "block_sparse_moe.experts." + std::to_string(e) + ".";
        const std::string n1 = e < 0 ? "gate_proj" : "w1", n3 = e < 0 ? "up_proj" : "w3", n2 = e < 0 ? "down_proj" : "w2";
        std::vector<double> g(static_cast<size_t>(F)), u(static_cast<size_t>(F)), y(static_cast<size_t>(H));
        matvec(W(q2 + n1 + ".weight"), F, H, h.data(), g.data());
        matvec(W(q2 + n3 + ".weight"), F, H, h.data(), u.data());
        for (int64_t i = 0; i < F; ++i) g[size_t(i)] = g[size_t(i)] / (1 + std::exp(-g[size_t(i)])) * u[size_t(i)];
        matvec(W(q2 + n2 + ".weight"), H, F, g.data(), y.data());
        for (int64_t i = 0; i < H; ++i) x[size_t(t * H + i)] += wt * y[size_t(i)];
      }
    }
  }
  std::vector<double> logits(static_cast<size_t>(T * s.vocab));
  const auto& out = s.tie ? W("model.embed_tokens.weight") : W("lm_head.weight");
  for (int64_t t = 0; t < T; ++t) {
    rms(&x[size_t(t * H)], W("model.norm.weight"), h.data());
    matvec(out, s.vocab, H, h.data(), &logits[size_t(t * s.vocab)]);
  }
  return logits;
}

}  // namespace ms::test
