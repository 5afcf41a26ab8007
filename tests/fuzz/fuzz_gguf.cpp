// (a) GGUF file -> model description -> tokenizer -> weights -> one step.
#include <cstddef>
#include <cstdint>

#include "fuzz_util.h"
#include "run_model.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const std::string path = ms::fuzz::scratch_dir() + "/model.gguf";
  ms::fuzz::write_file(path, std::string_view(reinterpret_cast<const char*>(data), size));
  ms::fuzz::run_model(path);
  return 0;
}
