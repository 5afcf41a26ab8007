#include "format/safetensors.h"

#include <nlohmann/json.hpp>

#include "core/checked.h"
#include "core/error.h"
#include "format/model_limits.h"

namespace ms {

namespace {
using json = nlohmann::json;

bool st_dtype(const std::string& s, DType* out) {
  if (s == "F32") *out = DType::F32;
  else if (s == "F16") *out = DType::F16;
  else if (s == "BF16") *out = DType::BF16;
  else return false;
  return true;
}
}  // namespace

SafetensorsFile read_safetensors(const std::string& path) {
  SafetensorsFile out;
  out.file = MappedFile::open(path);
  const uint8_t* base = out.file->data();
  const size_t size = out.file->size();
  auto fail = [&](const std::string& what) -> void { bad_input(path + ": " + what); };
  if (size < 8) fail("truncated safetensors file (no header length)");
  uint64_t hlen = 0;
  for (int i = 7; i >= 0; --i) hlen = (hlen << 8) | base[i];
  if (hlen > size - 8) fail("truncated safetensors file (header length " + std::to_string(hlen) + " exceeds file size)");
  if (hlen > model_limits::kMaxSafetensorsHeader)
    fail("safetensors header of " + std::to_string(hlen) + " bytes is over the limit of " +
         std::to_string(model_limits::kMaxSafetensorsHeader));
  const size_t data_start = 8 + size_t(hlen);
  const size_t data_size = size - data_start;
  json header;
  try {
    header = json::parse(base + 8, base + 8 + hlen);
  } catch (const std::exception& e) {
    fail(std::string("malformed safetensors header JSON: ") + e.what());
  }
  if (!header.is_object()) fail("safetensors header is not a JSON object");
  for (auto it = header.begin(); it != header.end(); ++it) {
    if (it.key() == "__metadata__") continue;
    const std::string& name = it.key();
    const json& v = it.value();
    auto bad = [&](const std::string& what) { fail("tensor '" + name + "': " + what); };
    if (!v.is_object()) bad("entry is not an object");
    if (!v.contains("dtype") || !v["dtype"].is_string()) bad("missing dtype");
    if (!v.contains("shape") || !v["shape"].is_array()) bad("missing shape");
    if (!v.contains("data_offsets") || !v["data_offsets"].is_array() || v["data_offsets"].size() != 2)
      bad("missing data_offsets");
    TensorInfo t;
    t.name = name;
    t.file = path;
    const std::string ds = v["dtype"].get<std::string>();
    if (!st_dtype(ds, &t.dtype)) bad("unsupported dtype " + ds + " (supported: F32, F16, BF16)");
    uint64_t numel = 1;
    for (const json& d : v["shape"]) {
      if (!d.is_number_unsigned()) bad("shape must hold non-negative integers");
      const uint64_t x = d.get<uint64_t>();
      if (x > uint64_t(model_limits::kMaxTensorElems) || (x && numel > uint64_t(model_limits::kMaxTensorElems) / x))
        bad("shape has more than " + std::to_string(model_limits::kMaxTensorElems) + " elements");
      numel *= x;
      t.shape.push_back(int64_t(x));
    }
    const json& off = v["data_offsets"];
    if (!off[0].is_number_unsigned() || !off[1].is_number_unsigned()) bad("data_offsets must be non-negative integers");
    const uint64_t b = off[0].get<uint64_t>(), e = off[1].get<uint64_t>();
    if (b > e || e > data_size)
      bad("data_offsets [" + std::to_string(b) + ", " + std::to_string(e) + "] outside the file's " +
          std::to_string(data_size) + " data bytes (truncated file?)");
    const std::optional<int64_t> want_bytes = checked_mul(int64_t(numel), int64_t(block_bytes(t.dtype)));
    if (!want_bytes) bad("byte size overflows");
    const uint64_t want = uint64_t(*want_bytes);
    if (e - b != want)
      bad("has " + std::to_string(e - b) + " bytes but shape and dtype need " + std::to_string(want));
    t.data = base + data_start + b;
    t.nbytes = size_t(e - b);
    out.tensors.push_back(std::move(t));
  }
  return out;
}

}  // namespace ms
