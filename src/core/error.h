// error.h — the one exception type of moeserve. `BadInput` is anything a user
// can cause (files, flags, requests): the CLI prints what() on one line and
// exits 2; the server maps it to HTTP 400. `Internal` is a bug.
#pragma once
#include <stdexcept>
#include <string>

namespace ms {

enum class ErrorKind { BadInput, Unsupported, NotFound, Internal };

class Error : public std::runtime_error {
 public:
  Error(ErrorKind kind, const std::string& msg) : std::runtime_error(msg), kind_(kind) {}
  ErrorKind kind() const { return kind_; }

 private:
  ErrorKind kind_;
};

[[noreturn]] inline void bad_input(const std::string& msg) { throw Error(ErrorKind::BadInput, msg); }

}  // namespace ms
