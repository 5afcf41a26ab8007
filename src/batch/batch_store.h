// batch_store.h — durable state of the Files and Batch APIs: file records
// (and, in a shared store, the files' bytes), batch records and one row per
// finished batch line. Two implementations behind one interface:
//   - SQLite (batch_store_sqlite.cpp): DATA_DIR/batch.db, the files' bytes in
//     the files directory; servers on one machine may share it, and one of
//     them (a flock) runs the batches.
//   - PostgreSQL (batch_store_pg.cpp): the governance database of replicas,
//     the files' bytes in it too (1 MiB chunks), so every replica sees every
//     file and batch; a batch runs on the replica that holds its lease.
// A line's result is committed in the same transaction that marks it done,
// and the output/error files are written from these rows at finalize — so a
// crash can neither lose a committed line nor write one twice. Status
// changes are compare-and-set on the stored status, so a cancel from one
// replica is never overwritten by the runner on another. Every statement is
// prepared with bound parameters. Thread-safe (one connection, a mutex).
#pragma once
#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "core/file_util.h"

namespace ms::batch {

struct FileRec {
  std::string id;        // "file-..."
  std::string owner;     // governance key id ("" when governance is off)
  std::string purpose;   // "batch" | "batch_output"
  std::string filename;
  std::string path;      // the bytes on disk (SQLite store); where they were written before put_file (PostgreSQL)
  int64_t bytes = 0;
  int64_t created_at = 0;  // unix seconds
};

// Times are unix seconds; 0 = not reached (JSON null).
struct BatchRec {
  std::string id;  // "batch_..."
  std::string owner;
  std::string endpoint;           // "/v1/chat/completions" | "/v1/completions"
  std::string input_file_id;
  std::string completion_window;  // "24h"
  std::string status;             // validating, in_progress, finalizing, completed, failed, cancelling, cancelled, expired
  std::string output_file_id, error_file_id;  // "" = null
  int64_t created_at = 0, in_progress_at = 0, expires_at = 0, finalizing_at = 0, completed_at = 0, failed_at = 0,
          expired_at = 0, cancelling_at = 0, cancelled_at = 0;
  int64_t total = 0;      // lines in the input file (set when validated)
  int64_t completed = 0;  // lines answered 200 (read from the line rows)
  int64_t failed = 0;     // lines in the error file (read from the line rows)
  std::string metadata;   // JSON object text, "" = null
  std::string errors;     // JSON array of {code, message, param, line} (validation), "" = null
};

// One finished line: its output (ok) or error-file line, as JSON text.
struct LineRow {
  int64_t line_no = 0;  // 0-based in the input file
  std::string custom_id;
  bool ok = false;
  std::string json;
};

// A file's bytes in order, read once from the start, as a download sends
// them.
class ContentReader {
 public:
  virtual ~ContentReader() = default;
  // Up to n bytes from where the last read ended; 0 at the end. Throws
  // Error(Internal) when the rest is gone (the file deleted meanwhile) or
  // cannot be read.
  virtual size_t read(char* p, size_t n) = 0;
};

// Held by shared_ptr (open_batch_store's unique_ptr converts): a
// ContentReader keeps its store alive.
class BatchStore : public std::enable_shared_from_this<BatchStore> {
 public:
  virtual ~BatchStore() = default;
  virtual std::string kind() const = 0;  // "sqlite" | "postgresql"

  // Files. put_file records `f`; a store that keeps_content() also copies
  // the bytes at f.path into itself in the same transaction (the caller then
  // removes f.path), otherwise the bytes stay at f.path.
  virtual bool keeps_content() const = 0;
  virtual void put_file(const FileRec& f) = 0;
  virtual std::optional<FileRec> get_file(const std::string& id) = 0;
  // Newest first; owner "" with all_owners: every file. `after`: the id to continue after.
  virtual std::vector<FileRec> list_files(const std::string& owner, bool all_owners, const std::string& purpose,
                                          const std::string& after, int64_t limit) = 0;
  virtual bool delete_file(const std::string& id) = 0;  // the record (and the bytes the store keeps)
  // The file's bytes open for reading from offset 0: f.path itself, or an
  // unlinked copy the store writes under `spool_dir` a chunk at a time.
  // An invalid descriptor when they are gone.
  virtual UniqueFd open_content(const FileRec& f, const std::string& spool_dir) = 0;
  // The file's bytes for one pass in order, without a copy: f.path as it is
  // read, or one stored chunk at a time (the first fetched here). nullptr
  // when they are gone.
  virtual std::unique_ptr<ContentReader> read_content(const FileRec& f) = 0;

  virtual void put_batch(const BatchRec& b) = 0;  // insert
  // Every column but id, owner and the counts, when the stored status is
  // `from_status` (compare-and-set); false when it is not (someone else
  // changed it: read it again).
  virtual bool update_batch(const BatchRec& b, const std::string& from_status) = 0;
  virtual std::optional<BatchRec> get_batch(const std::string& id) = 0;
  virtual std::vector<BatchRec> list_batches(const std::string& owner, bool all_owners, const std::string& after,
                                             int64_t limit) = 0;
  // Batches with work left (validating, in_progress, cancelling, finalizing), oldest first.
  virtual std::vector<std::string> unfinished() = 0;
  // Takes or renews `runner`'s lease on the batch for lease_ms: the batch's
  // status when `runner` holds it now, "" when another runner's lease is
  // live (or the batch is gone). In the SQLite store one process holds every
  // batch, for as long as it lives.
  virtual std::string claim(const std::string& id, const std::string& runner, int64_t lease_ms) = 0;
  virtual void release(const std::string& id, const std::string& runner) = 0;  // a clean stop: no wait for expiry

  // One transaction: the rows (a line already recorded is kept as it was).
  virtual void add_lines(const std::string& batch_id, const std::vector<LineRow>& rows) = 0;
  virtual std::vector<int64_t> done_lines(const std::string& batch_id) = 0;
  // Up to `limit` rows with line_no > after, by line_no (finalize pages through them).
  virtual std::vector<LineRow> lines_after(const std::string& batch_id, int64_t after, int64_t limit) = 0;
  // One transaction: the result files' records (and bytes, as put_file) and
  // the batch's new state, when its stored status is `from_status`.
  virtual bool finalize(const BatchRec& b, const std::vector<FileRec>& files, const std::string& from_status) = 0;
};

// LOCATION: a postgresql:// URL, or the path of the SQLite file (created
// 0600). Error(BadInput) when it cannot be opened, migrated or locked.
std::unique_ptr<BatchStore> open_batch_store(const std::string& location);

}  // namespace ms::batch
