// cpu_features.h — what the running CPU can execute, read once with cpuid.
#pragma once
#include <string>

namespace ms {

struct CpuFeatures {
  bool avx2 = false, fma = false, f16c = false;
  bool avx512f = false, avx512bw = false, avx512vl = false, avx512dq = false;
  bool avx512vnni = false, avx512bf16 = false, avxvnni = false;
  std::string summary() const;
};

// Detected features, masked by the environment variable MOESERVE_ISA
// ("scalar", "avx2", "avxvnni" = AVX2 with AVX-VNNI, "avx512") which caps
// the level used (for tests/bench).
const CpuFeatures& cpu_features();

}  // namespace ms
