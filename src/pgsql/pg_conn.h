// pg_conn.h — one PostgreSQL connection through libpq, for the stores that
// keep state replicas share (governance, batches). Every statement goes
// through PQexecParams with its parameters bound, never spliced into SQL.
// A lost connection is reset on the next call; until it comes back, calls
// throw Error(Internal) (the server answers 503: fail closed). Not
// thread-safe: each store serialises its calls with its own mutex.
#pragma once
#include <cstdint>
#include <string>
#include <vector>

struct pg_conn;
struct pg_result;

namespace ms::pg {

// postgresql://... or postgres://...
bool is_url(const std::string& location);
// The URL without its password, for messages.
std::string redact(const std::string& url);

class Result {
 public:
  explicit Result(pg_result* r) : r_(r) {}
  ~Result();
  Result(Result&& o) noexcept : r_(o.r_) { o.r_ = nullptr; }
  Result(const Result&) = delete;
  Result& operator=(const Result&) = delete;
  int rows() const;
  std::string str(int row, int c) const;  // text (or the raw bytes of a binary result)
  int64_t i64(int row, int c) const { return std::stoll(str(row, c)); }
  double f64(int row, int c) const { return std::stod(str(row, c)); }
  bool null(int row, int c) const;
  int64_t affected() const;  // rows an INSERT/UPDATE/DELETE touched

 private:
  pg_result* r_;
};

// A statement parameter: text, or bytes sent as binary (for bytea).
struct Param {
  Param(std::string v) : value(std::move(v)) {}  // NOLINT: text, implicitly
  Param(const char* v) : value(v) {}              // NOLINT
  static Param bytes(const char* p, size_t n) {
    Param x{std::string(p, n)};
    x.binary = true;
    return x;
  }
  std::string value;
  bool binary = false;
};

class Conn {
 public:
  explicit Conn(const std::string& url);  // Error(BadInput) when it cannot connect
  ~Conn();
  Conn(const Conn&) = delete;
  Conn& operator=(const Conn&) = delete;

  const std::string& shown() const { return shown_; }  // the redacted URL
  // One statement; `binary_result`: columns come back as raw bytes (bytea).
  Result q(const std::string& sql, const std::vector<Param>& params = {}, bool binary_result = false);
  void rollback_quietly();  // after a failed transaction; never throws

 private:
  std::string shown_;
  pg_conn* conn_ = nullptr;
};

}  // namespace ms::pg
