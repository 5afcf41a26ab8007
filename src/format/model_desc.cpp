#include "format/model_desc.h"

#include <filesystem>

#include "core/error.h"
#include "format/hf_config.h"

namespace ms {

ModelDesc load_gguf_desc(const std::string& path);  // format/gguf.cpp

const TensorInfo& ModelDesc::get(const std::string& name) const {
  const TensorInfo* t = find(name);
  if (!t) bad_input(path + ": missing tensor '" + name + "'");
  return *t;
}

ModelDesc load_model_desc(const std::string& path) {
  namespace fs = std::filesystem;
  std::error_code ec;
  if (!fs::exists(path, ec)) bad_input(path + ": no such file or directory");
  if (fs::is_directory(path, ec)) return load_hf_desc(path);
  return load_gguf_desc(path);
}

}  // namespace ms
