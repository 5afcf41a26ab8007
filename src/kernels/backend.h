// backend.h — the compute backend: the forward pass of a sparse MoE
// transformer as named ops (model/mixtral.cpp calls them in order and does
// no arithmetic itself), over activations the backend owns in a RunState,
// separate from the weights (llama2.c's weights vs run state).
//
// The ops know shapes and weights (MatView, PagedKv), never a model file or
// config. Every op's numerics are those of kernels/ops.h and attention.h (the
// CPU backend is those kernels and a thread pool), so its results are those
// the reference tests pin down. Adding a backend (CUDA, ...) is a new folder
// under src/kernels/ implementing this interface and an entry in
// make_backend() (backend.cpp); docs/ARCHITECTURE.md, "Backends".
#pragma once
#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "core/dtype.h"
#include "core/tensor.h"
#include "kernels/attention.h"

namespace ms {

class ThreadPool;

// The shape of the network a run state serves.
struct RunShape {
  int64_t hidden = 0;
  int64_t n_heads = 0, n_kv_heads = 0, head_dim = 0;
  int64_t ffn = 0;                   // expert (or dense FFN) hidden size
  int64_t n_experts = 0, top_k = 0;  // n_experts 0: dense FFN
  float rms_eps = 0.0f;
  double rope_theta = 10000.0;
  bool rope_interleaved = false;
  int64_t window = 0;                // sliding-window attention (0: none)
};

// One sequence's tokens in a step: n_tokens at positions pos0.., whose K/V go
// to the blocks of block_table.
struct StepSeq {
  const int32_t* tokens = nullptr;
  int32_t n_tokens = 0;
  int32_t pos0 = 0;
  const int32_t* block_table = nullptr;
};

// Activations and scratch of one model's steps, owned by a backend (its
// memory, its layout). Opaque to the model.
class RunState {
 public:
  virtual ~RunState() = default;
};

// Memory a backend owns (host memory, or a device's): data() is an address
// its ops take, not necessarily one the host can read.
class Buffer {
 public:
  virtual ~Buffer() = default;
  virtual uint8_t* data() const = 0;
  virtual size_t size() const = 0;
};

// The memory of a model's prepared weights: the copies a backend made of
// them (load-time quantization, the panel layout, device uploads). Matrices a
// backend runs where they lie (the CPU's views into the mmap'd file) add
// bytes but no buffer.
struct WeightStore {
  std::vector<std::unique_ptr<Buffer>> buffers;
  size_t bytes = 0;  // every prepared matrix in its run type and layout
};

// What a weight is in the network: a backend that splits the model between
// devices (experts in host memory, the rest on a GPU: kernels/placement.h)
// places each matrix by its role and layer.
enum class WeightRole { Embedding, Attention, Router, Expert, Output };  // Expert: also a dense FFN

// How the model will use a weight matrix it hands to prepare_weight.
struct WeightSpec {
  WeightRole role = WeightRole::Attention;
  int64_t layer = -1;           // its layer (-1: embedding, output)
  DType run_type = DType::F32;  // F32: keep the stored type; else quantize a float matrix to it
  bool multiplied = true;       // only ever a matmul operand (false: rows gathered by embed)
  bool allow_layout = true;     // the backend may store it in its own layout (CPU: panels)
};

// The ops of one step, in the order a layer uses them. x is the residual
// stream [T][hidden] of the step's T tokens; h a block's normed input.
class Backend {
 public:
  virtual ~Backend() = default;
  virtual const char* name() const = 0;
  virtual std::unique_ptr<RunState> new_run_state(const RunShape& shape) = 0;

