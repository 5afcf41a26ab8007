// gguf.cpp — GGUF parsing and validation (see gguf.h). Every read goes
// through Cursor, which checks the bytes are there before touching them.
#include "format/gguf.h"

#include <algorithm>
#include <cstring>
#include <limits>

#include "core/error.h"
#include "format/model_limits.h"

namespace ms {

namespace {

constexpr int kMaxArrayDepth = 8;  // nested arrays deeper than this are refused
constexpr uint32_t kMaxDims = 4;   // GGML_MAX_DIMS

struct GgmlTypeInfo { uint32_t id; const char* name; bool usable; DType dtype; };
// Ids and names of GGML's types; `usable` ones map to a moeserve DType.
constexpr GgmlTypeInfo kGgmlTypes[] = {
    {0, "F32", true, DType::F32},       {1, "F16", true, DType::F16},
    {2, "Q4_0", true, DType::Q4_0},     {3, "Q4_1", true, DType::Q4_1},
    {6, "Q5_0", true, DType::Q5_0},     {7, "Q5_1", true, DType::Q5_1},
    {8, "Q8_0", true, DType::Q8_0},     {9, "Q8_1", false, DType::F32},
    {10, "Q2_K", false, DType::F32},    {11, "Q3_K", false, DType::F32},
    {12, "Q4_K", true, DType::Q4_K},    {13, "Q5_K", true, DType::Q5_K},
    {14, "Q6_K", true, DType::Q6_K},    {15, "Q8_K", true, DType::Q8_K},
    {16, "IQ2_XXS", false, DType::F32}, {17, "IQ2_XS", false, DType::F32},
    {18, "IQ3_XXS", false, DType::F32}, {19, "IQ1_S", false, DType::F32},
    {20, "IQ4_NL", false, DType::F32},  {21, "IQ3_S", false, DType::F32},
    {22, "IQ2_S", false, DType::F32},   {23, "IQ4_XS", false, DType::F32},
    {24, "I8", false, DType::F32},      {25, "I16", false, DType::F32},
    {26, "I32", true, DType::I32},      {27, "I64", false, DType::F32},
    {28, "F64", false, DType::F32},     {29, "IQ1_M", false, DType::F32},
    {30, "BF16", true, DType::BF16},    {34, "TQ1_0", false, DType::F32},
    {35, "TQ2_0", false, DType::F32},   {39, "MXFP4", false, DType::F32},
};

const GgmlTypeInfo* ggml_info(uint32_t id) {
  for (const auto& t : kGgmlTypes)
    if (t.id == id) return &t;
  return nullptr;
}

bool mul_ok(uint64_t a, uint64_t b, uint64_t* out) { return !__builtin_mul_overflow(a, b, out); }
bool add_ok(uint64_t a, uint64_t b, uint64_t* out) { return !__builtin_add_overflow(a, b, out); }

// Bounds-checked reader over the mapped bytes.
class Cursor {
 public:
  Cursor(const uint8_t* p, size_t n, const std::string& path) : p_(p), n_(n), path_(path) {}
  size_t pos() const { return pos_; }
  size_t remaining() const { return n_ - pos_; }
  const uint8_t* here() const { return p_ + pos_; }

  [[noreturn]] void fail(const std::string& what) const {
    bad_input(path_ + ": " + what + " (at byte " + std::to_string(pos_) + ")");
  }
  void need(uint64_t bytes, const std::string& what) const {
    if (bytes > remaining())
      fail("file is truncated: " + what + " needs " + std::to_string(bytes) + " bytes, " +
           std::to_string(remaining()) + " left");
  }
  template <typename T>
  T get(const std::string& what) {
    need(sizeof(T), what);
    T v;
    std::memcpy(&v, p_ + pos_, sizeof(T));
    pos_ += sizeof(T);
    return v;
  }
  void skip(uint64_t bytes, const std::string& what) {
    need(bytes, what);
    pos_ += size_t(bytes);
  }
  // A string; `index` >= 0 names an array element in messages. Messages are
  // only built on failure (this runs for every token of a vocabulary).
  std::string_view str(const std::string& what, int64_t index = -1) {
    auto name = [&] { return index < 0 ? what : what + "[" + std::to_string(index) + "]"; };
    if (remaining() < 8) need(8, name() + " length");
    uint64_t len;
    std::memcpy(&len, p_ + pos_, 8);
    pos_ += 8;
    if (len > remaining())
      fail(name() + ": string length " + std::to_string(len) + " runs past the end of the file");
    std::string_view s(reinterpret_cast<const char*>(p_ + pos_), size_t(len));
    pos_ += size_t(len);
    return s;
  }

