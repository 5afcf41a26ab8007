// gguf_test_util.h — helpers for the GGUF tests: temp files, a raw byte
// builder for hand-made (often broken) GGUF files, and an expectation that a
// call throws ms::Error(BadInput) with a message containing given text.
#pragma once
#include <gtest/gtest.h>
#include <unistd.h>

#include <cstdint>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <stdexcept>
#include <string>
#include <vector>

#include "core/error.h"

namespace ms::test {

inline std::string fixture(const std::string& rel) { return std::string(MOESERVE_FIXTURES) + "/" + rel; }
inline std::string source(const std::string& rel) { return std::string(MOESERVE_SOURCE_DIR) + "/" + rel; }

// One private directory per test process, removed with everything in it
// when the process exits, so the GGUF tests leave nothing behind in TempDir.
class ScratchDir {
 public:
  static const std::string& path() {
    static ScratchDir dir;
    return dir.path_;
  }
  ~ScratchDir() {
    std::error_code ec;
    std::filesystem::remove_all(path_, ec);
  }

 private:
  ScratchDir() {
    std::string tmpl = ::testing::TempDir() + "/ms_gguf_XXXXXX";
    if (::mkdtemp(tmpl.data()) == nullptr) throw std::runtime_error("mkdtemp failed: " + tmpl);
    path_ = tmpl;
  }
  std::string path_;
};

inline std::string temp_path(const std::string& name) { return ScratchDir::path() + "/" + name; }

inline std::string read_file(const std::string& path) {
  std::ifstream f(path, std::ios::binary);
  return std::string(std::istreambuf_iterator<char>(f), std::istreambuf_iterator<char>());
}

inline void write_file(const std::string& path, const std::string& bytes) {
  std::ofstream f(path, std::ios::binary | std::ios::trunc);
  f.write(bytes.data(), std::streamsize(bytes.size()));
}

// Little-endian byte builder.
struct Bytes {
  std::string b;
  template <typename T> Bytes& put(T v) { b.append(reinterpret_cast<const char*>(&v), sizeof(T)); return *this; }
  Bytes& u8(uint8_t v) { return put(v); }
  Bytes& u32(uint32_t v) { return put(v); }
  Bytes& u64(uint64_t v) { return put(v); }
  Bytes& str(const std::string& s) { u64(s.size()); b += s; return *this; }
  Bytes& pad(size_t align) { while (b.size() % align) b.push_back(0); return *this; }
  Bytes& zeros(size_t n) { b.append(n, '\0'); return *this; }
  Bytes& header(uint64_t n_tensors, uint64_t n_kv, uint32_t version = 3) {
    b += "GGUF";
    return u32(version).u64(n_tensors).u64(n_kv);
  }
  // Tensor info with dims given innermost first (GGUF order).
  Bytes& tensor(const std::string& name, std::vector<uint64_t> ne, uint32_t type, uint64_t offset) {
    str(name).u32(uint32_t(ne.size()));
    for (uint64_t d : ne) u64(d);
    return u32(type).u64(offset);
  }
};

// Expects fn() to throw ms::Error of kind BadInput whose message contains `part`.
template <typename Fn>
void expect_bad_input(Fn&& fn, const std::string& part) {
  try {
    fn();
    ADD_FAILURE() << "expected Error(BadInput) containing '" << part << "', nothing thrown";
  } catch (const Error& e) {
    EXPECT_EQ(e.kind(), ErrorKind::BadInput) << e.what();
    EXPECT_NE(std::string(e.what()).find(part), std::string::npos) << "message: " << e.what();
  }
}

}  // namespace ms::test
