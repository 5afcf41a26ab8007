// gguf.h — reader for GGUF files (versions 2 and 3, little-endian), the
// single-file format of llama.cpp.
//
// Layout: "GGUF" u32 version, u64 tensor_count, u64 kv_count; kv_count
// metadata entries (string key, u32 value type, value); tensor_count tensor
// infos (string name, u32 n_dims, u64 ne[n_dims] innermost first, u32 GGML
// type, u64 offset); padding to `general.alignment` (default 32); the tensor
// data, each tensor at data_offset + offset. Strings are u64 length + bytes.
//
// GgufFile::open maps the file (MappedFile) and validates everything before it
// returns: every read is bounds-checked, counts are checked against the bytes
// that remain, sizes use overflow-checked arithmetic, each tensor's bytes lie
// inside the file and do not overlap another's. Any problem is an
// Error(BadInput) "PATH: what is wrong". Tensor data is never copied: data
// pointers point into the map, which the GgufFile (and anything holding
// mapped()) keeps alive. String values are views into the map too.
//
// load_gguf_desc turns a llama-architecture GGUF (dense Llama/Mistral or MoE
// Mixtral) into a ModelDesc (format/model_desc.h).
#pragma once
#include <cstdint>
#include <memory>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

#include "core/dtype.h"
#include "core/mmap_file.h"
#include "format/model_desc.h"

namespace ms {

// Value types of GGUF metadata (the numbers are part of the format).
enum class GgufType : uint32_t {
  U8 = 0, I8 = 1, U16 = 2, I16 = 3, U32 = 4, I32 = 5, F32 = 6, BOOL = 7,
  STRING = 8, ARRAY = 9, U64 = 10, I64 = 11, F64 = 12,
};
const char* gguf_type_name(GgufType t);
// Size in bytes of a scalar GGUF type (0 for STRING and ARRAY).
size_t gguf_scalar_size(GgufType t);

// One metadata value. Scalars: integer types in `i` (signed) or `u`
// (unsigned), float types in `f`, BOOL in `u` (0/1), STRING in `str`.
// Arrays: `elem` and `count`; elements of scalar type are `raw` (count *
// size little-endian bytes inside the map), of STRING type `strs`, of ARRAY
// type `arrs`.
struct GgufValue {
  GgufType type = GgufType::U8;
  uint64_t u = 0;
  int64_t i = 0;
  double f = 0.0;
  std::string_view str;
  GgufType elem = GgufType::U8;
  uint64_t count = 0;
  const uint8_t* raw = nullptr;
  std::vector<std::string_view> strs;
  std::vector<GgufValue> arrs;

  bool is_integer() const;  // one of the 8 integer types (not BOOL)
  bool is_float() const { return type == GgufType::F32 || type == GgufType::F64; }
};

struct GgufTensor {
  std::string name;               // as stored, e.g. "blk.0.attn_q.weight"
  uint32_t ggml_type = 0;         // GGML type id as stored
  DType dtype = DType::F32;
  std::vector<int64_t> ne;        // GGUF order: ne[0] is the innermost (columns)
  uint64_t offset = 0;            // relative to the data section
  const uint8_t* data = nullptr;  // inside the map
  size_t nbytes = 0;

  // Outermost first ([rows, cols], [experts, rows, cols]): ne reversed.
  std::vector<int64_t> shape() const { return std::vector<int64_t>(ne.rbegin(), ne.rend()); }
};

class GgufFile {
 public:
  // Maps and validates the whole file. Throws Error(BadInput) "PATH: ...".
  static std::unique_ptr<GgufFile> open(const std::string& path);

  const std::string& path() const { return path_; }
  uint32_t version() const { return version_; }
  uint64_t alignment() const { return alignment_; }
  uint64_t data_offset() const { return data_offset_; }  // file offset of the data section
  const std::shared_ptr<MappedFile>& mapped() const { return file_; }

  // ---- metadata ----
  const std::vector<std::string>& keys() const { return keys_; }  // file order
  bool has(const std::string& key) const { return kv_.count(key) != 0; }
  const GgufValue* find(const std::string& key) const;
  // The getters below throw Error(BadInput) "PATH: metadata KEY ..." when the
  // key is missing (the variants without a default), has the wrong type, or
  // does not fit the requested type. Integer getters accept any integer type
  // whose value fits; float getters accept F32, F64 and integers.
  uint64_t get_u64(const std::string& key) const;
  uint64_t get_u64(const std::string& key, uint64_t def) const;
  uint32_t get_u32(const std::string& key) const;
  uint32_t get_u32(const std::string& key, uint32_t def) const;
  int64_t get_i64(const std::string& key) const;
  int64_t get_i64(const std::string& key, int64_t def) const;
  int32_t get_i32(const std::string& key) const;
  int32_t get_i32(const std::string& key, int32_t def) const;
  double get_f64(const std::string& key) const;
  double get_f64(const std::string& key, double def) const;
  float get_f32(const std::string& key) const { return float(get_f64(key)); }
  float get_f32(const std::string& key, float def) const { return float(get_f64(key, def)); }
  bool get_bool(const std::string& key) const;
  bool get_bool(const std::string& key, bool def) const;
  std::string get_str(const std::string& key) const;
  std::string get_str(const std::string& key, const std::string& def) const;
  // Arrays. Element conversion follows the scalar rules above.
  std::vector<std::string> get_str_arr(const std::string& key) const;
  std::vector<float> get_f32_arr(const std::string& key) const;
  std::vector<int32_t> get_i32_arr(const std::string& key) const;
  std::vector<int64_t> get_i64_arr(const std::string& key) const;
  uint64_t get_arr_len(const std::string& key) const;  // any array

  // ---- tensors ----
  const std::vector<GgufTensor>& tensors() const { return tensors_; }  // file order
  const GgufTensor* find_tensor(const std::string& name) const;

 private:
  GgufFile() = default;
  void parse();
  const GgufValue& need(const std::string& key) const;
  const GgufValue& need_array(const std::string& key) const;
  [[noreturn]] void fail(const std::string& what) const;

  std::string path_;
  std::shared_ptr<MappedFile> file_;
  uint32_t version_ = 0;
  uint64_t alignment_ = 32;
  uint64_t data_offset_ = 0;
  std::vector<std::string> keys_;
  std::unordered_map<std::string, GgufValue> kv_;
  std::vector<GgufTensor> tensors_;
  std::unordered_map<std::string, size_t> tensor_index_;
};

// GGML type ids <-> DType. Returns false for ids moeserve cannot use.
bool ggml_type_to_dtype(uint32_t ggml_type, DType* out);
uint32_t dtype_to_ggml_type(DType t);  // throws Error(Internal) for a DType GGML lacks
// "Q4_K", "IQ2_XS", ... or "unknown" for ids GGML does not define.
const char* ggml_type_name(uint32_t ggml_type);

// Reads a GGUF file of architecture "llama" (Llama/Mistral dense, Mixtral MoE)
// into a ModelDesc: config from the llama.* keys, tensors under their llama.cpp
// names without ".weight", shapes outermost first, vocab from tokenizer.ggml.*.
// cfg.rope_interleaved is true (llama.cpp's converter permuted attn_q/attn_k).
ModelDesc load_gguf_desc(const std::string& path);

}  // namespace ms
