// pg_conn.cpp — see pg_conn.h.
#include "pgsql/pg_conn.h"

#include <libpq-fe.h>

#include "core/error.h"

namespace ms::pg {

namespace {
std::string one_line(std::string m) {
  while (!m.empty() && (m.back() == '\n' || m.back() == ' ')) m.pop_back();
  for (char& c : m)
    if (c == '\n') c = ' ';
  return m;
}
}  // namespace

bool is_url(const std::string& l) { return l.rfind("postgresql://", 0) == 0 || l.rfind("postgres://", 0) == 0; }

std::string redact(const std::string& url) {
  size_t scheme = url.find("://");
  if (scheme == std::string::npos) return url;
  size_t at = url.find('@', scheme + 3);
  if (at == std::string::npos) return url;
  size_t colon = url.find(':', scheme + 3);
  if (colon == std::string::npos || colon > at) return url;
  return url.substr(0, colon) + ":***" + url.substr(at);
}

Result::~Result() { PQclear(r_); }
int Result::rows() const { return PQntuples(r_); }
std::string Result::str(int row, int c) const {
  return std::string(PQgetvalue(r_, row, c), static_cast<size_t>(PQgetlength(r_, row, c)));
}
bool Result::null(int row, int c) const { return PQgetisnull(r_, row, c); }
int64_t Result::affected() const {
  const char* t = PQcmdTuples(r_);
  return t && *t ? std::stoll(t) : 0;
}

Conn::Conn(const std::string& url) : shown_(redact(url)) {
  conn_ = PQconnectdb(url.c_str());
  if (!conn_ || PQstatus(conn_) != CONNECTION_OK) {
    std::string m = conn_ ? one_line(PQerrorMessage(conn_)) : "out of memory";
    PQfinish(conn_);
    conn_ = nullptr;
    throw Error(ErrorKind::BadInput, "cannot connect to PostgreSQL at " + shown_ + ": " + m);
  }
  PQsetNoticeProcessor(conn_, [](void*, const char*) {}, nullptr);
}

Conn::~Conn() {
  if (conn_) PQfinish(conn_);
}

Result Conn::q(const std::string& sql, const std::vector<Param>& params, bool binary_result) {
  if (PQstatus(conn_) != CONNECTION_OK) {
    PQreset(conn_);
    if (PQstatus(conn_) != CONNECTION_OK) throw Error(ErrorKind::Internal, "PostgreSQL at " + shown_ + " is unreachable");
  }
  std::vector<const char*> vals;
  std::vector<int> lens, formats;
  for (const Param& p : params) {
    vals.push_back(p.value.c_str());
    lens.push_back(static_cast<int>(p.value.size()));
    formats.push_back(p.binary ? 1 : 0);
  }
  const int n = static_cast<int>(vals.size());
  PGresult* res = PQexecParams(conn_, sql.c_str(), n, nullptr, n ? vals.data() : nullptr, n ? lens.data() : nullptr,
                               n ? formats.data() : nullptr, binary_result ? 1 : 0);
  ExecStatusType st = res ? PQresultStatus(res) : PGRES_FATAL_ERROR;
  if (st != PGRES_COMMAND_OK && st != PGRES_TUPLES_OK) {
    std::string m = one_line(res ? PQresultErrorMessage(res) : PQerrorMessage(conn_));
    PQclear(res);
    throw Error(ErrorKind::Internal, "PostgreSQL: " + m);
  }
  return Result(res);
}

void Conn::rollback_quietly() {
  if (conn_ && PQstatus(conn_) == CONNECTION_OK) PQclear(PQexec(conn_, "ROLLBACK"));
}

}  // namespace ms::pg
