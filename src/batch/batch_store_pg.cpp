// batch_store_pg.cpp — the Batch/Files state in the PostgreSQL database that
// replicas share (see batch_store.h): records, per-line results and the
// files' bytes (1 MiB bytea chunks), so any replica answers for any file or
// batch. A batch runs where its lease is: claim() takes it when nobody holds
// a live one, renews it for its holder; leases are timed by the database's
// clock, not the replicas'.
#include <fcntl.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstdlib>
#include <cstring>
#include <mutex>

#include "batch/batch_store.h"
#include "core/error.h"
#include "pgsql/pg_conn.h"

namespace ms::batch {

namespace {

using pg::Param;
using pg::Result;

constexpr size_t kChunk = 1 << 20;

const char* kSchema[] = {
    ("CREATE TABLE IF NOT EXISTS batch_files (id TEXT PRIMARY KEY, owner TEXT NOT NULL, purpose TEXT NOT NULL, "
     "filename TEXT NOT NULL, bytes BIGINT NOT NULL, created_at BIGINT NOT NULL, seq BIGSERIAL)"),
    ("CREATE TABLE IF NOT EXISTS batch_file_chunks (file_id TEXT NOT NULL REFERENCES batch_files (id) "
     "ON DELETE CASCADE, n INTEGER NOT NULL, data BYTEA NOT NULL, PRIMARY KEY (file_id, n))"),
    ("CREATE TABLE IF NOT EXISTS batch_batches (id TEXT PRIMARY KEY, owner TEXT NOT NULL, endpoint TEXT NOT NULL, "
     "input_file_id TEXT NOT NULL, completion_window TEXT NOT NULL, status TEXT NOT NULL, "
     "output_file_id TEXT NOT NULL, error_file_id TEXT NOT NULL, created_at BIGINT NOT NULL, "
     "in_progress_at BIGINT NOT NULL, expires_at BIGINT NOT NULL, finalizing_at BIGINT NOT NULL, "
     "completed_at BIGINT NOT NULL, failed_at BIGINT NOT NULL, expired_at BIGINT NOT NULL, "
     "cancelling_at BIGINT NOT NULL, cancelled_at BIGINT NOT NULL, total BIGINT NOT NULL, "
     "metadata TEXT NOT NULL, errors TEXT NOT NULL, runner TEXT NOT NULL DEFAULT '', "
     "lease_until_ms BIGINT NOT NULL DEFAULT 0, seq BIGSERIAL)"),
    ("CREATE TABLE IF NOT EXISTS batch_lines (batch_id TEXT NOT NULL, line_no BIGINT NOT NULL, "
     "custom_id TEXT NOT NULL, ok BOOLEAN NOT NULL, json TEXT NOT NULL, PRIMARY KEY (batch_id, line_no))"),
};

constexpr const char* kNowMs = "(extract(epoch FROM clock_timestamp()) * 1000)::bigint";

constexpr const char* kBatchCols =
    "b.id, b.owner, b.endpoint, b.input_file_id, b.completion_window, b.status, b.output_file_id, b.error_file_id, "
    "b.created_at, b.in_progress_at, b.expires_at, b.finalizing_at, b.completed_at, b.failed_at, b.expired_at, "
    "b.cancelling_at, b.cancelled_at, b.total, b.metadata, b.errors, "
    "(SELECT COUNT(*) FROM batch_lines l WHERE l.batch_id = b.id AND l.ok), "
    "(SELECT COUNT(*) FROM batch_lines l WHERE l.batch_id = b.id AND NOT l.ok)";

constexpr const char* kFileCols = "id, owner, purpose, filename, bytes, created_at";

std::string n(int64_t v) { return std::to_string(v); }

BatchRec read_batch(const Result& r, int i) {
  BatchRec b;
  b.id = r.str(i, 0), b.owner = r.str(i, 1), b.endpoint = r.str(i, 2), b.input_file_id = r.str(i, 3);
  b.completion_window = r.str(i, 4), b.status = r.str(i, 5), b.output_file_id = r.str(i, 6);
  b.error_file_id = r.str(i, 7), b.created_at = r.i64(i, 8), b.in_progress_at = r.i64(i, 9);
  b.expires_at = r.i64(i, 10), b.finalizing_at = r.i64(i, 11), b.completed_at = r.i64(i, 12);
  b.failed_at = r.i64(i, 13), b.expired_at = r.i64(i, 14), b.cancelling_at = r.i64(i, 15);
  b.cancelled_at = r.i64(i, 16), b.total = r.i64(i, 17), b.metadata = r.str(i, 18), b.errors = r.str(i, 19);
  b.completed = r.i64(i, 20), b.failed = r.i64(i, 21);
  return b;
}

FileRec read_file_row(const Result& r, int i) {
  FileRec f;
  f.id = r.str(i, 0), f.owner = r.str(i, 1), f.purpose = r.str(i, 2), f.filename = r.str(i, 3);
  f.bytes = r.i64(i, 4), f.created_at = r.i64(i, 5);
  return f;
}

class PgBatchStore final : public BatchStore {
 public:
  explicit PgBatchStore(const std::string& url) : db_(url) {
    std::lock_guard<std::mutex> lk(mu_);
    tx([&] {
      db_.q("SELECT pg_advisory_xact_lock(7461735)");  // replicas starting together create the tables one at a time
      for (const char* sql : kSchema) db_.q(sql);
    });
  }

