// backend.cpp — the backend factory: one entry per backend.
#include "kernels/backend.h"

#include "core/error.h"
#include "kernels/cpu/cpu_backend.h"

namespace ms {

std::unique_ptr<Backend> make_backend(const std::string& name, ThreadPool& pool) {
  if (name == "cpu") return std::make_unique<cpu::CpuBackend>(pool);
  bad_input("unknown compute backend '" + name + "' (available: cpu)");
}

}  // namespace ms
