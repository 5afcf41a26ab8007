#include "core/file_util.h"

#include <signal.h>
#include <unistd.h>

#include <cerrno>
#include <cstdlib>
#include <cstring>
#include <filesystem>
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

UniqueFd::~UniqueFd() {
  if (fd_ >= 0) ::close(fd_);
}

void UniqueFd::reset(int fd) {
  if (fd_ >= 0) ::close(fd_);
  fd_ = fd;
}

int TempDir::sweep_dead(const std::string& parent, const std::string& prefix) {
  int removed = 0;
  std::error_code ec;
  for (const auto& e : std::filesystem::directory_iterator(parent, ec)) {
    const std::string n = e.path().filename().string();
    if (n.size() <= prefix.size() + 1 || n.compare(0, prefix.size() + 1, prefix + "-") != 0) continue;
    const std::string rest = n.substr(prefix.size() + 1);
    const size_t dash = rest.find('-');
    if (dash == 0 || dash == std::string::npos || rest.find_first_not_of("0123456789") != dash) continue;
    const long pid = std::strtol(rest.substr(0, dash).c_str(), nullptr, 10);
    if (pid <= 0 || (::kill(static_cast<pid_t>(pid), 0) != 0 && errno == ESRCH)) {
      std::error_code rm;
      if (e.is_directory(rm) && std::filesystem::remove_all(e.path(), rm) > 0 && !rm) ++removed;
    }
  }
  return removed;
}

std::string TempDir::create(const std::string& prefix) {
  const char* t = std::getenv("TMPDIR");
  const std::string parent = t && *t ? t : "/tmp";
  sweep_dead(parent, prefix);
  std::string tmpl = parent + "/" + prefix + "-" + std::to_string(::getpid()) + "-XXXXXX";
  if (!::mkdtemp(tmpl.data())) bad_input("cannot create a directory like " + tmpl + ": " + std::strerror(errno));
  path_ = tmpl;
  return path_;
}

TempDir::~TempDir() {
  if (path_.empty()) return;
  std::error_code ec;
  std::filesystem::remove_all(path_, ec);
}

}  // namespace ms
