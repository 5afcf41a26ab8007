// query_string.cpp — see query_string.h.
#include "server/query_string.h"

#include <cctype>
#include <optional>

namespace ms {

namespace {

// The raw value of the first `name` parameter: nullopt when absent.
std::optional<std::string> find_param(const std::string& target, const std::string& name) {
  const size_t q = target.find('?');
  if (q == std::string::npos) return std::nullopt;
  const std::string qs = target.substr(q + 1);
  size_t start = 0;
  while (start <= qs.size()) {
    size_t amp = qs.find('&', start);
    if (amp == std::string::npos) amp = qs.size();
    const std::string kv = qs.substr(start, amp - start);
    const size_t eq = kv.find('=');
    if (url_decode(kv.substr(0, eq)) == name) return eq == std::string::npos ? std::string() : kv.substr(eq + 1);
    start = amp + 1;
  }
  return std::nullopt;
}

}  // namespace

std::string url_decode(const std::string& s) {
  std::string out;
  for (size_t i = 0; i < s.size(); ++i) {
    if (s[i] == '+') {
      out += ' ';
    } else if (s[i] == '%' && i + 2 < s.size() && std::isxdigit(static_cast<unsigned char>(s[i + 1])) &&
               std::isxdigit(static_cast<unsigned char>(s[i + 2]))) {
      out += static_cast<char>(std::stoi(s.substr(i + 1, 2), nullptr, 16));
      i += 2;
    } else {
      out += s[i];
    }
  }
  return out;
}

std::string query_param(const std::string& target, const std::string& name) {
  auto v = find_param(target, name);
  return v ? url_decode(*v) : std::string();
}

bool has_query_param(const std::string& target, const std::string& name) {
  return find_param(target, name).has_value();
}

}  // namespace ms
