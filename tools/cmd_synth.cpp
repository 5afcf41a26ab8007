// moeserve synth — writes a GGUF file shaped like Mixtral-8x7B (hidden 4096,
// 8 experts of FFN 14336, top-2, 32 query / 8 KV heads of 128, rope_theta 1e6)
// with seeded random weights and the real Mistral vocabulary, laid out as
// llama.cpp's converter writes Mixtral (architecture "llama", stacked *_exps
// tensors, norms and router in F32), so llama.cpp can load it too. For
// benchmarks at real scale without downloading a real model.
//
// Weights are uniform with std 1/sqrt(fan_in) (embedding: std 1), norms are 1,
// so activations stay O(1). Values come from a counter-based generator keyed by
// (seed, tensor, row): the file is the same whatever the thread count. Tensors
// are generated in chunks of rows and streamed to the file; memory stays at a
// few chunk buffers however large the model.
#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>

#include "commands.h"
#include "core/dtype.h"
#include "core/error.h"
#include "core/thread_pool.h"
#include "format/gguf.h"
#include "format/gguf_writer.h"
#include "kernels/ops.h"
#include "tokenizer/spm_proto.h"

namespace ms::cli {

namespace {

// Mixtral-8x7B
constexpr int64_t kHidden = 4096, kFfn = 14336, kExperts = 8, kUsed = 2;
constexpr int64_t kHeads = 32, kKvHeads = 8, kHeadDim = 128, kContext = 32768;
constexpr double kRopeTheta = 1e6, kRmsEps = 1e-5;

struct SynthArgs {
  std::string out;
  int layers = 4;
  std::string type = "f16";
  uint64_t seed = 0;
  std::string tokenizer;
  int threads = 0;
};

uint64_t splitmix64(uint64_t x) {
  x += 0x9E3779B97F4A7C15ull;
  x = (x ^ (x >> 30)) * 0xBF58476D1CE4E5B9ull;
  x = (x ^ (x >> 27)) * 0x94D049BB133111EBull;
  return x ^ (x >> 31);
}

// One tensor to generate: `rows` rows of `cols` values, uniform in [-a, a]
// (or all `fill` when a == 0).
struct Spec {
  std::string name;
  DType type;
  std::vector<int64_t> shape;  // outermost first
  double a = 0.0;
  float fill = 1.0f;
};

Spec uniform(std::string name, DType t, std::vector<int64_t> shape, double fan_in_or_std, bool is_std = false) {
  const double std = is_std ? fan_in_or_std : 1.0 / std::sqrt(fan_in_or_std);
  return Spec{std::move(name), t, std::move(shape), std * std::sqrt(3.0), 0.0f};
}

std::string default_tokenizer() {
  std::error_code ec;
  const std::filesystem::path m = default_model_path();
  if (std::filesystem::is_directory(m, ec) && std::filesystem::exists(m / "tokenizer.model", ec))
    return (m / "tokenizer.model").string();
  return std::string(MOESERVE_DEFAULT_MODEL) + "/tokenizer.model";
}

// Generates rows [r0, r0 + n) of tensor `ti` into dst (packed rows of type t).
class RowGen {
 public:
  RowGen(const Spec& s, uint64_t seed, uint64_t ti) : s_(s), key_(splitmix64(seed ^ splitmix64(ti + 1))) {
    // 16-bit types: 65536 equally spaced quantiles of U(-a, a), indexed by 16 random bits.
    if (s.type == DType::F16 || s.type == DType::BF16) {
      table_.resize(65536);
      for (uint32_t k = 0; k < 65536; ++k) {
        const float v = s.a == 0 ? s.fill : float(s.a * ((k + 0.5) / 32768.0 - 1.0));
        table_[k] = s.type == DType::F16 ? f32_to_f16(v) : f32_to_bf16(v);
      }
    }
  }
  void row(int64_t r, int64_t cols, uint8_t* dst, std::vector<float>& scratch) const {
    const uint64_t base = splitmix64(key_ ^ (uint64_t(r) * 0xD1342543DE82EF95ull));
    if (s_.type == DType::F16 || s_.type == DType::BF16) {
      uint16_t* out = reinterpret_cast<uint16_t*>(dst);
      int64_t c = 0;
      for (uint64_t k = 0; c < cols; ++k) {
        uint64_t bits = splitmix64(base + k);
        for (int j = 0; j < 4 && c < cols; ++j, ++c, bits >>= 16) out[c] = table_[bits & 0xFFFF];
      }
      return;
    }
    float* x = s_.type == DType::F32 ? reinterpret_cast<float*>(dst) : scratch.data();
    if (s_.a == 0) {
      std::fill(x, x + cols, s_.fill);
    } else {
      const float scale = float(2.0 * s_.a / 16777216.0), off = float(-s_.a);
      int64_t c = 0;
      for (uint64_t k = 0; c < cols; ++k) {
        const uint64_t bits = splitmix64(base + k);
        x[c++] = float(bits >> 40) * scale + off;
        if (c < cols) x[c++] = float((bits >> 8) & 0xFFFFFF) * scale + off;
      }
    }
    if (s_.type != DType::F32) ops::quantize_row(s_.type, x, dst, cols);
  }

