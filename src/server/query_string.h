// query_string.h — the query part of a request target, as the admin, model
// and Batch API routes read it (`?by=key,model&since=2026-01-01`).
#pragma once
#include <string>

namespace ms {

// Percent-decoding of a query component ('+' is a space; a malformed escape
// is kept as it is).
std::string url_decode(const std::string& s);
// The decoded value of the first `name=` parameter of `target`'s query; ""
// when absent (or given without a value).
std::string query_param(const std::string& target, const std::string& name);
// Whether `target`'s query names the parameter at all.
bool has_query_param(const std::string& target, const std::string& name);

}  // namespace ms
