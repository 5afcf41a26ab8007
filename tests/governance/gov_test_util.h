// Helpers shared by the governance test files.
#pragma once
#include <stdlib.h>

#include <stdexcept>
#include <string>

#include "governance/admin.h"

namespace ms::gov::test {

// A fresh directory under /tmp (the caller removes it).
inline std::string temp_dir() {
  char tmpl[] = "/tmp/ms-gov-test-XXXXXX";
  const char* d = mkdtemp(tmpl);
  if (!d) throw std::runtime_error("mkdtemp");
  return d;
}

// A name no other test (or earlier run on a shared PostgreSQL) has used.
inline std::string uniq(const std::string& p) { return p + new_key_id().substr(4); }

}  // namespace ms::gov::test