 private:
  const uint8_t* p_;
  size_t n_;
  size_t pos_ = 0;
  const std::string& path_;
};

bool valid_type(uint32_t t) { return t <= uint32_t(GgufType::F64); }

GgufValue read_value(Cursor& c, GgufType t, int depth, const std::string& what) {
  GgufValue v;
  v.type = t;
  switch (t) {
    case GgufType::U8: v.u = c.get<uint8_t>(what); break;
    case GgufType::I8: v.i = c.get<int8_t>(what); break;
    case GgufType::U16: v.u = c.get<uint16_t>(what); break;
    case GgufType::I16: v.i = c.get<int16_t>(what); break;
    case GgufType::U32: v.u = c.get<uint32_t>(what); break;
    case GgufType::I32: v.i = c.get<int32_t>(what); break;
    case GgufType::U64: v.u = c.get<uint64_t>(what); break;
    case GgufType::I64: v.i = c.get<int64_t>(what); break;
    case GgufType::F32: v.f = c.get<float>(what); break;
    case GgufType::F64: v.f = c.get<double>(what); break;
    case GgufType::BOOL: v.u = c.get<uint8_t>(what) != 0; break;
    case GgufType::STRING: v.str = c.str(what); break;
    case GgufType::ARRAY: {
      if (depth >= kMaxArrayDepth) c.fail(what + ": arrays nested more than " + std::to_string(kMaxArrayDepth) + " deep");
      const uint32_t et = c.get<uint32_t>(what + " element type");
      if (!valid_type(et)) c.fail(what + ": unknown array element type " + std::to_string(et));
      v.elem = GgufType(et);
      v.count = c.get<uint64_t>(what + " array length");
      const size_t sz = gguf_scalar_size(v.elem);
      if (sz) {
        if (v.count > c.remaining() / sz)
          c.fail(what + ": array of " + std::to_string(v.count) + " " + gguf_type_name(v.elem) +
                 " runs past the end of the file");
        v.raw = c.here();
        c.skip(v.count * sz, what);
      } else if (v.elem == GgufType::STRING) {
        if (v.count > c.remaining() / 8)
          c.fail(what + ": array of " + std::to_string(v.count) + " strings runs past the end of the file");
        v.strs.reserve(size_t(v.count));
        for (uint64_t k = 0; k < v.count; ++k) v.strs.push_back(c.str(what, int64_t(k)));
      } else {  // array of arrays: each needs at least 12 bytes
        if (v.count > c.remaining() / 12)
          c.fail(what + ": array of " + std::to_string(v.count) + " arrays runs past the end of the file");
        v.arrs.reserve(size_t(v.count));
        for (uint64_t k = 0; k < v.count; ++k)
          v.arrs.push_back(read_value(c, GgufType::ARRAY, depth + 1, what + "[" + std::to_string(k) + "]"));
      }
      break;
    }
  }
  return v;
}

// Element k of a scalar array, as the value a scalar of that type would hold.
GgufValue array_elem(const GgufValue& a, uint64_t k) {
  GgufValue v;
  v.type = a.elem;
  const uint8_t* p = a.raw + k * gguf_scalar_size(a.elem);
  auto load = [p](auto x) { std::memcpy(&x, p, sizeof(x)); return x; };
  switch (a.elem) {
    case GgufType::U8: v.u = load(uint8_t{}); break;
    case GgufType::I8: v.i = load(int8_t{}); break;
    case GgufType::U16: v.u = load(uint16_t{}); break;
    case GgufType::I16: v.i = load(int16_t{}); break;
    case GgufType::U32: v.u = load(uint32_t{}); break;
    case GgufType::I32: v.i = load(int32_t{}); break;
    case GgufType::U64: v.u = load(uint64_t{}); break;
    case GgufType::I64: v.i = load(int64_t{}); break;
    case GgufType::F32: v.f = load(float{}); break;
    case GgufType::F64: v.f = load(double{}); break;
    case GgufType::BOOL: v.u = load(uint8_t{}) != 0; break;
    default: break;
  }
  return v;
}

bool is_signed_int(GgufType t) {
  return t == GgufType::I8 || t == GgufType::I16 || t == GgufType::I32 || t == GgufType::I64;
}

}  // namespace

// ---------------------------------------------------------------------------

const char* gguf_type_name(GgufType t) {
  switch (t) {
    case GgufType::U8: return "uint8";
    case GgufType::I8: return "int8";
    case GgufType::U16: return "uint16";
    case GgufType::I16: return "int16";
    case GgufType::U32: return "uint32";
    case GgufType::I32: return "int32";
    case GgufType::F32: return "float32";
    case GgufType::BOOL: return "bool";
    case GgufType::STRING: return "string";
    case GgufType::ARRAY: return "array";
    case GgufType::U64: return "uint64";
    case GgufType::I64: return "int64";
    case GgufType::F64: return "float64";
  }
  return "unknown";
}

size_t gguf_scalar_size(GgufType t) {
  switch (t) {
    case GgufType::U8: case GgufType::I8: case GgufType::BOOL: return 1;
    case GgufType::U16: case GgufType::I16: return 2;
    case GgufType::U32: case GgufType::I32: case GgufType::F32: return 4;
    case GgufType::U64: case GgufType::I64: case GgufType::F64: return 8;
    default: return 0;
  }
}

bool GgufValue::is_integer() const {
  switch (type) {
    case GgufType::U8: case GgufType::I8: case GgufType::U16: case GgufType::I16:
    case GgufType::U32: case GgufType::I32: case GgufType::U64: case GgufType::I64: return true;
    default: return false;
  }
}

bool ggml_type_to_dtype(uint32_t id, DType* out) {
  const GgmlTypeInfo* t = ggml_info(id);
  if (!t || !t->usable) return false;
  *out = t->dtype;
  return true;
}

uint32_t dtype_to_ggml_type(DType d) {
  for (const auto& t : kGgmlTypes)
    if (t.usable && t.dtype == d) return t.id;
  throw Error(ErrorKind::Internal, std::string("dtype ") + dtype_name(d) + " has no GGML type");
}

const char* ggml_type_name(uint32_t id) {
  const GgmlTypeInfo* t = ggml_info(id);
  return t ? t->name : "unknown";
}

// ---------------------------------------------------------------------------

std::unique_ptr<GgufFile> GgufFile::open(const std::string& path) {
  std::unique_ptr<GgufFile> g(new GgufFile());
  g->path_ = path;
  g->file_ = MappedFile::open(path);
  g->parse();
  return g;
}

void GgufFile::fail(const std::string& what) const { bad_input(path_ + ": " + what); }

void GgufFile::parse() {
  Cursor c(file_->data(), file_->size(), path_);
  if (file_->size() < 4 || std::memcmp(file_->data(), "GGUF", 4) != 0) fail("not a GGUF file (bad magic)");
  c.skip(4, "magic");
  version_ = c.get<uint32_t>("version");
  if (version_ == 1) fail("GGUF version 1 is not supported (only versions 2 and 3)");
  if (version_ == 0x02000000u || version_ == 0x03000000u) fail("big-endian GGUF files are not supported");
  if (version_ != 2 && version_ != 3) fail("unsupported GGUF version " + std::to_string(version_));
  const uint64_t n_tensors = c.get<uint64_t>("tensor count");
  const uint64_t n_kv = c.get<uint64_t>("metadata count");
  // Each entry needs at least 13 bytes (8 length + 4 type + 1 value), each tensor info 24.
  if (n_kv > c.remaining() / 13 || n_kv > model_limits::kMaxGgufMetadata)
    fail("metadata count " + std::to_string(n_kv) + " is larger than the file can hold or the limit of " +
         std::to_string(model_limits::kMaxGgufMetadata));
  if (n_tensors > model_limits::kMaxGgufTensors)
    fail("tensor count " + std::to_string(n_tensors) + " is over the limit of " +
         std::to_string(model_limits::kMaxGgufTensors));
  if (n_tensors > c.remaining() / 24) fail("tensor count " + std::to_string(n_tensors) + " is larger than the file can hold");

  keys_.reserve(size_t(n_kv));
  for (uint64_t k = 0; k < n_kv; ++k) {
    const std::string_view key = c.str("metadata key #" + std::to_string(k));
    if (key.empty()) c.fail("metadata key #" + std::to_string(k) + " is empty");
    if (key.size() > model_limits::kMaxGgufKeyBytes)
      c.fail("metadata key #" + std::to_string(k) + " is longer than " + std::to_string(model_limits::kMaxGgufKeyBytes) +
             " bytes");
    std::string skey(key);
    const uint32_t t = c.get<uint32_t>("type of metadata '" + skey + "'");
    if (!valid_type(t)) c.fail("metadata '" + skey + "' has unknown value type " + std::to_string(t));
    GgufValue v = read_value(c, GgufType(t), 0, "metadata '" + skey + "'");
    if (kv_.count(skey)) c.fail("metadata key '" + skey + "' appears twice");
    keys_.push_back(skey);
    kv_.emplace(std::move(skey), std::move(v));
  }

  if (const GgufValue* a = find("general.alignment")) {
    if (!a->is_integer() || (is_signed_int(a->type) && a->i <= 0))
      fail("metadata 'general.alignment' must be a positive integer");
    const uint64_t al = is_signed_int(a->type) ? uint64_t(a->i) : a->u;
    if (al == 0 || (al & (al - 1)) != 0 || al > (uint64_t(1) << 30))
      fail("general.alignment " + std::to_string(al) + " is not a power of two up to 2^30");
    alignment_ = al;
  }

  tensors_.reserve(size_t(n_tensors));
  for (uint64_t k = 0; k < n_tensors; ++k) {
    GgufTensor t;
    t.name = std::string(c.str("name of tensor #" + std::to_string(k)));
    if (t.name.empty()) c.fail("tensor #" + std::to_string(k) + " has an empty name");
    const std::string tn = "tensor '" + t.name + "'";
    const uint32_t nd = c.get<uint32_t>(tn + " dimension count");
    if (nd == 0 || nd > kMaxDims)
      c.fail(tn + " has " + std::to_string(nd) + " dimensions (1 to " + std::to_string(kMaxDims) + " allowed)");
    uint64_t numel = 1;
    for (uint32_t d = 0; d < nd; ++d) {
      const uint64_t ne = c.get<uint64_t>(tn + " dimension");
      if (ne == 0 || ne > uint64_t(std::numeric_limits<int64_t>::max()))
        c.fail(tn + " has invalid dimension " + std::to_string(ne));
      if (!mul_ok(numel, ne, &numel) || numel > uint64_t(std::numeric_limits<int64_t>::max()))
        c.fail(tn + ": element count overflows");
      t.ne.push_back(int64_t(ne));
    }
    t.ggml_type = c.get<uint32_t>(tn + " type");
    if (!ggml_type_to_dtype(t.ggml_type, &t.dtype))
      c.fail(tn + " has GGML type " + ggml_type_name(t.ggml_type) + " (id " + std::to_string(t.ggml_type) +
             "), which moeserve does not support");
    t.offset = c.get<uint64_t>(tn + " offset");
    const uint64_t be = uint64_t(block_elems(t.dtype));
    if (uint64_t(t.ne[0]) % be != 0)
      c.fail(tn + ": row of " + std::to_string(t.ne[0]) + " elements is not a whole number of " +
             ggml_type_name(t.ggml_type) + " blocks of " + std::to_string(be));
    uint64_t nbytes = 0;
    if (!mul_ok(numel / be, block_bytes(t.dtype), &nbytes) || nbytes > uint64_t(std::numeric_limits<int64_t>::max()))
      c.fail(tn + ": byte size overflows");
    t.nbytes = size_t(nbytes);
    if (t.offset % alignment_ != 0)
      c.fail(tn + " offset " + std::to_string(t.offset) + " is not a multiple of the alignment " +
             std::to_string(alignment_));
    if (tensor_index_.count(t.name)) c.fail("tensor '" + t.name + "' appears twice");
    tensor_index_.emplace(t.name, tensors_.size());
    tensors_.push_back(std::move(t));
  }

  // The data section starts at the next multiple of the alignment.
  uint64_t data = c.pos();
  if (data % alignment_) data += alignment_ - data % alignment_;
  data_offset_ = data;
  const uint64_t fsize = file_->size();
  if (!tensors_.empty() && data_offset_ > fsize)
    fail("file is truncated: the data section would start at byte " + std::to_string(data_offset_) +
         " but the file has " + std::to_string(fsize) + " bytes");
  for (GgufTensor& t : tensors_) {
    uint64_t begin = 0, end = 0;
    if (!add_ok(data_offset_, t.offset, &begin) || !add_ok(begin, t.nbytes, &end) || end > fsize)
      fail("tensor '" + t.name + "' data (offset " + std::to_string(t.offset) + ", " + std::to_string(t.nbytes) +
           " bytes) lies outside the file (" + std::to_string(fsize) + " bytes; file truncated?)");
    t.data = file_->data() + begin;
  }
  // No two tensors may share bytes.
  std::vector<const GgufTensor*> order;
  order.reserve(tensors_.size());
  for (const GgufTensor& t : tensors_) order.push_back(&t);
  std::sort(order.begin(), order.end(), [](const GgufTensor* a, const GgufTensor* b) { return a->offset < b->offset; });
  for (size_t k = 1; k < order.size(); ++k)
    if (order[k - 1]->offset + order[k - 1]->nbytes > order[k]->offset)
      fail("tensors '" + order[k - 1]->name + "' and '" + order[k]->name + "' overlap");
}

// ---------------------------------------------------------------------------
// metadata access

const GgufValue* GgufFile::find(const std::string& key) const {
  auto it = kv_.find(key);
  return it == kv_.end() ? nullptr : &it->second;
}

const GgufValue& GgufFile::need(const std::string& key) const {
  const GgufValue* v = find(key);
  if (!v) fail("missing metadata '" + key + "'");
  return *v;
}

const GgufValue& GgufFile::need_array(const std::string& key) const {
  const GgufValue& v = need(key);
  if (v.type != GgufType::ARRAY) fail("metadata '" + key + "' has type " + gguf_type_name(v.type) + ", expected an array");
  return v;
}

namespace {
// Scalar conversions shared by the getters (what = name for messages).
int64_t as_i64(const GgufValue& v, const std::string& what, const std::string& path) {
  if (!v.is_integer())
    bad_input(path + ": " + what + " has type " + gguf_type_name(v.type) + ", expected an integer");
  if (is_signed_int(v.type)) return v.i;
  if (v.u > uint64_t(std::numeric_limits<int64_t>::max())) bad_input(path + ": " + what + " is too large");
  return int64_t(v.u);
}
uint64_t as_u64(const GgufValue& v, const std::string& what, const std::string& path) {
  if (!v.is_integer())
    bad_input(path + ": " + what + " has type " + gguf_type_name(v.type) + ", expected an integer");
  if (is_signed_int(v.type)) {
    if (v.i < 0) bad_input(path + ": " + what + " is negative (" + std::to_string(v.i) + ")");
    return uint64_t(v.i);
  }
  return v.u;
}
double as_f64(const GgufValue& v, const std::string& what, const std::string& path) {
  if (v.is_float()) return v.f;
  if (v.is_integer()) return is_signed_int(v.type) ? double(v.i) : double(v.u);
  bad_input(path + ": " + what + " has type " + gguf_type_name(v.type) + ", expected a number");
}
int32_t as_i32(const GgufValue& v, const std::string& what, const std::string& path) {
  const int64_t x = as_i64(v, what, path);
  if (x < std::numeric_limits<int32_t>::min() || x > std::numeric_limits<int32_t>::max())
    bad_input(path + ": " + what + " value " + std::to_string(x) + " does not fit in 32 bits");
  return int32_t(x);
}
std::string md(const std::string& key) { return "metadata '" + key + "'"; }
}  // namespace

uint64_t GgufFile::get_u64(const std::string& key) const { return as_u64(need(key), md(key), path_); }
uint64_t GgufFile::get_u64(const std::string& key, uint64_t def) const {
  const GgufValue* v = find(key);
  return v ? as_u64(*v, md(key), path_) : def;
}
uint32_t GgufFile::get_u32(const std::string& key) const {
  const uint64_t x = get_u64(key);
  if (x > std::numeric_limits<uint32_t>::max()) fail(md(key) + " value " + std::to_string(x) + " does not fit in 32 bits");
  return uint32_t(x);
}
uint32_t GgufFile::get_u32(const std::string& key, uint32_t def) const { return has(key) ? get_u32(key) : def; }
int64_t GgufFile::get_i64(const std::string& key) const { return as_i64(need(key), md(key), path_); }
int64_t GgufFile::get_i64(const std::string& key, int64_t def) const { return has(key) ? get_i64(key) : def; }
int32_t GgufFile::get_i32(const std::string& key) const { return as_i32(need(key), md(key), path_); }
int32_t GgufFile::get_i32(const std::string& key, int32_t def) const { return has(key) ? get_i32(key) : def; }
double GgufFile::get_f64(const std::string& key) const { return as_f64(need(key), md(key), path_); }
double GgufFile::get_f64(const std::string& key, double def) const { return has(key) ? get_f64(key) : def; }

bool GgufFile::get_bool(const std::string& key) const {
  const GgufValue& v = need(key);
  if (v.type != GgufType::BOOL) fail(md(key) + " has type " + gguf_type_name(v.type) + ", expected bool");
  return v.u != 0;
}
bool GgufFile::get_bool(const std::string& key, bool def) const { return has(key) ? get_bool(key) : def; }

std::string GgufFile::get_str(const std::string& key) const {
  const GgufValue& v = need(key);
  if (v.type != GgufType::STRING) fail(md(key) + " has type " + gguf_type_name(v.type) + ", expected string");
  return std::string(v.str);
}
std::string GgufFile::get_str(const std::string& key, const std::string& def) const {
  return has(key) ? get_str(key) : def;
}

uint64_t GgufFile::get_arr_len(const std::string& key) const { return need_array(key).count; }

std::vector<std::string> GgufFile::get_str_arr(const std::string& key) const {
  const GgufValue& a = need_array(key);
  if (a.elem != GgufType::STRING)
    fail(md(key) + " is an array of " + gguf_type_name(a.elem) + ", expected an array of strings");
  return std::vector<std::string>(a.strs.begin(), a.strs.end());
}

std::vector<float> GgufFile::get_f32_arr(const std::string& key) const {
  const GgufValue& a = need_array(key);
  if (gguf_scalar_size(a.elem) == 0 || a.elem == GgufType::BOOL)
    fail(md(key) + " is an array of " + gguf_type_name(a.elem) + ", expected an array of numbers");
  std::vector<float> out(size_t(a.count));
  for (uint64_t k = 0; k < a.count; ++k) out[size_t(k)] = float(as_f64(array_elem(a, k), md(key) + " element", path_));
  return out;
}

std::vector<int32_t> GgufFile::get_i32_arr(const std::string& key) const {
  const GgufValue& a = need_array(key);
  if (gguf_scalar_size(a.elem) == 0 || a.elem == GgufType::BOOL || a.elem == GgufType::F32 || a.elem == GgufType::F64)
    fail(md(key) + " is an array of " + gguf_type_name(a.elem) + ", expected an array of integers");
  std::vector<int32_t> out(size_t(a.count));
  for (uint64_t k = 0; k < a.count; ++k) out[size_t(k)] = as_i32(array_elem(a, k), md(key) + " element", path_);
  return out;
}

std::vector<int64_t> GgufFile::get_i64_arr(const std::string& key) const {
  const GgufValue& a = need_array(key);
  if (gguf_scalar_size(a.elem) == 0 || a.elem == GgufType::BOOL || a.elem == GgufType::F32 || a.elem == GgufType::F64)
    fail(md(key) + " is an array of " + gguf_type_name(a.elem) + ", expected an array of integers");
  std::vector<int64_t> out(size_t(a.count));
  for (uint64_t k = 0; k < a.count; ++k) out[size_t(k)] = as_i64(array_elem(a, k), md(key) + " element", path_);
  return out;
}

const GgufTensor* GgufFile::find_tensor(const std::string& name) const {
  auto it = tensor_index_.find(name);
  return it == tensor_index_.end() ? nullptr : &tensors_[it->second];
}

}  // namespace ms
