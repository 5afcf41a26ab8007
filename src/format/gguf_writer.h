// gguf_writer.h — writes GGUF version 3 files, streaming.
//
// Declare the metadata (any GGUF value type, arrays of scalars and strings)
// and the tensors (name, type, shape outermost first) first; open() then
// writes the header, metadata, tensor infos and padding, and write() streams
// the tensor data, in the order the tensors were declared, in pieces of any
// size (so a model never has to be in memory whole). The writer pads each
// tensor to the alignment. close() checks every byte was written.
// Errors (cannot write, too much or too little data) are Error(BadInput)
// naming the file.
#pragma once
#include <cstdint>
#include <cstdio>
#include <string>
#include <vector>

#include "core/dtype.h"
#include "format/gguf.h"

namespace ms {

class GgufWriter {
 public:
  // An alignment other than 32 is recorded as general.alignment.
  explicit GgufWriter(uint32_t alignment = 32);
  ~GgufWriter();
  GgufWriter(const GgufWriter&) = delete;
  GgufWriter& operator=(const GgufWriter&) = delete;

  // ---- metadata (keys must be unique) ----
  void add_u8(const std::string& key, uint8_t v);
  void add_i8(const std::string& key, int8_t v);
  void add_u16(const std::string& key, uint16_t v);
  void add_i16(const std::string& key, int16_t v);
  void add_u32(const std::string& key, uint32_t v);
  void add_i32(const std::string& key, int32_t v);
  void add_u64(const std::string& key, uint64_t v);
  void add_i64(const std::string& key, int64_t v);
  void add_f32(const std::string& key, float v);
  void add_f64(const std::string& key, double v);
  void add_bool(const std::string& key, bool v);
  void add_str(const std::string& key, const std::string& v);
  void add_arr_str(const std::string& key, const std::vector<std::string>& v);
  void add_arr_f32(const std::string& key, const std::vector<float>& v);
  void add_arr_i32(const std::string& key, const std::vector<int32_t>& v);
  void add_arr_u32(const std::string& key, const std::vector<uint32_t>& v);
  void add_arr_i64(const std::string& key, const std::vector<int64_t>& v);
  // Array of `count` scalars of type `elem` stored as little-endian bytes.
  void add_arr_raw(const std::string& key, GgufType elem, const void* data, uint64_t count);

  // ---- tensors ----
  // shape outermost first ([rows, cols]); its last dimension must be a whole
  // number of blocks of `t`. Returns the tensor's data size in bytes.
  size_t add_tensor(const std::string& name, DType t, const std::vector<int64_t>& shape);

  // Writes everything up to the first tensor's data.
  void open(const std::string& path);
  // Tensor data, in declaration order; pieces may cross tensor boundaries.
  void write(const void* data, size_t n);
  // Fails unless every tensor has been written in full. Flushes and closes.
  void close();

  // Size of the data section: all tensors with their alignment padding.
  size_t tensor_bytes_total() const { return data_size_; }

 private:
  struct Tensor { std::string name; DType type; std::vector<int64_t> shape; uint64_t offset; size_t nbytes; };
  void key(const std::string& k, GgufType t);
  template <typename T> void put(T v) { meta_.append(reinterpret_cast<const char*>(&v), sizeof(T)); }
  void put_str(std::string_view s);
  void raw_write(const void* p, size_t n);
  void pad_to(uint64_t pos);
  [[noreturn]] void fail(const std::string& what) const;

  uint32_t alignment_;
  std::string meta_;  // encoded metadata entries
  uint64_t n_kv_ = 0;
  std::vector<std::string> keys_;
  std::vector<Tensor> tensors_;
  uint64_t data_size_ = 0;  // running end of the data section
  std::string path_;
  FILE* f_ = nullptr;
  uint64_t written_ = 0;    // bytes of the data section written so far (padding included)
  size_t cur_ = 0;          // tensor being written
  uint64_t cur_done_ = 0;   // bytes of it written
};

}  // namespace ms
