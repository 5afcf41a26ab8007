#include "model/weights.h"

#include <algorithm>

#include "core/aligned.h"
#include "core/error.h"
#include "core/mmap_file.h"
#include "core/thread_pool.h"
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
  Loader(const ModelDesc& d, MixtralWeights& w, ThreadPool& pool, bool repack)
      : d_(d), w_(w), pool_(pool), repack_(repack) {}

  const TensorInfo& expect(const std::string& name, std::vector<int64_t> shape) {
    const TensorInfo& t = d_.get(name);
    if (t.shape != shape)
      bad_input(t.file + ": tensor '" + name + "' has shape " + shape_str(t.shape) + ", expected " + shape_str(shape));
    return t;
  }

  std::vector<float> vec(const std::string& name, int64_t n) {
    const TensorInfo& t = expect(name, {n});
    if (is_quantized(t.dtype)) bad_input(t.file + ": tensor '" + name + "' must be F32/F16/BF16");
    std::vector<float> v(static_cast<size_t>(n));
    ops::dequantize_row(t.dtype, t.data, v.data(), n);
    return v;
  }

  // A 2-D matrix, or slice `index` of a 3-D stacked tensor. `multiplied`:
  // only ever an operand of matmul (so it may take the panel layout).
  MatView mat(const TensorInfo& t, int64_t rows, int64_t cols, int64_t index, DType want, bool multiplied = true) {
    if (block_elems(t.dtype) > 1 && cols % block_elems(t.dtype) != 0)
      bad_input(t.file + ": tensor '" + t.name + "' rows are not whole " + dtype_name(t.dtype) + " blocks");
    const size_t rb = row_bytes(t.dtype, cols);
    MatView m = make_mat(t.dtype, rows, cols, t.data + size_t(index) * size_t(rows) * rb);
    want = fit_type(want, cols);
    if (want != DType::F32 && !is_quantized(t.dtype)) m = quantize(m, want);
    else w_.weight_bytes += rb * size_t(rows);
    if (multiplied && repack_ && ops::can_repack(m.dtype)) m = repack(m);
    return m;
  }

  MatView mat2(const std::string& name, int64_t rows, int64_t cols, DType want, bool multiplied = true) {
    return mat(expect(name, {rows, cols}), rows, cols, 0, want, multiplied);
  }

 private:
  MatView quantize(const MatView& src, DType t) {
    const size_t rb = row_bytes(t, src.cols);
    w_.owned.emplace_back(rb * size_t(src.rows));
    uint8_t* dst = w_.owned.back().data();
    pool_.parallel_for(src.rows, [&](int64_t r0, int64_t r1, int) {
      std::vector<float> row(static_cast<size_t>(src.cols));
      for (int64_t r = r0; r < r1; ++r) {
        ops::dequantize_row(src.dtype, src.row(r), row.data(), src.cols);
        ops::quantize_row(t, row.data(), dst + size_t(r) * rb, src.cols);
      }
    });
    MappedFile::release_pages(src.data, src.row_stride * size_t(src.rows));
    w_.weight_bytes += rb * size_t(src.rows);
    return make_mat(t, src.rows, src.cols, dst);
  }

  // Panel layout copy; the source (file pages, or the buffer quantize() just
  // filled) is released at once.
  MatView repack(const MatView& src) {
    const size_t bytes = ops::repacked_bytes(src.dtype, src.rows, src.cols);
    std::vector<uint8_t, AlignedAllocator<uint8_t>> buf(bytes);
    const MatView m = ops::repack_panels(src, buf.data(), pool_);
    w_.weight_bytes += bytes;
    w_.weight_bytes -= src.row_stride * size_t(src.rows);
    if (!w_.owned.empty() && w_.owned.back().data() == src.data)
      w_.owned.back() = std::move(buf);  // replaces the quantized row-major copy
    else {
      MappedFile::release_pages(src.data, src.row_stride * size_t(src.rows));
      w_.owned.push_back(std::move(buf));
    }
    return m;
  }

  const ModelDesc& d_;
  MixtralWeights& w_;
  ThreadPool& pool_;
  bool repack_;
};

}  // namespace

MixtralWeights load_weights(const ModelDesc& d, const QuantPlan& plan, ThreadPool& pool) {
  const ModelConfig& c = d.cfg;
  MixtralWeights w;
  Loader L(d, w, pool, plan.repack);
  const int64_t H = c.hidden_size, F = c.intermediate_size, V = c.vocab_size;
  const int64_t QD = c.num_heads * c.head_dim, KD = c.num_kv_heads * c.head_dim;
  w.tok_embd = L.mat2("token_embd", V, H, DType::F32, false);  // embeddings are gathered, not multiplied
  for (int64_t l = 0; l < c.num_layers; ++l) {
    const std::string b = "blk." + std::to_string(l) + ".";
    LayerWeights lw;
    lw.attn_norm = L.vec(b + "attn_norm", H);
    lw.wq = L.mat2(b + "attn_q", QD, H, plan.attention);
    lw.wk = L.mat2(b + "attn_k", KD, H, plan.attention);
    lw.wv = L.mat2(b + "attn_v", KD, H, plan.attention);
    lw.wo = L.mat2(b + "attn_output", H, QD, plan.attention);
    lw.ffn_norm = L.vec(b + "ffn_norm", H);
    if (c.is_moe()) {
      const int64_t E = c.num_experts;
      lw.router = L.mat2(b + "ffn_gate_inp", E, H, DType::F32);
      if (d.find(b + "ffn_gate_exps")) {
        const TensorInfo& g = L.expect(b + "ffn_gate_exps", {E, F, H});
        const TensorInfo& u = L.expect(b + "ffn_up_exps", {E, F, H});
        const TensorInfo& dn = L.expect(b + "ffn_down_exps", {E, H, F});
        for (int64_t e = 0; e < E; ++e) {
          lw.w1.push_back(L.mat(g, F, H, e, plan.experts));
          lw.w3.push_back(L.mat(u, F, H, e, plan.experts));
          lw.w2.push_back(L.mat(dn, H, F, e, plan.experts));
        }
      } else {
        for (int64_t e = 0; e < E; ++e) {
          const std::string s = "." + std::to_string(e);
          lw.w1.push_back(L.mat2(b + "ffn_gate" + s, F, H, plan.experts));
          lw.w3.push_back(L.mat2(b + "ffn_up" + s, F, H, plan.experts));
          lw.w2.push_back(L.mat2(b + "ffn_down" + s, H, F, plan.experts));
        }
      }
    } else {
      lw.w1.push_back(L.mat2(b + "ffn_gate", F, H, plan.experts));
      lw.w3.push_back(L.mat2(b + "ffn_up", F, H, plan.experts));
      lw.w2.push_back(L.mat2(b + "ffn_down", H, F, plan.experts));
    }
    w.layers.push_back(std::move(lw));
  }
  w.output_norm = L.vec("output_norm", H);
  if (c.tie_word_embeddings || !d.find("output"))
    w.output = w.tok_embd;
  else
    w.output = L.mat2("output", V, H, plan.embeddings);
  return w;
}

}  // namespace ms
