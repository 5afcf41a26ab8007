// cpu_backend.h — the CPU backend: the ops of kernels/backend.h on the
// kernels of kernels/ops.h and attention.h and a thread pool, activations in
// 64-byte aligned host buffers.
#pragma once
#include <initializer_list>
#include <memory>
#include <vector>

#include "core/aligned.h"
#include "core/thread_pool.h"
#include "kernels/backend.h"
#include "kernels/ops.h"

namespace ms::cpu {

class CpuBackend : public Backend {  // not final: tests wrap its weight hooks
 public:
  explicit CpuBackend(ThreadPool& pool) : pool_(pool) {}
  const char* name() const override { return "cpu"; }
  std::unique_ptr<RunState> new_run_state(const RunShape& shape) override;
  // cpu_weights.cpp: weights stay in the mapping in their stored type unless
  // quantized at load or copied into the panel layout; host KV memory.
  MatView prepare_weight(const MatView& host, const WeightSpec& spec, WeightStore& store) override;
  const float* prepare_vector(const std::vector<float>& host, WeightStore& store) override;
  std::unique_ptr<Buffer> alloc_kv(size_t bytes) override;

  void begin_step(RunState& rs, const StepSeq* seqs, int64_t n_seqs) override;
  void embed(RunState& rs, const MatView& table) override;
  void rmsnorm(RunState& rs, const float* w) override;
  void qkv(RunState& rs, const MatView& wq, const MatView& wk, const MatView& wv) override;
  void rope_store_kv(RunState& rs, const ops::PagedKv& cache) override;
  void attention(RunState& rs, const ops::PagedKv& cache) override;
  void out_proj_add(RunState& rs, const MatView& wo) override;
  void route_top_k(RunState& rs, const MatView& router, int64_t* counts, int32_t* routes,
                   int64_t route_stride) override;
  void route_dense(RunState& rs) override;
  void experts_add(RunState& rs, const MatView* w1, const MatView* w3, const MatView* w2) override;
  void logits(RunState& rs, const int64_t* rows, int64_t n_rows, const float* norm, const MatView& wout,
              float* logits) override;
  void argmax_rows(const float* logits, int64_t n_rows, int64_t vocab, int32_t* out) override;
  void greedy_tokens(RunState& rs, const int64_t* rows, int64_t n_rows, const float* norm, const MatView& wout,
                     float* scratch, int32_t* out) override;

  struct State;  // the run state (cpu_backend.cpp)
  // A weight and where its product goes (add_shared_input).
  struct Target {
    const MatView* w;
    float* y;
    int64_t ldy;
  };

 private:
  // Weights sharing the input X [n][cols] (Q, K and V; an expert's gate and
  // up): X is quantized once per activation format into slots[format]
  // (ops::kActFormats of them) and a target per weight is appended to mt,
  // for ops::matmul_q_many.
  void add_shared_input(std::initializer_list<Target> targets, const float* X, int64_t n, ops::QuantizedActs* slots,
                        std::vector<ops::MatTarget>& mt);
  // The same on the calling thread only (inside a parallel region of pool_).
  void add_shared_input_serial(std::initializer_list<Target> targets, const float* X, int64_t n,
                               ops::QuantizedActs* slots, std::vector<ops::MatTarget>& mt);
  // h[r] = rmsnorm(x[rows[r]]) * norm: the lm_head's input.
  void final_norm(State& s, const int64_t* rows, int64_t n_rows, const float* norm);
  // Experts e0..e1-1 over their routed tokens, added into proj.
  void expert_group(State& s, const MatView* w1, const MatView* w3, const MatView* w2, int64_t e0, int64_t e1);

  ThreadPool& pool_;
  ThreadPool serial_{1};  // no threads: runs ops on the caller, inside a region of pool_
};

}  // namespace ms::cpu