  static int64_t chunks(const FileRec& f) {
    return (f.bytes + static_cast<int64_t>(kChunk) - 1) / static_cast<int64_t>(kChunk);
  }
  // Chunk c of file `id`; nullopt when it is gone.
  std::optional<std::string> chunk(const std::string& id, int64_t c) {
    std::lock_guard<std::mutex> lk(mu_);
    Result r = db_.q("SELECT data FROM batch_file_chunks WHERE file_id = $1 AND n = $2::int", {id, n(c)}, true);
    if (r.rows() == 0) return std::nullopt;
    return r.str(0, 0);
  }

  std::string kind() const override { return "postgresql"; }
  bool keeps_content() const override { return true; }

  void put_file(const FileRec& f) override {
    std::lock_guard<std::mutex> lk(mu_);
    tx([&] { insert_file(f); });
  }

  std::optional<FileRec> get_file(const std::string& id) override {
    std::lock_guard<std::mutex> lk(mu_);
    Result r = db_.q(std::string("SELECT ") + kFileCols + " FROM batch_files WHERE id = $1", {id});
    if (r.rows() == 0) return std::nullopt;
    return read_file_row(r, 0);
  }

  std::vector<FileRec> list_files(const std::string& owner, bool all_owners, const std::string& purpose,
                                  const std::string& after, int64_t limit) override {
    std::lock_guard<std::mutex> lk(mu_);
    Result r = db_.q(std::string("SELECT ") + kFileCols +
                         " FROM batch_files WHERE ($1 = 1 OR owner = $2) AND ($3 = '' OR purpose = $3) "
                         "AND ($4 = '' OR seq < COALESCE((SELECT seq FROM batch_files WHERE id = $4), 0)) "
                         "ORDER BY seq DESC LIMIT $5::bigint",
                     {n(all_owners), owner, purpose, after, n(limit)});
    std::vector<FileRec> out;
    for (int i = 0; i < r.rows(); ++i) out.push_back(read_file_row(r, i));
    return out;
  }

  bool delete_file(const std::string& id) override {
    std::lock_guard<std::mutex> lk(mu_);
    return db_.q("DELETE FROM batch_files WHERE id = $1", {id}).affected() > 0;
  }

  UniqueFd open_content(const FileRec& f, const std::string& spool_dir) override {
    UniqueFd out(::open(spool_dir.c_str(), O_TMPFILE | O_RDWR | O_CLOEXEC, 0600));
    if (out.get() < 0) {  // (a file system without O_TMPFILE)
      std::string tmpl = spool_dir + "/content-XXXXXX";
      out.reset(::mkostemp(tmpl.data(), O_CLOEXEC));
      if (out.get() < 0) throw Error(ErrorKind::Internal, "cannot write in " + spool_dir + ": " + std::strerror(errno));
      ::unlink(tmpl.c_str());
    }
    for (int64_t c = 0; c < chunks(f); ++c) {  // one chunk in memory at a time
      std::optional<std::string> data = chunk(f.id, c);
      if (!data) return UniqueFd();  // deleted meanwhile
      write_all(out.get(), *data, spool_dir);
    }
    if (::lseek(out.get(), 0, SEEK_SET) != 0)
      throw Error(ErrorKind::Internal, std::string("cannot read back a file: ") + std::strerror(errno));
    return out;
  }

  // A download: one chunk in memory, fetched as the previous one is sent.
  class ChunkReader final : public ContentReader {
   public:
    ChunkReader(std::shared_ptr<PgBatchStore> st, const FileRec& f, std::string first)
        : st_(std::move(st)), id_(f.id), chunks_(chunks(f)), buf_(std::move(first)) {}
    size_t read(char* p, size_t n) override {
      if (off_ == buf_.size()) {
        if (next_ >= chunks_) return 0;
        std::optional<std::string> data = st_->chunk(id_, next_);
        if (!data || data->empty()) throw Error(ErrorKind::Internal, "file " + id_ + " was deleted while it was read");
        buf_ = std::move(*data);
        ++next_;
        off_ = 0;
      }
      const size_t k = std::min(n, buf_.size() - off_);
      std::memcpy(p, buf_.data() + off_, k);
      off_ += k;
      return k;
    }

