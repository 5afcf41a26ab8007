// act_format.h — how activations are quantized for a weight type: the
// vocabulary ops.h shares with the reference (kernels/ref/quant_ref.h, which
// specifies the quantization and re-exports these names as ref::...).
#pragma once
#include <cstdint>

#include "core/dtype.h"

namespace ms::ops {

// None: float weights (activations stay f32); Q8_32: the legacy formats'
// blocks of 32; Q8_256: the K formats' super-blocks of 256.
enum class ActFormat : uint8_t { None, Q8_32, Q8_256 };
inline constexpr int kActFormats = 3;

// Activation format used with weights of type t (None for float types).
ActFormat act_format(DType t);
// Elements per activation block (32 or 256; 1 for None).
int64_t act_block(ActFormat f);

// One quantized activation row (cols values). `sum` is used by Q8_32 (one per
// block of 32), `bsum` by Q8_256 (one per 16 values); the other may be null.
struct ActRow {
  const int8_t* qs = nullptr;
  const float* d = nullptr;
  const int32_t* sum = nullptr;
  const int16_t* bsum = nullptr;
};

}  // namespace ms::ops
