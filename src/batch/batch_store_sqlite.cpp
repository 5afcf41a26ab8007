// batch_store_sqlite.cpp — the Batch/Files state in a SQLite file (WAL,
// synchronous=NORMAL), the files' bytes in the files directory (see
// batch_store.h). Servers on one machine may share the file (as they share a
// SQLite governance state); one of them runs batches: the one holding an
// exclusive flock on FILE.runner, which the kernel drops when that process
// dies, so another takes over at its next scan.
#include <fcntl.h>
#include <sqlite3.h>
#include <sys/file.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <mutex>

#include "batch/batch_store.h"
#include "core/error.h"
#include "pgsql/pg_conn.h"
#include "sqlitedb/stmt.h"

namespace ms::batch {

namespace {

// Statements of this store: failures read "batch state: WHAT: message".
struct Stmt : sqlitedb::Stmt {
  Stmt(sqlite3* db, const char* sql) : sqlitedb::Stmt(db, sql, "batch state") {}
};

// (Each statement in parentheses: one element, however many literals it joins.)
const char* kSchema[] = {
    ("CREATE TABLE IF NOT EXISTS batch_files (id TEXT PRIMARY KEY, owner TEXT NOT NULL, purpose TEXT NOT NULL, "
    "filename TEXT NOT NULL, path TEXT NOT NULL, bytes INTEGER NOT NULL, created_at INTEGER NOT NULL, "
    "seq INTEGER NOT NULL)"),
    ("CREATE TABLE IF NOT EXISTS batch_batches (id TEXT PRIMARY KEY, owner TEXT NOT NULL, endpoint TEXT NOT NULL, "
    "input_file_id TEXT NOT NULL, completion_window TEXT NOT NULL, status TEXT NOT NULL, "
    "output_file_id TEXT NOT NULL, error_file_id TEXT NOT NULL, created_at INTEGER NOT NULL, "
    "in_progress_at INTEGER NOT NULL, expires_at INTEGER NOT NULL, finalizing_at INTEGER NOT NULL, "
    "completed_at INTEGER NOT NULL, failed_at INTEGER NOT NULL, expired_at INTEGER NOT NULL, "
    "cancelling_at INTEGER NOT NULL, cancelled_at INTEGER NOT NULL, total INTEGER NOT NULL, "
    "metadata TEXT NOT NULL, errors TEXT NOT NULL, seq INTEGER NOT NULL)"),
    ("CREATE TABLE IF NOT EXISTS batch_lines (batch_id TEXT NOT NULL, line_no INTEGER NOT NULL, "
    "custom_id TEXT NOT NULL, ok INTEGER NOT NULL, json TEXT NOT NULL, PRIMARY KEY (batch_id, line_no))"),
};

constexpr const char* kBatchCols =
    "b.id, b.owner, b.endpoint, b.input_file_id, b.completion_window, b.status, b.output_file_id, b.error_file_id, "
    "b.created_at, b.in_progress_at, b.expires_at, b.finalizing_at, b.completed_at, b.failed_at, b.expired_at, "
    "b.cancelling_at, b.cancelled_at, b.total, b.metadata, b.errors, "
    "(SELECT COUNT(*) FROM batch_lines l WHERE l.batch_id = b.id AND l.ok = 1), "
    "(SELECT COUNT(*) FROM batch_lines l WHERE l.batch_id = b.id AND l.ok = 0)";

BatchRec read_batch(Stmt& s) {
  BatchRec b;
  b.id = s.str(0), b.owner = s.str(1), b.endpoint = s.str(2), b.input_file_id = s.str(3);
  b.completion_window = s.str(4), b.status = s.str(5), b.output_file_id = s.str(6), b.error_file_id = s.str(7);
  b.created_at = s.i64(8), b.in_progress_at = s.i64(9), b.expires_at = s.i64(10), b.finalizing_at = s.i64(11);
  b.completed_at = s.i64(12), b.failed_at = s.i64(13), b.expired_at = s.i64(14), b.cancelling_at = s.i64(15);
  b.cancelled_at = s.i64(16), b.total = s.i64(17), b.metadata = s.str(18), b.errors = s.str(19);
  b.completed = s.i64(20), b.failed = s.i64(21);
  return b;
}

FileRec read_file_row(Stmt& s) {
  FileRec f;
  f.id = s.str(0), f.owner = s.str(1), f.purpose = s.str(2), f.filename = s.str(3), f.path = s.str(4);
  f.bytes = s.i64(5), f.created_at = s.i64(6);
  return f;
}

void insert_file(sqlite3* db, const FileRec& f) {
  Stmt s(db,
         "INSERT OR IGNORE INTO batch_files (id, owner, purpose, filename, path, bytes, created_at, seq) "
         "VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, (SELECT COALESCE(MAX(seq), 0) + 1 FROM batch_files))");
  s.bind(1, f.id).bind(2, f.owner).bind(3, f.purpose).bind(4, f.filename).bind(5, f.path).bind(6, f.bytes);
  s.bind(7, f.created_at).run();
}

bool update_batch_row(sqlite3* db, const BatchRec& b, const std::string& from_status) {
  Stmt s(db,
         "UPDATE batch_batches SET status = ?2, output_file_id = ?3, error_file_id = ?4, in_progress_at = ?5, "
         "finalizing_at = ?6, completed_at = ?7, failed_at = ?8, expired_at = ?9, cancelling_at = ?10, "
         "cancelled_at = ?11, total = ?12, errors = ?13 WHERE id = ?1 AND status = ?14");
  s.bind(1, b.id).bind(2, b.status).bind(3, b.output_file_id).bind(4, b.error_file_id).bind(5, b.in_progress_at);
  s.bind(6, b.finalizing_at).bind(7, b.completed_at).bind(8, b.failed_at).bind(9, b.expired_at);
  s.bind(10, b.cancelling_at).bind(11, b.cancelled_at).bind(12, b.total).bind(13, b.errors).bind(14, from_status);
  s.run();
  return sqlite3_changes(db) > 0;
}

// The bytes of a file in the files directory, as they are read.
class FdReader final : public ContentReader {
 public:
  explicit FdReader(UniqueFd fd) : fd_(std::move(fd)) {}
  size_t read(char* p, size_t n) override {
    for (;;) {
      const ssize_t got = ::read(fd_.get(), p, n);
      if (got >= 0) return static_cast<size_t>(got);
      if (errno != EINTR) throw Error(ErrorKind::Internal, std::string("cannot read a file: ") + std::strerror(errno));
    }
  }