   private:
    std::shared_ptr<PgBatchStore> st_;
    std::string id_;
    int64_t chunks_, next_ = 1;
    std::string buf_;
    size_t off_ = 0;
  };

  std::unique_ptr<ContentReader> read_content(const FileRec& f) override {
    std::string first;
    if (chunks(f) > 0) {
      std::optional<std::string> data = chunk(f.id, 0);
      if (!data) return nullptr;
      first = std::move(*data);
    }
    return std::make_unique<ChunkReader>(std::static_pointer_cast<PgBatchStore>(shared_from_this()), f,
                                         std::move(first));
  }

  void put_batch(const BatchRec& b) override {
    std::lock_guard<std::mutex> lk(mu_);
    db_.q("INSERT INTO batch_batches (id, owner, endpoint, input_file_id, completion_window, status, output_file_id, "
          "error_file_id, created_at, in_progress_at, expires_at, finalizing_at, completed_at, failed_at, expired_at, "
          "cancelling_at, cancelled_at, total, metadata, errors) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, "
          "$9::bigint, 0, $10::bigint, 0, 0, 0, 0, 0, 0, 0, $11, $12)",
          {b.id, b.owner, b.endpoint, b.input_file_id, b.completion_window, b.status, b.output_file_id,
           b.error_file_id, n(b.created_at), n(b.expires_at), b.metadata, b.errors});
  }

  bool update_batch(const BatchRec& b, const std::string& from_status) override {
    std::lock_guard<std::mutex> lk(mu_);
    return update_row(b, from_status);
  }

  std::optional<BatchRec> get_batch(const std::string& id) override {
    std::lock_guard<std::mutex> lk(mu_);
    Result r = db_.q(std::string("SELECT ") + kBatchCols + " FROM batch_batches b WHERE b.id = $1", {id});
    if (r.rows() == 0) return std::nullopt;
    return read_batch(r, 0);
  }

  std::vector<BatchRec> list_batches(const std::string& owner, bool all_owners, const std::string& after,
                                     int64_t limit) override {
    std::lock_guard<std::mutex> lk(mu_);
    Result r = db_.q(std::string("SELECT ") + kBatchCols +
                         " FROM batch_batches b WHERE ($1 = 1 OR b.owner = $2) AND ($3 = '' OR b.seq < "
                         "COALESCE((SELECT seq FROM batch_batches WHERE id = $3), 0)) ORDER BY b.seq DESC "
                         "LIMIT $4::bigint",
                     {n(all_owners), owner, after, n(limit)});
    std::vector<BatchRec> out;
    for (int i = 0; i < r.rows(); ++i) out.push_back(read_batch(r, i));
    return out;
  }

  std::vector<std::string> unfinished() override {
    std::lock_guard<std::mutex> lk(mu_);
    Result r = db_.q(
        "SELECT id FROM batch_batches WHERE status IN ('validating', 'in_progress', 'cancelling', 'finalizing') "
        "ORDER BY seq");
    std::vector<std::string> out;
    for (int i = 0; i < r.rows(); ++i) out.push_back(r.str(i, 0));
    return out;
  }

  std::string claim(const std::string& id, const std::string& runner, int64_t lease_ms) override {
    std::lock_guard<std::mutex> lk(mu_);
    Result r = db_.q(std::string("UPDATE batch_batches SET runner = $2, lease_until_ms = ") + kNowMs +
                         " + $3::bigint WHERE id = $1 AND (runner = '' OR runner = $2 OR lease_until_ms < " + kNowMs +
                         ") RETURNING status",
                     {id, runner, n(lease_ms)});
    return r.rows() ? r.str(0, 0) : std::string();
  }

  void release(const std::string& id, const std::string& runner) override {
    std::lock_guard<std::mutex> lk(mu_);
    db_.q("UPDATE batch_batches SET runner = '', lease_until_ms = 0 WHERE id = $1 AND runner = $2", {id, runner});
  }

  void add_lines(const std::string& batch_id, const std::vector<LineRow>& rows) override {
    if (rows.empty()) return;
    std::lock_guard<std::mutex> lk(mu_);
    tx([&] {
      for (const LineRow& r : rows)
        db_.q("INSERT INTO batch_lines (batch_id, line_no, custom_id, ok, json) VALUES ($1, $2::bigint, $3, "
              "$4::boolean, $5) ON CONFLICT (batch_id, line_no) DO NOTHING",
              {batch_id, n(r.line_no), r.custom_id, r.ok ? "true" : "false", r.json});
    });
  }

