// device.cpp — --device parsing and the availability check; the CUDA
// runtime calls are in cuda/device_query.cu (MOESERVE_HAVE_CUDA), stubbed here
// otherwise.
#include "kernels/device.h"

#include "core/error.h"

namespace ms {

DeviceSpec parse_device(const std::string& s) {
  DeviceSpec d;
  if (s == "cpu") return d;
  if (s.rfind("cuda", 0) == 0) {
    d.kind = DeviceSpec::Kind::Cuda;
    if (s.size() == 4) return d;
    if (s[4] == ':' && s.size() > 5 && s.size() <= 9) {
      int n = 0;
      bool digits = true;
      for (size_t i = 5; i < s.size(); ++i) {
        if (s[i] < '0' || s[i] > '9') digits = false;
        else n = n * 10 + (s[i] - '0');
      }
      if (digits && n < 1024) {
        d.index = n;
        return d;
      }
    }
  }
  bad_input("--device: unknown value '" + s + "' (expected cpu, cuda or cuda:N)");
}

std::string device_name(const DeviceSpec& d) {
  return d.is_cuda() ? "cuda:" + std::to_string(d.index) : "cpu";
}

void check_device_available(const DeviceSpec& d) {
  if (!d.is_cuda()) return;
  const std::string flag = "--device " + device_name(d) + ": ";
  if (!cuda_built()) bad_input(flag + "this moeserve was built without CUDA (configure with -DMOESERVE_CUDA=ON)");
  std::string why;
  const int n = cuda_device_count(&why);
  if (n < 0) bad_input(flag + "no usable CUDA device (" + why + ")");
  if (d.index >= n)
    bad_input(flag + "no such CUDA device (" + std::to_string(n) + " found" +
              (n > 0 ? ", ordinals 0.." + std::to_string(n - 1) : "") + ")");
}

#ifndef MOESERVE_HAVE_CUDA
bool cuda_built() { return false; }
int cuda_device_count(std::string* why) {
  if (why) *why = "built without CUDA";
  return -1;
}
bool cuda_device_memory(int, int64_t*, int64_t*, std::string* why) {
  if (why) *why = "built without CUDA";
  return false;
}
#endif

}  // namespace ms