 private:
  UniqueFd fd_;
};

class SqliteBatchStore final : public BatchStore {
 public:
  explicit SqliteBatchStore(const std::string& db_path);
  ~SqliteBatchStore() override;
  std::string kind() const override { return "sqlite"; }
  bool keeps_content() const override { return false; }
  void put_file(const FileRec& f) override;
  std::optional<FileRec> get_file(const std::string& id) override;
  std::vector<FileRec> list_files(const std::string& owner, bool all_owners, const std::string& purpose,
                                  const std::string& after, int64_t limit) override;
  bool delete_file(const std::string& id) override;
  UniqueFd open_content(const FileRec& f, const std::string&) override {
    return UniqueFd(::open(f.path.c_str(), O_RDONLY | O_CLOEXEC));
  }
  std::unique_ptr<ContentReader> read_content(const FileRec& f) override {
    UniqueFd fd = open_content(f, "");
    if (fd.get() < 0) return nullptr;
    return std::make_unique<FdReader>(std::move(fd));
  }
  void put_batch(const BatchRec& b) override;
  bool update_batch(const BatchRec& b, const std::string& from_status) override;
  std::optional<BatchRec> get_batch(const std::string& id) override;
  std::vector<BatchRec> list_batches(const std::string& owner, bool all_owners, const std::string& after,
                                     int64_t limit) override;
  std::vector<std::string> unfinished() override;
  std::string claim(const std::string& id, const std::string& runner, int64_t lease_ms) override;
  void release(const std::string&, const std::string&) override {}
  void add_lines(const std::string& batch_id, const std::vector<LineRow>& rows) override;
  std::vector<int64_t> done_lines(const std::string& batch_id) override;
  std::vector<LineRow> lines_after(const std::string& batch_id, int64_t after, int64_t limit) override;
  bool finalize(const BatchRec& b, const std::vector<FileRec>& files, const std::string& from_status) override;

