// checked.h — integer arithmetic that reports overflow instead of wrapping.
//
// Every size computed from untrusted numbers (model files, requests, flags)
// goes through these, so a product that does not fit is an error at the
// place it is computed, never a small number that passes a later check.
#pragma once
#include <cstdint>
#include <optional>

namespace ms {

// a * b, or nullopt when it does not fit in int64 (or either is negative).
inline std::optional<int64_t> checked_mul(int64_t a, int64_t b) {
  int64_t r;
  if (a < 0 || b < 0 || __builtin_mul_overflow(a, b, &r)) return std::nullopt;
  return r;
}

// The product of all factors, or nullopt on overflow or a negative factor.
inline std::optional<int64_t> checked_product(std::initializer_list<int64_t> factors) {
  int64_t r = 1;
  for (int64_t f : factors) {
    auto m = checked_mul(r, f);
    if (!m) return std::nullopt;
    r = *m;
  }
  return r;
}

// a + b, or nullopt when it does not fit in int64 (or either is negative).
inline std::optional<int64_t> checked_add(int64_t a, int64_t b) {
  int64_t r;
  if (a < 0 || b < 0 || __builtin_add_overflow(a, b, &r)) return std::nullopt;
  return r;
}

}  // namespace ms
