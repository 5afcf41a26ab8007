// safetensors.h — reader for Hugging Face safetensors files.
//
// Layout: u64 little-endian header length N, N bytes of JSON
// {"name": {"dtype": "BF16", "shape": [r, c], "data_offsets": [b, e]}, "__metadata__": {...}},
// then the data; offsets are relative to the end of the header. Tensors are
// returned as views into the memory map.
#pragma once
#include <memory>
#include <string>
#include <vector>

#include "core/mmap_file.h"
#include "format/model_desc.h"

namespace ms {

struct SafetensorsFile {
  std::shared_ptr<MappedFile> file;
  std::vector<TensorInfo> tensors;  // names as stored (HF names)
};

// Throws Error(BadInput) "PATH: ..." for any malformed header, unsupported
// dtype, or data outside the file.
SafetensorsFile read_safetensors(const std::string& path);

}  // namespace ms
