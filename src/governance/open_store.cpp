// open_store.cpp — LOCATION -> the store that keeps it (see store.h).
#include "core/error.h"
#include "governance/store.h"
#include "pgsql/pg_conn.h"

namespace ms::gov {

std::unique_ptr<Store> make_sqlite_store(const std::string& path);
std::unique_ptr<Store> make_pg_store(const std::string& url);

bool is_postgres_url(const std::string& l) { return pg::is_url(l); }

std::unique_ptr<Store> open_store(const std::string& location) {
  if (location.empty()) bad_input("--state: expected a file path or a postgresql:// URL");
  if (is_postgres_url(location)) return make_pg_store(location);
  if (location.find("://") != std::string::npos)
    bad_input("--state: unsupported URL scheme in '" + location + "' (use a file path or postgresql://)");
  return make_sqlite_store(location);
}

}  // namespace ms::gov
