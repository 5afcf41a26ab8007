// gguf_writer.cpp — see gguf_writer.h.
#include "format/gguf_writer.h"

#include <fcntl.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>

#include "core/error.h"

namespace ms {

GgufWriter::GgufWriter(uint32_t alignment) : alignment_(alignment) {
  if (alignment == 0 || (alignment & (alignment - 1)) != 0)
    throw Error(ErrorKind::Internal, "GGUF alignment must be a power of two");
  if (alignment != 32) add_u32("general.alignment", alignment);
}

GgufWriter::~GgufWriter() {
  if (f_) std::fclose(f_);
}

void GgufWriter::fail(const std::string& what) const {
  bad_input((path_.empty() ? std::string("GGUF writer") : path_) + ": " + what);
}

void GgufWriter::put_str(std::string_view s) {
  put<uint64_t>(s.size());
  meta_.append(s.data(), s.size());
}

void GgufWriter::key(const std::string& k, GgufType t) {
  if (f_) fail("metadata '" + k + "' added after open()");
  if (k.empty()) fail("empty metadata key");
  if (std::find(keys_.begin(), keys_.end(), k) != keys_.end()) fail("metadata key '" + k + "' added twice");
  keys_.push_back(k);
  put_str(k);
  put<uint32_t>(uint32_t(t));
  ++n_kv_;
}

void GgufWriter::add_u8(const std::string& k, uint8_t v) { key(k, GgufType::U8); put(v); }
void GgufWriter::add_i8(const std::string& k, int8_t v) { key(k, GgufType::I8); put(v); }
void GgufWriter::add_u16(const std::string& k, uint16_t v) { key(k, GgufType::U16); put(v); }
void GgufWriter::add_i16(const std::string& k, int16_t v) { key(k, GgufType::I16); put(v); }
void GgufWriter::add_u32(const std::string& k, uint32_t v) { key(k, GgufType::U32); put(v); }
void GgufWriter::add_i32(const std::string& k, int32_t v) { key(k, GgufType::I32); put(v); }
void GgufWriter::add_u64(const std::string& k, uint64_t v) { key(k, GgufType::U64); put(v); }
void GgufWriter::add_i64(const std::string& k, int64_t v) { key(k, GgufType::I64); put(v); }
void GgufWriter::add_f32(const std::string& k, float v) { key(k, GgufType::F32); put(v); }
void GgufWriter::add_f64(const std::string& k, double v) { key(k, GgufType::F64); put(v); }
void GgufWriter::add_bool(const std::string& k, bool v) { key(k, GgufType::BOOL); put<uint8_t>(v ? 1 : 0); }
void GgufWriter::add_str(const std::string& k, const std::string& v) { key(k, GgufType::STRING); put_str(v); }

void GgufWriter::add_arr_str(const std::string& k, const std::vector<std::string>& v) {
  key(k, GgufType::ARRAY);
  put<uint32_t>(uint32_t(GgufType::STRING));
  put<uint64_t>(v.size());
  for (const std::string& s : v) put_str(s);
}

void GgufWriter::add_arr_raw(const std::string& k, GgufType elem, const void* data, uint64_t count) {
  const size_t sz = gguf_scalar_size(elem);
  if (sz == 0) throw Error(ErrorKind::Internal, "add_arr_raw needs a scalar element type");
  key(k, GgufType::ARRAY);
  put<uint32_t>(uint32_t(elem));
  put<uint64_t>(count);
  meta_.append(static_cast<const char*>(data), size_t(count) * sz);
}
void GgufWriter::add_arr_f32(const std::string& k, const std::vector<float>& v) {
  add_arr_raw(k, GgufType::F32, v.data(), v.size());
}
void GgufWriter::add_arr_i32(const std::string& k, const std::vector<int32_t>& v) {
  add_arr_raw(k, GgufType::I32, v.data(), v.size());
}
void GgufWriter::add_arr_u32(const std::string& k, const std::vector<uint32_t>& v) {
  add_arr_raw(k, GgufType::U32, v.data(), v.size());
}
void GgufWriter::add_arr_i64(const std::string& k, const std::vector<int64_t>& v) {
  add_arr_raw(k, GgufType::I64, v.data(), v.size());
}

size_t GgufWriter::add_tensor(const std::string& name, DType t, const std::vector<int64_t>& shape) {
  if (f_) fail("tensor '" + name + "' added after open()");
  if (name.empty()) fail("empty tensor name");
  if (shape.empty() || shape.size() > 4) fail("tensor '" + name + "' must have 1 to 4 dimensions");
  for (const Tensor& x : tensors_)
    if (x.name == name) fail("tensor '" + name + "' added twice");
  uint64_t rows = 1;
  for (size_t i = 0; i < shape.size(); ++i) {
    if (shape[i] <= 0) fail("tensor '" + name + "' has a non-positive dimension");
    if (i + 1 < shape.size()) rows *= uint64_t(shape[i]);
  }
  const size_t nbytes = row_bytes(t, shape.back()) * size_t(rows);
  tensors_.push_back({name, t, shape, data_size_, nbytes});
  data_size_ += nbytes;
  if (data_size_ % alignment_) data_size_ += alignment_ - data_size_ % alignment_;
  return nbytes;
}

void GgufWriter::raw_write(const void* p, size_t n) {
  if (n && std::fwrite(p, 1, n, f_) != n) fail(std::string("cannot write: ") + std::strerror(errno));
}

void GgufWriter::pad_to(uint64_t pos) {
  static const char zeros[64] = {};
  while (written_ < pos) {
    const size_t k = size_t(std::min<uint64_t>(sizeof(zeros), pos - written_));
    raw_write(zeros, k);
    written_ += k;
  }
}

void GgufWriter::open(const std::string& path) {
  if (f_) fail("open() called twice");
  path_ = path;
  f_ = std::fopen(path.c_str(), "wb");
  if (!f_) fail(std::string("cannot create: ") + std::strerror(errno));
  std::setvbuf(f_, nullptr, _IOFBF, 1 << 22);
  std::string head = meta_;
  meta_.clear();
  put<uint32_t>(0x46554747u);  // "GGUF"
  put<uint32_t>(3);
  put<uint64_t>(tensors_.size());
  put<uint64_t>(n_kv_);
  meta_ += head;
  for (const Tensor& t : tensors_) {
    put_str(t.name);
    put<uint32_t>(uint32_t(t.shape.size()));
    for (auto it = t.shape.rbegin(); it != t.shape.rend(); ++it) put<uint64_t>(uint64_t(*it));
    put<uint32_t>(dtype_to_ggml_type(t.type));
    put<uint64_t>(t.offset);
  }
  raw_write(meta_.data(), meta_.size());
  uint64_t pos = meta_.size();
  meta_.clear();
  meta_.shrink_to_fit();
  // Padding before the data section; written_ counts data-section bytes only.
  static const char zeros[64] = {};
  while (pos % alignment_) {
    const size_t k = size_t(std::min<uint64_t>(sizeof(zeros), alignment_ - pos % alignment_));
    raw_write(zeros, k);
    pos += k;
  }
  written_ = 0;
  cur_ = 0;
  cur_done_ = 0;
}

void GgufWriter::write(const void* data, size_t n) {
  if (!f_) fail("write() before open()");
  const char* p = static_cast<const char*>(data);
  while (n > 0) {
    if (cur_ >= tensors_.size()) fail("more tensor data written than the tensors declared");
    const Tensor& t = tensors_[cur_];
    const size_t k = size_t(std::min<uint64_t>(n, t.nbytes - cur_done_));
    raw_write(p, k);
    p += k;
    n -= k;
    cur_done_ += k;
    written_ += k;
    if (cur_done_ == t.nbytes) {
      ++cur_;
      cur_done_ = 0;
      pad_to(cur_ < tensors_.size() ? tensors_[cur_].offset : data_size_);
    }
  }
}

void GgufWriter::close() {
  if (!f_) fail("close() before open()");
  if (cur_ != tensors_.size())
    fail("tensor '" + tensors_[cur_].name + "' was not written in full (" + std::to_string(cur_done_) + " of " +
         std::to_string(tensors_[cur_].nbytes) + " bytes)");
  FILE* f = f_;
  f_ = nullptr;
  const bool ok = std::fflush(f) == 0 && fsync(fileno(f)) == 0;
  const int e = errno;
  // The file's pages were cached in the small folios of the write path; drop
  // them (they are on disk now) so that the first load reads them back in
  // huge folios, mapped with 2 MiB pages (see core/mmap_file.cpp).
  if (ok) posix_fadvise(fileno(f), 0, 0, POSIX_FADV_DONTNEED);
  if (std::fclose(f) != 0 || !ok) fail(std::string("cannot write: ") + std::strerror(ok ? errno : e));
}

}  // namespace ms