 private:
  void exec(const std::string& sql);
  std::mutex mu_;
  sqlite3* db_ = nullptr;
  std::string path_;
  int runner_fd_ = -1;  // FILE.runner, flock(LOCK_EX) once this store's runner has claimed a batch
};

}  // namespace

SqliteBatchStore::SqliteBatchStore(const std::string& path) : path_(path) {
  int fd = ::open(path.c_str(), O_RDWR | O_CREAT | O_CLOEXEC, 0600);
  if (fd < 0) throw Error(ErrorKind::BadInput, "cannot open batch state " + path + ": " + std::strerror(errno));
  ::close(fd);
  if (sqlite3_open_v2(path.c_str(), &db_, SQLITE_OPEN_READWRITE | SQLITE_OPEN_FULLMUTEX, nullptr) != SQLITE_OK) {
    std::string m = db_ ? sqlite3_errmsg(db_) : "out of memory";
    sqlite3_close(db_);
    db_ = nullptr;
    throw Error(ErrorKind::BadInput, "cannot open batch state " + path + ": " + m);
  }
  try {
    sqlite3_busy_timeout(db_, 5000);
    exec("PRAGMA journal_mode=WAL");
    // NORMAL in WAL mode: a commit survives the process being killed (the
    // requirement: kill -9 mid-batch); only an OS crash may lose the last ones.
    exec("PRAGMA synchronous=NORMAL");
    for (const char* sql : kSchema) exec(sql);
  } catch (const Error& e) {
    sqlite3_close(db_);
    db_ = nullptr;
    throw Error(ErrorKind::BadInput, "batch state " + path + " is not usable: " + e.what());
  }
}

SqliteBatchStore::~SqliteBatchStore() {
  if (db_) sqlite3_close(db_);
  if (runner_fd_ >= 0) ::close(runner_fd_);  // (drops the flock: another server's runner takes over)
}

void SqliteBatchStore::exec(const std::string& sql) {
  char* err = nullptr;
  if (sqlite3_exec(db_, sql.c_str(), nullptr, nullptr, &err) != SQLITE_OK) {
    std::string m = err ? err : "error";
    sqlite3_free(err);
    throw Error(ErrorKind::Internal, "batch state: " + m);
  }
}

void SqliteBatchStore::put_file(const FileRec& f) {
  std::lock_guard<std::mutex> lk(mu_);
  insert_file(db_, f);
}

std::optional<FileRec> SqliteBatchStore::get_file(const std::string& id) {
  std::lock_guard<std::mutex> lk(mu_);
  Stmt s(db_, "SELECT id, owner, purpose, filename, path, bytes, created_at FROM batch_files WHERE id = ?1");
  s.bind(1, id);
  if (!s.step()) return std::nullopt;
  return read_file_row(s);
}

std::vector<FileRec> SqliteBatchStore::list_files(const std::string& owner, bool all_owners, const std::string& purpose,
                                            const std::string& after, int64_t limit) {
  std::lock_guard<std::mutex> lk(mu_);
  Stmt s(db_,
         "SELECT id, owner, purpose, filename, path, bytes, created_at FROM batch_files "
         "WHERE (?1 = 1 OR owner = ?2) AND (?3 = '' OR purpose = ?3) "
         "AND (?4 = '' OR seq < COALESCE((SELECT seq FROM batch_files WHERE id = ?4), 0)) "
         "ORDER BY seq DESC LIMIT ?5");
  s.bind(1, int64_t{all_owners}).bind(2, owner).bind(3, purpose).bind(4, after).bind(5, limit);
  std::vector<FileRec> out;
  while (s.step()) out.push_back(read_file_row(s));
  return out;
}

bool SqliteBatchStore::delete_file(const std::string& id) {
  std::lock_guard<std::mutex> lk(mu_);
  Stmt s(db_, "DELETE FROM batch_files WHERE id = ?1");
  s.bind(1, id).run();
  return sqlite3_changes(db_) > 0;
}

void SqliteBatchStore::put_batch(const BatchRec& b) {
  std::lock_guard<std::mutex> lk(mu_);
  Stmt s(db_,
         "INSERT INTO batch_batches (id, owner, endpoint, input_file_id, completion_window, status, output_file_id, "
         "error_file_id, created_at, in_progress_at, expires_at, finalizing_at, completed_at, failed_at, expired_at, "
         "cancelling_at, cancelled_at, total, metadata, errors, seq) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, 0, "
         "?10, 0, 0, 0, 0, 0, 0, 0, ?11, ?12, (SELECT COALESCE(MAX(seq), 0) + 1 FROM batch_batches))");
  s.bind(1, b.id).bind(2, b.owner).bind(3, b.endpoint).bind(4, b.input_file_id).bind(5, b.completion_window);
  s.bind(6, b.status).bind(7, b.output_file_id).bind(8, b.error_file_id).bind(9, b.created_at);
  s.bind(10, b.expires_at).bind(11, b.metadata).bind(12, b.errors).run();
}

bool SqliteBatchStore::update_batch(const BatchRec& b, const std::string& from_status) {
  std::lock_guard<std::mutex> lk(mu_);
  return update_batch_row(db_, b, from_status);
}

std::optional<BatchRec> SqliteBatchStore::get_batch(const std::string& id) {
  std::lock_guard<std::mutex> lk(mu_);
  std::string sql = std::string("SELECT ") + kBatchCols + " FROM batch_batches b WHERE b.id = ?1";
  Stmt s(db_, sql.c_str());
  s.bind(1, id);
  if (!s.step()) return std::nullopt;
  return read_batch(s);
}

std::vector<BatchRec> SqliteBatchStore::list_batches(const std::string& owner, bool all_owners, const std::string& after,
                                               int64_t limit) {
  std::lock_guard<std::mutex> lk(mu_);
  std::string sql = std::string("SELECT ") + kBatchCols +
                    " FROM batch_batches b WHERE (?1 = 1 OR b.owner = ?2) AND (?3 = '' OR b.seq < "
                    "COALESCE((SELECT seq FROM batch_batches WHERE id = ?3), 0)) ORDER BY b.seq DESC LIMIT ?4";
  Stmt s(db_, sql.c_str());
  s.bind(1, int64_t{all_owners}).bind(2, owner).bind(3, after).bind(4, limit);
  std::vector<BatchRec> out;
  while (s.step()) out.push_back(read_batch(s));
  return out;
}

std::vector<std::string> SqliteBatchStore::unfinished() {
  std::lock_guard<std::mutex> lk(mu_);
  Stmt s(db_,
         "SELECT id FROM batch_batches WHERE status IN ('validating', 'in_progress', 'cancelling', 'finalizing') "
         "ORDER BY seq");
  std::vector<std::string> out;
  while (s.step()) out.push_back(s.str(0));
  return out;
}

void SqliteBatchStore::add_lines(const std::string& batch_id, const std::vector<LineRow>& rows) {
  if (rows.empty()) return;
  std::lock_guard<std::mutex> lk(mu_);
  exec("BEGIN IMMEDIATE");
  try {
    Stmt s(db_, "INSERT OR IGNORE INTO batch_lines (batch_id, line_no, custom_id, ok, json) VALUES (?1, ?2, ?3, ?4, ?5)");
    for (const LineRow& r : rows) {
      s.bind(1, batch_id).bind(2, r.line_no).bind(3, r.custom_id).bind(4, int64_t{r.ok}).bind(5, r.json).run();
      s.reset();
    }
    exec("COMMIT");
  } catch (...) {
    sqlite3_exec(db_, "ROLLBACK", nullptr, nullptr, nullptr);
    throw;
  }
}

std::string SqliteBatchStore::claim(const std::string& id, const std::string&, int64_t) {
  std::lock_guard<std::mutex> lk(mu_);
  if (runner_fd_ < 0) {  // not the runner yet: try to become it
    int fd = ::open((path_ + ".runner").c_str(), O_RDWR | O_CREAT | O_CLOEXEC, 0600);
    if (fd < 0) throw Error(ErrorKind::Internal, "batch state: cannot open " + path_ + ".runner: " + std::strerror(errno));
    if (::flock(fd, LOCK_EX | LOCK_NB) != 0) {
      ::close(fd);
      return "";  // another server on this file runs the batches
    }
    runner_fd_ = fd;
  }
  Stmt s(db_, "SELECT status FROM batch_batches WHERE id = ?1");
  s.bind(1, id);
  return s.step() ? s.str(0) : std::string();
}

std::vector<int64_t> SqliteBatchStore::done_lines(const std::string& batch_id) {
  std::lock_guard<std::mutex> lk(mu_);
  Stmt s(db_, "SELECT line_no FROM batch_lines WHERE batch_id = ?1 ORDER BY line_no");
  s.bind(1, batch_id);
  std::vector<int64_t> out;
  while (s.step()) out.push_back(s.i64(0));
  return out;
}

std::vector<LineRow> SqliteBatchStore::lines_after(const std::string& batch_id, int64_t after, int64_t limit) {
  std::lock_guard<std::mutex> lk(mu_);
  Stmt s(db_,
         "SELECT line_no, custom_id, ok, json FROM batch_lines WHERE batch_id = ?1 AND line_no > ?2 "
         "ORDER BY line_no LIMIT ?3");
  s.bind(1, batch_id);
  s.bind(2, after);
  s.bind(3, limit);
  std::vector<LineRow> out;
  while (s.step()) out.push_back({s.i64(0), s.str(1), s.i64(2) != 0, s.str(3)});
  return out;
}

bool SqliteBatchStore::finalize(const BatchRec& b, const std::vector<FileRec>& files, const std::string& from_status) {
  std::lock_guard<std::mutex> lk(mu_);
  exec("BEGIN IMMEDIATE");
  try {
    if (!update_batch_row(db_, b, from_status)) {
      exec("ROLLBACK");
      return false;
    }
    for (const FileRec& f : files) insert_file(db_, f);
    exec("COMMIT");
    return true;
  } catch (...) {
    sqlite3_exec(db_, "ROLLBACK", nullptr, nullptr, nullptr);
    throw;
  }
}

std::unique_ptr<BatchStore> make_pg_batch_store(const std::string& url);  // batch_store_pg.cpp

std::unique_ptr<BatchStore> open_batch_store(const std::string& location) {
  if (pg::is_url(location)) return make_pg_batch_store(location);
  return std::make_unique<SqliteBatchStore>(location);
}

}  // namespace ms::batch
