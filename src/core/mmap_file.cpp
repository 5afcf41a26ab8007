#include "core/mmap_file.h"

#include <fcntl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstdio>
#include <cstring>

#include "core/error.h"

namespace ms {

std::shared_ptr<MappedFile> MappedFile::open(const std::string& path) {
  int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) bad_input(path + ": cannot open: " + std::strerror(errno));
  struct stat st {};
  if (fstat(fd, &st) != 0 || !S_ISREG(st.st_mode)) {
    ::close(fd);
    bad_input(path + ": not a regular file");
  }
  std::shared_ptr<MappedFile> f(new MappedFile());
  f->path_ = path;
  f->size_ = size_t(st.st_size);
  if (f->size_ > 0) {
    void* p = mmap(nullptr, f->size_, PROT_READ, MAP_SHARED, fd, 0);
    if (p == MAP_FAILED) {
      int e = errno;
      ::close(fd);
      bad_input(path + ": cannot map: " + std::strerror(e));
    }
    f->data_ = static_cast<const uint8_t*>(p);
    // Ask for huge pages: pages read in from now on come in 2 MiB folios
    // mapped by one TLB entry each (where the filesystem supports large
    // folios), which lifts the read rate of the weights by half or more.
    // Pages already cached keep their size.
    madvise(p, f->size_, MADV_HUGEPAGE);
  }
  ::close(fd);
  return f;
}

void MappedFile::release_pages(const void* p, size_t n) {
  const size_t page = size_t(sysconf(_SC_PAGESIZE));
  uintptr_t b = (reinterpret_cast<uintptr_t>(p) + page - 1) & ~(page - 1);
  const uintptr_t e = (reinterpret_cast<uintptr_t>(p) + n) & ~(page - 1);
  if (e > b) madvise(reinterpret_cast<void*>(b), e - b, MADV_DONTNEED);
}

namespace {
size_t mem_available() {
  FILE* f = std::fopen("/proc/meminfo", "r");
  if (!f) return 0;
  char line[256];
  size_t kb = 0;
  while (std::fgets(line, sizeof line, f))
    if (std::sscanf(line, "MemAvailable: %zu kB", &kb) == 1) break;
  std::fclose(f);
  return kb * 1024;
}
}  // namespace

bool MappedFile::populate() const {
  if (!data_ || size_ == 0) return true;
  if (size_ > mem_available() / 10 * 8) return false;
#ifndef MADV_POPULATE_READ
#define MADV_POPULATE_READ 22
#endif
  if (madvise(const_cast<uint8_t*>(data_), size_, MADV_POPULATE_READ) == 0) return true;
  // Older kernels: touch one byte per page.
  const size_t page = size_t(sysconf(_SC_PAGESIZE));
  volatile uint8_t sink = 0;
  for (size_t off = 0; off < size_; off += page) sink = sink + data_[off];
  return true;
}

MappedFile::~MappedFile() {
  if (data_) munmap(const_cast<uint8_t*>(data_), size_);
}

}  // namespace ms
