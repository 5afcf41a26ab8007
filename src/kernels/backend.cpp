// backend.cpp — the backend factory: one entry per backend.
#include "kernels/backend.h"

#include "core/argmax.h"
#include "core/error.h"
#include "kernels/cpu/cpu_backend.h"

namespace ms {

void Backend::argmax_rows(const float* logits, int64_t n_rows, int64_t vocab, int32_t* out) {
  for (int64_t r = 0; r < n_rows; ++r) out[r] = greedy_argmax(logits + r * vocab, vocab);
}

void Backend::greedy_tokens(RunState& rs, const int64_t* rows, int64_t n_rows, const float* norm, const MatView& wout,
                            float* scratch, int32_t* out) {
  logits(rs, rows, n_rows, norm, wout, scratch);
  argmax_rows(scratch, n_rows, wout.rows, out);
}

std::unique_ptr<Backend> make_backend(const std::string& name, ThreadPool& pool) {
  if (name == "cpu") return std::make_unique<cpu::CpuBackend>(pool);
  bad_input("unknown compute backend '" + name + "' (available: cpu)");
}

}  // namespace ms
