// (b) config.json + safetensors header and data -> model description ->
// weights -> one step. Input: 4-byte little-endian length of config.json,
// config.json, then the model.safetensors bytes.
#include <cstddef>
#include <cstdint>
#include <cstring>

#include "fuzz_util.h"
#include "run_model.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  if (size < 4) return 0;
  uint32_t n;
  std::memcpy(&n, data, 4);
  if (n > size - 4) return 0;
  const std::string dir = ms::fuzz::scratch_dir();
  const char* p = reinterpret_cast<const char*>(data) + 4;
  ms::fuzz::write_file(dir + "/config.json", std::string_view(p, n));
  ms::fuzz::write_file(dir + "/model.safetensors", std::string_view(p + n, size - 4 - n));
  ms::fuzz::run_model(dir);
  return 0;
}