 private:
  const Spec& s_;
  uint64_t key_;
  std::vector<uint16_t> table_;
};

std::vector<Spec> model_specs(int layers, DType wt, int64_t vocab) {
  const int64_t q = kHeads * kHeadDim, kv = kKvHeads * kHeadDim;
  std::vector<Spec> s;
  s.push_back(uniform("token_embd.weight", wt, {vocab, kHidden}, 1.0, true));
  for (int l = 0; l < layers; ++l) {
    const std::string b = "blk." + std::to_string(l) + ".";
    s.push_back({b + "attn_norm.weight", DType::F32, {kHidden}, 0.0, 1.0f});
    s.push_back(uniform(b + "attn_q.weight", wt, {q, kHidden}, double(kHidden)));
    s.push_back(uniform(b + "attn_k.weight", wt, {kv, kHidden}, double(kHidden)));
    s.push_back(uniform(b + "attn_v.weight", wt, {kv, kHidden}, double(kHidden)));
    s.push_back(uniform(b + "attn_output.weight", wt, {kHidden, q}, double(q)));
    s.push_back({b + "ffn_norm.weight", DType::F32, {kHidden}, 0.0, 1.0f});
    s.push_back(uniform(b + "ffn_gate_inp.weight", DType::F32, {kExperts, kHidden}, double(kHidden)));
    s.push_back(uniform(b + "ffn_gate_exps.weight", wt, {kExperts, kFfn, kHidden}, double(kHidden)));
    s.push_back(uniform(b + "ffn_down_exps.weight", wt, {kExperts, kHidden, kFfn}, double(kFfn)));
    s.push_back(uniform(b + "ffn_up_exps.weight", wt, {kExperts, kFfn, kHidden}, double(kHidden)));
  }
  s.push_back({"output_norm.weight", DType::F32, {kHidden}, 0.0, 1.0f});
  s.push_back(uniform("output.weight", wt, {vocab, kHidden}, double(kHidden)));
  return s;
}

uint32_t llama_file_type(DType t) {  // llama.cpp's LLAMA_FTYPE_*
  switch (t) {
    case DType::F32: return 0;
    case DType::F16: return 1;
    case DType::Q4_0: return 2;
    case DType::Q8_0: return 7;
    case DType::Q4_K: return 14;  // MOSTLY_Q4_K_S: every matrix Q4_K
    case DType::BF16: return 32;
    default: return 0;
  }
}

void add_metadata(GgufWriter& w, const SynthArgs& a, DType wt, const SpmModel& tok, const std::string& chat_template) {
  w.add_str("general.architecture", "llama");
  w.add_str("general.type", "model");
  w.add_str("general.name", "Synthetic Mixtral-8x7B (random weights, seed " + std::to_string(a.seed) + ")");
  w.add_u32("llama.block_count", uint32_t(a.layers));
  w.add_u32("llama.context_length", uint32_t(kContext));
  w.add_u32("llama.embedding_length", uint32_t(kHidden));
  w.add_u32("llama.feed_forward_length", uint32_t(kFfn));
  w.add_u32("llama.attention.head_count", uint32_t(kHeads));
  w.add_u32("llama.attention.head_count_kv", uint32_t(kKvHeads));
  w.add_f32("llama.rope.freq_base", float(kRopeTheta));
  w.add_f32("llama.attention.layer_norm_rms_epsilon", float(kRmsEps));
  w.add_u32("llama.expert_count", uint32_t(kExperts));
  w.add_u32("llama.expert_used_count", uint32_t(kUsed));
  w.add_u32("general.file_type", llama_file_type(wt));
  w.add_u32("llama.vocab_size", uint32_t(tok.vocab.pieces.size()));
  w.add_u32("llama.rope.dimension_count", uint32_t(kHeadDim));
  w.add_u32("general.quantization_version", 2);
  w.add_str("tokenizer.ggml.model", "llama");
  w.add_str("tokenizer.ggml.pre", "default");
  w.add_arr_str("tokenizer.ggml.tokens", tok.vocab.pieces);
  w.add_arr_f32("tokenizer.ggml.scores", tok.vocab.scores);
  w.add_arr_i32("tokenizer.ggml.token_type", tok.vocab.types);
  w.add_u32("tokenizer.ggml.bos_token_id", uint32_t(tok.vocab.bos_id));
  w.add_u32("tokenizer.ggml.eos_token_id", uint32_t(tok.vocab.eos_id));
  w.add_u32("tokenizer.ggml.unknown_token_id", uint32_t(tok.vocab.unk_id));
  w.add_bool("tokenizer.ggml.add_bos_token", true);
  w.add_bool("tokenizer.ggml.add_eos_token", false);
  if (!chat_template.empty()) w.add_str("tokenizer.chat_template", chat_template);
}

std::string read_chat_template(const std::string& tokenizer_path) {
  const auto cfg = std::filesystem::path(tokenizer_path).parent_path() / "tokenizer_config.json";
  std::ifstream in(cfg);
  if (!in) return "";
  const auto j = nlohmann::json::parse(in, nullptr, /*allow_exceptions=*/false);
  if (j.is_object() && j.contains("chat_template") && j["chat_template"].is_string())
    return j["chat_template"].get<std::string>();
  return "";
}

void run_synth(const SynthArgs& a) {
  using clock = std::chrono::steady_clock;
  const auto t0 = clock::now();
  if (a.layers < 1 || a.layers > 32) bad_input("synth: --layers must be in 1..32 (got " + std::to_string(a.layers) + ")");
  DType wt;
  if (!parse_dtype(a.type, &wt) ||
      !(wt == DType::F16 || wt == DType::BF16 || wt == DType::Q8_0 || wt == DType::Q4_0 || wt == DType::Q4_K))
    bad_input("synth: --type must be f16, bf16, q8_0, q4_0 or q4_k (got '" + a.type + "')");
  const std::string tok_path = a.tokenizer.empty() ? default_tokenizer() : a.tokenizer;
  const SpmModel tok = read_spm_model(tok_path);
  const int64_t vocab = int64_t(tok.vocab.pieces.size());

  GgufWriter w;
  add_metadata(w, a, wt, tok, read_chat_template(tok_path));
  const std::vector<Spec> specs = model_specs(a.layers, wt, vocab);
  for (const Spec& s : specs) w.add_tensor(s.name, s.type, s.shape);
  w.open(a.out);

  ThreadPool pool(a.threads);
  std::vector<std::vector<float>> scratch(size_t(pool.size()));
  constexpr size_t kChunkBytes = size_t(64) << 20;
  std::vector<uint8_t> buf;
  uint64_t done = 0;
  for (size_t ti = 0; ti < specs.size(); ++ti) {
    const Spec& s = specs[ti];
    const int64_t cols = s.shape.back();
    int64_t rows = 1;
    for (size_t d = 0; d + 1 < s.shape.size(); ++d) rows *= s.shape[d];
    const size_t rb = row_bytes(s.type, cols);
    const int64_t chunk_rows = std::max<int64_t>(1, int64_t(kChunkBytes / rb));
    for (auto& v : scratch) v.resize(size_t(cols));
    RowGen gen(s, a.seed, ti);
    for (int64_t r0 = 0; r0 < rows; r0 += chunk_rows) {
      const int64_t n = std::min(chunk_rows, rows - r0);
      buf.resize(size_t(n) * rb);
      pool.parallel_for(n, [&](int64_t b, int64_t e, int tid) {
        for (int64_t r = b; r < e; ++r) gen.row(r0 + r, cols, buf.data() + size_t(r) * rb, scratch[size_t(tid)]);
      });
      w.write(buf.data(), buf.size());
      done += buf.size();
    }
    if (s.name.find("ffn_up_exps") != std::string::npos || ti + 1 == specs.size()) {
      const double secs = std::chrono::duration<double>(clock::now() - t0).count();
      std::fprintf(stderr, "synth: %s done, %.2f GB written, %.1f s\n", s.name.c_str(), double(done) / 1e9, secs);
    }
  }
  w.close();

  // Read it back: the file must describe itself as the model we meant.
  const ModelDesc d = load_gguf_desc(a.out);
  if (d.cfg.num_layers != a.layers || d.cfg.hidden_size != kHidden || d.cfg.num_experts != kExperts)
    throw Error(ErrorKind::Internal, "synth: written file does not read back as the intended model");
  const double secs = std::chrono::duration<double>(clock::now() - t0).count();
  std::printf("wrote %s: %s, %d layers, %lld tensors, %.2f GB, %.1f s\n", a.out.c_str(), dtype_name(wt), a.layers,
              (long long)specs.size(), double(std::filesystem::file_size(a.out)) / 1e9, secs);
}

}  // namespace

void add_synth(CLI::App& app) {
  auto a = std::make_shared<SynthArgs>();
  CLI::App* cmd = app.add_subcommand(
      "synth", "Write a Mixtral-8x7B-shaped GGUF with random weights (for benchmarks at real scale)");
  cmd->add_option("--out", a->out, "Output .gguf file")->required();
  cmd->add_option("--layers", a->layers, "Number of layers (Mixtral-8x7B has 32)")->capture_default_str();
  cmd->add_option("--type", a->type, "Weight type: f16, bf16, q8_0, q4_0 or q4_k (norms and router stay f32)")
      ->capture_default_str();
  cmd->add_option("--seed", a->seed, "Random seed")->capture_default_str();
  cmd->add_option("--tokenizer", a->tokenizer,
                  "SentencePiece tokenizer.model whose vocabulary is embedded (default: the bundled model's)");
  cmd->add_option("--threads", a->threads, "Worker threads (0 = physical cores)")->capture_default_str();
  cmd->callback([a] { run_synth(*a); });
}

}  // namespace ms::cli
