// file_util.h — whole-file reads for small text files (configs, prompts),
// and an owned file descriptor for the files read piece by piece.
#pragma once
#include <string>

namespace ms {

// The file's bytes; Error(BadInput) "PATH: cannot open" if it cannot be read.
std::string read_file(const std::string& path);

// A file descriptor closed with its owner; -1 when none.
class UniqueFd {
 public:
  explicit UniqueFd(int fd = -1) : fd_(fd) {}
  UniqueFd(const UniqueFd&) = delete;
  UniqueFd& operator=(const UniqueFd&) = delete;
  ~UniqueFd();
  void reset(int fd);  // closes the one held
  int get() const { return fd_; }

 private:
  int fd_;
};

}  // namespace ms
