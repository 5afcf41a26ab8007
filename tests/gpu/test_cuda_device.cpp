// GPU tests: run on a machine with an NVIDIA GPU and a -DMOESERVE_CUDA=ON
// build; everywhere else (CI: no GPU, CUDA off) each test skips, saying why.
// The CUDA backend's kernel tests join this suite (issue 22).
#include <gtest/gtest.h>

#include <string>

#include "core/error.h"
#include "kernels/device.h"

namespace ms {
namespace {

// Skips the calling test unless a CUDA device can be used; returns their count.
#define REQUIRE_CUDA_DEVICE(n)                                                        \
  std::string why_;                                                                   \
  if (!cuda_built()) GTEST_SKIP() << "built without CUDA (-DMOESERVE_CUDA=ON)";       \
  const int n = cuda_device_count(&why_);                                             \
  if (n <= 0) GTEST_SKIP() << "no CUDA device" << (why_.empty() ? "" : ": " + why_);

TEST(CudaDevice, EveryOrdinalIsUsableAndReportsItsMemory) {
  REQUIRE_CUDA_DEVICE(n);
  for (int i = 0; i < n; ++i) {
    EXPECT_NO_THROW(check_device_available(parse_device("cuda:" + std::to_string(i))));
    int64_t free_b = 0, total_b = 0;
    std::string why;
    ASSERT_TRUE(cuda_device_memory(i, &free_b, &total_b, &why)) << why;
    EXPECT_GT(total_b, int64_t(1) << 30);
    EXPECT_GT(free_b, 0);
    EXPECT_LE(free_b, total_b);
  }
  EXPECT_THROW(check_device_available(parse_device("cuda:" + std::to_string(n))), Error);
}

}  // namespace
}  // namespace ms
