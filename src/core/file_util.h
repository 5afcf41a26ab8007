// file_util.h — whole-file reads for small text files (configs, prompts).
#pragma once
#include <string>

namespace ms {

// The file's bytes; Error(BadInput) "PATH: cannot open" if it cannot be read.
std::string read_file(const std::string& path);

}  // namespace ms
