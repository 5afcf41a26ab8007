// device.h — where the model runs: `--device cpu|cuda[:N]`, and whether this
// build and machine have that device. The CUDA query lives in
// kernels/cuda/device_query.cu (built with -DMOESERVE_CUDA=ON); without it,
// every CUDA device is refused with a line that says how to build one in.
#pragma once
#include <cstdint>
#include <string>

namespace ms {

struct DeviceSpec {
  enum class Kind { Cpu, Cuda } kind = Kind::Cpu;
  int index = 0;  // CUDA ordinal (cuda = cuda:0)
  bool is_cuda() const { return kind == Kind::Cuda; }
};

// "cpu", "cuda", "cuda:N" (N a decimal ordinal < 1024). Error(BadInput),
// one line naming --device, on anything else.
DeviceSpec parse_device(const std::string& s);
// "cpu" or "cuda:N".
std::string device_name(const DeviceSpec& d);

// Whether this binary was built with CUDA (-DMOESERVE_CUDA=ON).
bool cuda_built();
// CUDA devices visible to this process: -1 with *why set when CUDA is not
// built in or its runtime reports an error (no driver, no device), else the
// count (may be 0).
int cuda_device_count(std::string* why);
// Memory of CUDA device `index` (cudaMemGetInfo): false with *why if it cannot be read.
bool cuda_device_memory(int index, int64_t* free_bytes, int64_t* total_bytes, std::string* why);

// Error(BadInput) with one line if `d` cannot run here: CUDA not built in,
// no CUDA device, or ordinal N past the devices there are.
void check_device_available(const DeviceSpec& d);

}  // namespace ms