  std::vector<int64_t> done_lines(const std::string& batch_id) override {
    std::lock_guard<std::mutex> lk(mu_);
    Result r = db_.q("SELECT line_no FROM batch_lines WHERE batch_id = $1 ORDER BY line_no", {batch_id});
    std::vector<int64_t> out;
    for (int i = 0; i < r.rows(); ++i) out.push_back(r.i64(i, 0));
    return out;
  }

  std::vector<LineRow> lines_after(const std::string& batch_id, int64_t after, int64_t limit) override {
    std::lock_guard<std::mutex> lk(mu_);
    Result r = db_.q("SELECT line_no, custom_id, ok, json FROM batch_lines WHERE batch_id = $1 AND "
                     "line_no > $2::bigint ORDER BY line_no LIMIT $3::bigint",
                     {batch_id, n(after), n(limit)});
    std::vector<LineRow> out;
    for (int i = 0; i < r.rows(); ++i) out.push_back({r.i64(i, 0), r.str(i, 1), r.str(i, 2) == "t", r.str(i, 3)});
    return out;
  }

  bool finalize(const BatchRec& b, const std::vector<FileRec>& files, const std::string& from_status) override {
    std::lock_guard<std::mutex> lk(mu_);
    bool done = false;
    tx([&] {
      if (!update_row(b, from_status)) return;  // (committed empty: nothing changed)
      for (const FileRec& f : files) {
        db_.q("DELETE FROM batch_files WHERE id = $1", {f.id});  // a repeated finalize writes the same ids
        insert_file(f);
      }
      done = true;
    });
    return done;
  }

 private:
  template <class F>
  void tx(F&& body) {
    db_.q("BEGIN");
    try {
      body();
      db_.q("COMMIT");
    } catch (...) {
      db_.rollback_quietly();
      throw;
    }
  }

  static void write_all(int fd, const std::string& data, const std::string& dir) {
    size_t off = 0;
    while (off < data.size()) {
      const ssize_t w = ::write(fd, data.data() + off, data.size() - off);
      if (w < 0 && errno == EINTR) continue;
      if (w <= 0) throw Error(ErrorKind::Internal, "cannot write in " + dir + ": " + std::strerror(errno));
      off += static_cast<size_t>(w);
    }
  }

  // The record and its bytes, read from f.path a chunk at a time (inside the caller's transaction).
  void insert_file(const FileRec& f) {
    db_.q("INSERT INTO batch_files (id, owner, purpose, filename, bytes, created_at) VALUES ($1, $2, $3, $4, "
          "$5::bigint, $6::bigint)",
          {f.id, f.owner, f.purpose, f.filename, n(f.bytes), n(f.created_at)});
    UniqueFd in(::open(f.path.c_str(), O_RDONLY | O_CLOEXEC));
    if (in.get() < 0) throw Error(ErrorKind::Internal, "cannot read " + f.path + ": " + std::strerror(errno));
    std::string buf(kChunk, '\0');
    int64_t total = 0;
    for (int c = 0;; ++c) {
      size_t have = 0;
      while (have < kChunk) {
        const ssize_t r = ::read(in.get(), buf.data() + have, kChunk - have);
        if (r < 0 && errno == EINTR) continue;
        if (r < 0) throw Error(ErrorKind::Internal, "cannot read " + f.path + ": " + std::strerror(errno));
        if (r == 0) break;
        have += static_cast<size_t>(r);
      }
      if (have == 0) break;
      db_.q("INSERT INTO batch_file_chunks (file_id, n, data) VALUES ($1, $2::int, $3)",
            {f.id, n(c), Param::bytes(buf.data(), have)});
      total += static_cast<int64_t>(have);
      if (have < kChunk) break;
    }
    if (total != f.bytes)
      throw Error(ErrorKind::Internal, f.path + " has " + std::to_string(total) + " bytes, not " + n(f.bytes));
  }

  bool update_row(const BatchRec& b, const std::string& from_status) {
    return db_.q("UPDATE batch_batches SET status = $2, output_file_id = $3, error_file_id = $4, "
                 "in_progress_at = $5::bigint, finalizing_at = $6::bigint, completed_at = $7::bigint, "
                 "failed_at = $8::bigint, expired_at = $9::bigint, cancelling_at = $10::bigint, "
                 "cancelled_at = $11::bigint, total = $12::bigint, errors = $13 WHERE id = $1 AND status = $14",
                 {b.id, b.status, b.output_file_id, b.error_file_id, n(b.in_progress_at), n(b.finalizing_at),
                  n(b.completed_at), n(b.failed_at), n(b.expired_at), n(b.cancelling_at), n(b.cancelled_at),
                  n(b.total), b.errors, from_status})
               .affected() > 0;
  }

  pg::Conn db_;
  std::mutex mu_;
};

}  // namespace

std::unique_ptr<BatchStore> make_pg_batch_store(const std::string& url) {
  return std::make_unique<PgBatchStore>(url);
}

}  // namespace ms::batch
