// file_util.h — whole-file reads for small text files (configs, prompts),
// an owned file descriptor for the files read piece by piece, and a private
// temporary directory.
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
  UniqueFd(UniqueFd&& o) noexcept : fd_(o.fd_) { o.fd_ = -1; }
  UniqueFd& operator=(UniqueFd&& o) noexcept {
    if (this != &o) {
      reset(o.fd_);
      o.fd_ = -1;
    }
    return *this;
  }
  ~UniqueFd();
  void reset(int fd);  // closes the one held
  int get() const { return fd_; }

 private:
  int fd_;
};

// A directory of its own (0700) under $TMPDIR (or /tmp), made by create()
// and removed with everything in it when its owner goes. Its name carries
// the process id (PREFIX-PID-XXXXXX), so that the directories of processes
// killed before they could remove theirs are removed by the next create()
// with the same prefix (those whose process no longer exists).
class TempDir {
 public:
  TempDir() = default;
  TempDir(const TempDir&) = delete;
  TempDir& operator=(const TempDir&) = delete;
  ~TempDir();
  std::string create(const std::string& prefix);  // the path; Error(BadInput) when it cannot be made
  // Removes PREFIX-PID-* under `parent` whose PID is not a live process; returns how many.
  static int sweep_dead(const std::string& parent, const std::string& prefix);

 private:
  std::string path_;
};

}  // namespace ms
