#include "core/file_util.h"

#include <fstream>
#include <sstream>

#include "core/error.h"

namespace ms {

std::string read_file(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) bad_input(path + ": cannot open");
  std::ostringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

}  // namespace ms
