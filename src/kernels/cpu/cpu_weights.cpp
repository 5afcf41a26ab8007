// cpu_weights.cpp — the CPU backend's weights and KV memory: host memory.
//
// A matrix stays where it lies (the mmap'd file) in its stored type, except
// that a float matrix may be quantized at load (WeightSpec::run_type) and a
// quantized one copied into the kernels' panel layout where this machine's
// kernels read it (ops::can_repack). Each copy is made tensor by tensor and
// the pages it came from are released at once, so the model is held once.
#include <cstdlib>
#include <cstring>

#include "core/aligned.h"
#include "core/error.h"
#include "core/mmap_file.h"
#include "kernels/cpu/cpu_backend.h"

namespace ms::cpu {

namespace {

// alloc_aligned memory (2 MiB-aligned huge pages from 4 MiB up), not zeroed.
class HostBuffer final : public Buffer {
 public:
  explicit HostBuffer(size_t bytes) : p_(static_cast<uint8_t*>(alloc_aligned(bytes))), n_(bytes) {}
  ~HostBuffer() override { std::free(p_); }
  HostBuffer(const HostBuffer&) = delete;
  HostBuffer& operator=(const HostBuffer&) = delete;
  uint8_t* data() const override { return p_; }
  size_t size() const override { return n_; }

 private:
  uint8_t* p_;
  size_t n_;
};

std::unique_ptr<HostBuffer> host_buffer(size_t bytes, const char* what) {
  auto b = std::make_unique<HostBuffer>(bytes);
  if (!b->data()) bad_input(std::string("cannot allocate ") + std::to_string(bytes >> 20) + " MB for " + what);
  return b;
}

size_t mat_bytes(const MatView& m) { return m.row_stride * size_t(m.rows); }

}  // namespace

MatView CpuBackend::prepare_weight(const MatView& host, const WeightSpec& spec, WeightStore& store) {
  MatView m = host;
  std::unique_ptr<HostBuffer> copy;  // the quantized copy, if any
  if (spec.run_type != DType::F32 && spec.run_type != host.dtype && !is_quantized(host.dtype)) {
    const DType t = spec.run_type;
    const size_t rb = row_bytes(t, host.cols);
    copy = host_buffer(rb * size_t(host.rows), "a quantized weight");
    uint8_t* dst = copy->data();
    pool_.parallel_for(host.rows, [&](int64_t r0, int64_t r1, int) {
      std::vector<float> row(static_cast<size_t>(host.cols));
      for (int64_t r = r0; r < r1; ++r) {
        ops::dequantize_row(host.dtype, host.row(r), row.data(), host.cols);
        ops::quantize_row(t, row.data(), dst + size_t(r) * rb, host.cols);
      }
    });
    MappedFile::release_pages(host.data, mat_bytes(host));
    m = make_mat(t, host.rows, host.cols, dst);
  }
  if (spec.multiplied && spec.allow_layout && ops::can_repack(m.dtype)) {
    // Panel layout copy; its source (file pages, or the quantized copy) goes at once.
    auto panels = host_buffer(ops::repacked_bytes(m.dtype, m.rows, m.cols), "a weight in the panel layout");
    const MatView p = ops::repack_panels(m, panels->data(), pool_);
    if (copy) copy.reset();
    else MappedFile::release_pages(m.data, mat_bytes(m));
    store.bytes += panels->size();
    store.buffers.push_back(std::move(panels));
    return p;
  }
  store.bytes += mat_bytes(m);
  if (copy) store.buffers.push_back(std::move(copy));
  return m;
}

const float* CpuBackend::prepare_vector(const std::vector<float>& host, WeightStore& store) {
  auto b = host_buffer(host.size() * sizeof(float), "a weight vector");
  if (!host.empty()) std::memcpy(b->data(), host.data(), host.size() * sizeof(float));
  const float* p = reinterpret_cast<const float*>(b->data());
  store.buffers.push_back(std::move(b));
  return p;
}

std::unique_ptr<Buffer> CpuBackend::alloc_kv(size_t bytes) {
  auto b = std::make_unique<HostBuffer>((bytes + 63) & ~size_t(63));
  if (!b->data()) return nullptr;
  return b;
}

}  // namespace ms::cpu
