// fuzz_util.h — shared pieces of the libFuzzer targets (docs/SECURITY.md, Fuzzing).
//
// A target returns normally for input the code refuses with ms::Error (the
// expected answer to bad input); anything else — a sanitizer report, a
// signal, another exception escaping, a failed differential check — is a
// finding.
#pragma once
#include <unistd.h>

#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <string>
#include <string_view>

namespace ms::fuzz {

// A private directory for this process's scratch files.
inline const std::string& scratch_dir() {
  static const std::string dir = [] {
    char tmpl[] = "/tmp/ms_fuzz_XXXXXX";
    const char* d = ::mkdtemp(tmpl);
    if (!d) std::abort();
    return std::string(d);
  }();
  return dir;
}

inline void write_file(const std::string& path, std::string_view bytes) {
  FILE* f = std::fopen(path.c_str(), "wb");
  if (!f) std::abort();
  if (!bytes.empty() && std::fwrite(bytes.data(), 1, bytes.size(), f) != bytes.size()) std::abort();
  std::fclose(f);
}

// A differential check: a mismatch is a finding.
inline void check(bool ok, const char* what) {
  if (!ok) {
    std::fprintf(stderr, "fuzz check failed: %s\n", what);
    std::abort();
  }
}

}  // namespace ms::fuzz
