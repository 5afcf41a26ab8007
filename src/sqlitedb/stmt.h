// stmt.h — one prepared SQLite statement, for the embedded stores of
// governance and batch: parameters are always bound (never spliced into the
// SQL), and every failure is an ms::Error "WHERE: WHAT: sqlite's message" —
// Error(BadInput) when the file itself is unusable (read-only, not a
// database, corrupt, cannot be opened, no permission), Error(Internal)
// otherwise. Not thread-safe: each store serialises its calls.
#pragma once
#include <sqlite3.h>

#include <cstdint>
#include <string>

#include "core/error.h"

namespace ms::sqlitedb {

class Stmt {
 public:
  // `where` names the store and the operation in messages ("state FILE (write usage)").
  Stmt(sqlite3* db, const std::string& sql, std::string where) : db_(db), where_(std::move(where)) {
    if (sqlite3_prepare_v2(db, sql.c_str(), -1, &st_, nullptr) != SQLITE_OK) fail("prepare");
  }
  ~Stmt() { sqlite3_finalize(st_); }
  Stmt(const Stmt&) = delete;
  Stmt& operator=(const Stmt&) = delete;

  Stmt& bind(int i, int64_t v) { return check(sqlite3_bind_int64(st_, i, v)); }
  Stmt& bind(int i, double v) { return check(sqlite3_bind_double(st_, i, v)); }
  Stmt& bind(int i, const std::string& v) {
    return check(sqlite3_bind_text(st_, i, v.data(), static_cast<int>(v.size()), SQLITE_TRANSIENT));
  }
  bool step() {  // true: a row
    const int rc = sqlite3_step(st_);
    if (rc == SQLITE_ROW) return true;
    if (rc == SQLITE_DONE) return false;
    fail("step");
  }
  void run() {
    while (step()) {
    }
  }
  void reset() {  // for the next run with new bindings
    sqlite3_reset(st_);
    sqlite3_clear_bindings(st_);
  }
  int64_t i64(int c) { return sqlite3_column_int64(st_, c); }
  double f64(int c) { return sqlite3_column_double(st_, c); }
  std::string str(int c) {
    const unsigned char* t = sqlite3_column_text(st_, c);
    return t ? std::string(reinterpret_cast<const char*>(t), static_cast<size_t>(sqlite3_column_bytes(st_, c)))
             : std::string();
  }

 private:
  Stmt& check(int rc) {
    if (rc != SQLITE_OK) fail("bind");
    return *this;
  }
  [[noreturn]] void fail(const char* what) {
    const int code = sqlite3_errcode(db_);
    const ErrorKind k = (code == SQLITE_READONLY || code == SQLITE_NOTADB || code == SQLITE_CORRUPT ||
                         code == SQLITE_CANTOPEN || code == SQLITE_PERM)
                            ? ErrorKind::BadInput
                            : ErrorKind::Internal;
    throw Error(k, where_ + ": " + what + ": " + sqlite3_errmsg(db_));
  }

  sqlite3* db_;
  sqlite3_stmt* st_ = nullptr;
  std::string where_;
};

}  // namespace ms::sqlitedb