  // Weights and KV storage, at load. prepare_weight makes `host` (a view into
  // the model file, in its stored type) an operand of this backend's ops and
  // returns the view the ops take: converted to spec.run_type if asked, in
  // the backend's memory and layout. Anything it copies goes to `store`, and
  // host pages it no longer needs are released (MappedFile::release_pages), so
  // the model is held once. The CPU backend keeps matrices in the mapping
  // where it can; a device backend uploads each once, in its stored type.
  virtual MatView prepare_weight(const MatView& host, const WeightSpec& spec, WeightStore& store) = 0;
  // A float vector (norm weights) the ops take: a copy in `store`.
  virtual const float* prepare_vector(const std::vector<float>& host, WeightStore& store) = 0;
  // The paged KV cache's memory (ops::PagedKv points into it), `bytes`
  // uncommitted and not zero-filled: blocks are written before they are read.
  // Null if it cannot be had.
  virtual std::unique_ptr<Buffer> alloc_kv(size_t bytes) = 0;

  // Starts a step over seqs (T = Σ n_tokens, in this order): positions and
  // their rotations. Token ids were checked by the caller.
  virtual void begin_step(RunState& rs, const StepSeq* seqs, int64_t n_seqs) = 0;
  // x[t] = row tokens[t] of the embedding table.
  virtual void embed(RunState& rs, const MatView& table) = 0;
  // h[t] = rmsnorm(x[t]) * w.
  virtual void rmsnorm(RunState& rs, const float* w) = 0;
  // q, k, v = h·Wq, h·Wk, h·Wv.
  virtual void qkv(RunState& rs, const MatView& wq, const MatView& wk, const MatView& wv) = 0;
  // Rotary embedding of q and k at each token's position, then k and v into
  // the cache at those positions.
  virtual void rope_store_kv(RunState& rs, const ops::PagedKv& cache) = 0;
  // att = causal attention of q over the cache (sliding window if any).
  virtual void attention(RunState& rs, const ops::PagedKv& cache) = 0;
  // x += att·Wo.
  virtual void out_proj_add(RunState& rs, const MatView& wo) = 0;
  // MoE routing: softmax(h·Wr) per token over all experts (f32), top-k
  // (equal probabilities: lower index first), weights renormalised to sum 1.
  // counts[e] += tokens routed to expert e. With routes (may be null), token
  // t's experts, most probable first, go to routes[t * route_stride + j].
  virtual void route_top_k(RunState& rs, const MatView& router, int64_t* counts, int32_t* routes = nullptr,
                           int64_t route_stride = 0) = 0;
  // A dense FFN: every token to the one expert with weight 1.
  virtual void route_dense(RunState& rs) = 0;
  // x += Σ_e weight_e · w2_e(silu(w1_e·h) ⊙ w3_e·h) over each token's routed
  // experts (arrays of n_experts, or 1 for a dense FFN), experts summed in
  // index order.
  virtual void experts_add(RunState& rs, const MatView* w1, const MatView* w3, const MatView* w2) = 0;
  // logits[r] = (rmsnorm(x[rows[r]]) * norm)·Wout for r < n_rows.
  virtual void logits(RunState& rs, const int64_t* rows, int64_t n_rows, const float* norm, const MatView& wout,
                      float* logits) = 0;
  // Per row of `logits` ([n_rows][vocab] on the host, as logits() left them):
  // its greedy token, core/argmax.h's greedy_argmax. The CPU backend splits
  // the rows over its threads; this default runs them on the caller's.
  virtual void argmax_rows(const float* logits, int64_t n_rows, int64_t vocab, int32_t* out);
  // out[r] = the greedy token of logits() row r (the same token), where only
  // the token is wanted: a backend may skip the logits (the CPU one fuses the
  // argmax into the matmul where its kernels can). `scratch` ([n_rows][vocab])
  // may be written; this default computes logits() there, then argmax_rows().
  virtual void greedy_tokens(RunState& rs, const int64_t* rows, int64_t n_rows, const float* norm,
                             const MatView& wout, float* scratch, int32_t* out);
};

// The backend called `name` ("cpu": the kernels of kernels/ops.h on `pool`).
// Throws Error(BadInput) for an unknown name.
std::unique_ptr<Backend> make_backend(const std::string& name, ThreadPool& pool);

}  // namespace ms
