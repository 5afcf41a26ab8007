// batch_store.h — durable state of the Files and Batch APIs: file records,
// batch records and one row per finished batch line, in SQLite (WAL,
// synchronous=NORMAL; every statement prepared with bound parameters).
//
// The file is batch.db under --data-dir (default with a --state file:
// STATE.files/), beside the governance state, not inside it. A line's result is committed in the same
// transaction that marks it done, and the output/error files are written
// from these rows at finalize — so a crash can neither lose a committed
// line nor write one twice. Thread-safe (one connection, a mutex).
#pragma once
#include <cstdint>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <vector>

struct sqlite3;

namespace ms::batch {

struct FileRec {
  std::string id;        // "file-..."
  std::string owner;     // governance key id ("" when governance is off)
  std::string purpose;   // "batch" | "batch_output"
  std::string filename;
  std::string path;      // on disk, under the files directory
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

class BatchStore {
 public:
  explicit BatchStore(const std::string& db_path);  // creates (0600) and migrates; Error(BadInput) when unusable
  ~BatchStore();
  BatchStore(const BatchStore&) = delete;
  BatchStore& operator=(const BatchStore&) = delete;

  void put_file(const FileRec& f);
  std::optional<FileRec> get_file(const std::string& id);
  // Newest first; owner "" with all_owners: every file. `after`: the id to continue after.
  std::vector<FileRec> list_files(const std::string& owner, bool all_owners, const std::string& purpose,
                                  const std::string& after, int64_t limit);
  bool delete_file(const std::string& id);

  void put_batch(const BatchRec& b);     // insert
  void update_batch(const BatchRec& b);  // every column but id, owner, counts
  std::optional<BatchRec> get_batch(const std::string& id);
  std::vector<BatchRec> list_batches(const std::string& owner, bool all_owners, const std::string& after,
                                     int64_t limit);
  // Batches with work left (validating, in_progress, cancelling, finalizing), oldest first.
  std::vector<std::string> unfinished();

  // One transaction: the rows (a line already recorded is kept as it was).
  void add_lines(const std::string& batch_id, const std::vector<LineRow>& rows);
  std::vector<int64_t> done_lines(const std::string& batch_id);
  // Up to `limit` rows with line_no > after, by line_no (finalize pages through them).
  std::vector<LineRow> lines_after(const std::string& batch_id, int64_t after, int64_t limit);
  // One transaction: the result files' records and the batch's new state.
  void finalize(const BatchRec& b, const std::vector<FileRec>& files);

 private:
  void exec(const std::string& sql);
  std::mutex mu_;
  sqlite3* db_ = nullptr;
  std::string path_;
};

}  // namespace ms::batch
