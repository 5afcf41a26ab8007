// sha256.h — SHA-256 (FIPS 180-4), used to store API key secrets as hashes.
#pragma once
#include <cstdint>
#include <string>
#include <string_view>

namespace ms::gov {

// The digest of `data` as 64 lowercase hex characters.
std::string sha256_hex(std::string_view data);

}  // namespace ms::gov
