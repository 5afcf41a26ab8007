// device_query.cu — the CUDA runtime behind kernels/device.h: how many
// devices there are and their memory. Built only with -DMOESERVE_CUDA=ON; the
// first translation unit of the CUDA backend (docs/ARCHITECTURE.md, Backends).
#include <cuda_runtime.h>

#include "kernels/device.h"

namespace ms {

bool cuda_built() { return true; }

int cuda_device_count(std::string* why) {
  int n = 0;
  const cudaError_t e = cudaGetDeviceCount(&n);
  if (e != cudaSuccess) {
    if (why) *why = cudaGetErrorString(e);
    return -1;
  }
  return n;
}

bool cuda_device_memory(int index, int64_t* free_bytes, int64_t* total_bytes, std::string* why) {
  cudaError_t e = cudaSetDevice(index);
  size_t f = 0, t = 0;
  if (e == cudaSuccess) e = cudaMemGetInfo(&f, &t);
  if (e != cudaSuccess) {
    if (why) *why = cudaGetErrorString(e);
    return false;
  }
  *free_bytes = int64_t(f);
  *total_bytes = int64_t(t);
  return true;
}

}  // namespace ms
