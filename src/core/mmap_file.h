// mmap_file.h — read-only memory map of a whole file. Weights are used in place
// from these maps; nothing copies a model into heap memory.
#pragma once
#include <cstddef>
#include <cstdint>
#include <memory>
#include <string>

namespace ms {

class MappedFile {
 public:
  // Throws Error(BadInput) naming the path if it cannot be opened or mapped.
  static std::shared_ptr<MappedFile> open(const std::string& path);
  ~MappedFile();
  MappedFile(const MappedFile&) = delete;
  MappedFile& operator=(const MappedFile&) = delete;

  const uint8_t* data() const { return data_; }
  size_t size() const { return size_; }
  const std::string& path() const { return path_; }

  // Drops the resident pages of [p, p+n) (which must lie in a read-only file
  // map) so they stop counting against this process; they are re-read from
  // the file if touched again. Used after a tensor was converted to a copy.
  static void release_pages(const void* p, size_t n);

  // Faults the whole map in now (like llama.cpp's MAP_POPULATE), so the first
  // requests do not pay for page faults. Returns false if it was skipped
  // because the file would not fit in the memory available.
  bool populate() const;

 private:
  MappedFile() = default;
  std::string path_;
  const uint8_t* data_ = nullptr;
  size_t size_ = 0;
};

}  // namespace ms
