// batch_service.h — the Files and Batch APIs' logic: files on disk with
// their records, batches and their status machine, and one runner thread that
// feeds batch lines to an Executor (the server's generation path, at the
// Batch priority), never more than `window` lines in flight.
//
// Status machine (OpenAI's): validating -> in_progress -> finalizing ->
// completed; validating -> failed (the input file cannot be used);
// cancel: validating|in_progress -> cancelling -> cancelled (partial results);
// past expires_at: -> expired (finished lines kept, the rest in the error
// file with code batch_expired). Per-line errors never fail a batch.
//
// Durability: each finished line is committed to the store with its output
// line; the output and error files are written from the store at finalize
// (to a temporary name, fsync, rename) under ids derived from the batch id,
// so after kill -9 the runner resumes unfinished batches without redoing
// committed lines and a repeated finalize rewrites the same files.
//
// Replicas (a PostgreSQL store): every replica runs a runner, and a batch
// runs on the one that holds its lease (BatchStore::claim), renewed every
// lease/3 while it runs and released at a clean stop. A replica killed
// mid-batch leaves its lease to expire; another then takes the batch over
// from its committed lines (a line finished twice in that window is
// recorded once). The runner reads the batch's status with each renewal,
// so a cancel sent to any replica reaches it.
#pragma once
#include <atomic>
#include <condition_variable>
#include <cstdint>
#include <deque>
#include <functional>
#include <memory>
#include <mutex>
#include <set>
#include <string>
#include <thread>
#include <vector>

#include "batch/batch_lines.h"
#include "batch/batch_store.h"
#include "core/file_util.h"

namespace ms::batch {

// One line to run: POST `url` with `body` as the key `owner` ("" = none).
struct LineTask {
  std::string batch_id;
  int64_t line_no = 0;
  std::string owner, url, body;
};

// Runs lines asynchronously; `done` is called exactly once per submit, on any thread.
class Executor {
 public:
  virtual ~Executor() = default;
  virtual void submit(LineTask t, std::function<void(Outcome)> done) = 0;
  // Cancels the batch's lines in flight (their `done` still comes, and is ignored).
  virtual void cancel_batch(const std::string& batch_id) = 0;
  // Lines in flight allowed now, out of the configured window: an executor
  // that sees online traffic may answer less, so batch work yields to it.
  virtual int window(int configured) { return configured; }
};

// An error for the API caller: HTTP status, OpenAI error type/code/param.
struct ApiFailure {
  int status;
  std::string code, message, param;
};
struct Failure : std::exception {
  explicit Failure(ApiFailure f) : f(std::move(f)) {}
  const char* what() const noexcept override { return f.message.c_str(); }
  ApiFailure f;
};

struct ServiceOptions {
  std::string state;       // the store: a SQLite file (DATA_DIR/batch.db) or a postgresql:// URL
  std::string files_dir;   // the files (SQLite store), or the spool for uploads and copies (PostgreSQL)
  int64_t max_file_bytes = 200ll << 20;
  int64_t max_lines = 50000;
  int window = 64;         // batch lines in flight at most
  int64_t expiry_s = 24 * 3600;  // how long the "24h" completion window lasts (shorter: tests)
  int64_t lease_ms = 30000;      // a runner's hold on a batch (PostgreSQL): how long a dead replica's batch waits
  // This replica in the store's leases; "" gives each process a fresh id. A
  // stable one (the pod's name) lets a replica restarted after a crash take
  // its own batches back at once instead of after lease_ms. Two live
  // replicas must never share one.
  std::string runner_id;
};

class BatchService {
 public:
  explicit BatchService(ServiceOptions o);  // opens the store and the directory (Error(BadInput) when unusable)
  ~BatchService();                          // stop()
  BatchService(const BatchService&) = delete;
  BatchService& operator=(const BatchService&) = delete;

  const ServiceOptions& options() const { return opts_; }
  BatchStore& store() { return *store_; }

  // The runner starts once an executor is set (the model is loaded).
  void start(Executor* ex);
  // Stops dispatching and joins the runner; lines in flight are not recorded
  // (they run again after a restart).
  void stop();

  // Files. `owner` scopes everything (a key sees its own files and batches).
  FileRec create_file(const std::string& owner, const std::string& purpose, const std::string& filename,
                      const std::string& content);
  // A streamed upload: the caller writes the file to upload_path() (a name in
  // the files directory that a restart removes), checks its size and JSONL,
  // then adopt_file() checks the purpose and makes it a file (rename, record).
  std::string upload_path() const;
  void check_purpose(const std::string& purpose) const;  // Failure when it is not "batch"
  FileRec adopt_file(const std::string& owner, const std::string& purpose, const std::string& filename,
                     const std::string& part_path, int64_t bytes);
  FileRec get_file(const std::string& owner, const std::string& id);
  std::vector<FileRec> list_files(const std::string& owner, const std::string& purpose, const std::string& after,
                                  int64_t limit);
  // A file's content for the caller to stream: read in order, without a
  // copy (BatchStore::read_content), and its size. Failure 404 when the file
  // is gone.
  struct Content {
    std::unique_ptr<ContentReader> reader;
    int64_t size = 0;
  };
  std::shared_ptr<Content> open_content(const std::string& owner, const std::string& id);
  void delete_file(const std::string& owner, const std::string& id);

  // Batches.
  BatchRec create_batch(const std::string& owner, const std::string& input_file_id, const std::string& endpoint,
                        const std::string& completion_window, const std::string& metadata_json);
  BatchRec get_batch(const std::string& owner, const std::string& id);
  std::vector<BatchRec> list_batches(const std::string& owner, const std::string& after, int64_t limit);
  BatchRec cancel_batch(const std::string& owner, const std::string& id);

 private:
  // A new file's record (id, path in the files dir, time); not stored yet.
  FileRec new_file(const std::string& owner, const std::string& purpose, const std::string& filename,
                   int64_t bytes) const;
  void runner_loop();
  void run_batch(const std::string& id);
  // The lines' loop; `lost`: set when another runner took the batch's lease.
  void run_lines(BatchRec& b, std::vector<InputLine>& lines, UniqueFd& in, bool& lost);
  // `in`: the input file, open while its batch runs.
  bool validate(BatchRec& b, std::vector<InputLine>& lines, UniqueFd& in);
  // From b.status, which the stored batch must still have (compare-and-set):
  // a batch whose status changed meanwhile is left for the next pass.
  void finalize(BatchRec& b, const std::string& final_status);
  // Records a file written at f.path (removed if that fails); returns it.
  FileRec record_file(const FileRec& f);
  // The local copy of a file the store keeps (PostgreSQL) is not needed once stored.
  void drop_local_copy(const std::string& path) const;
  int64_t now_s() const;

  ServiceOptions opts_;
  std::shared_ptr<BatchStore> store_;  // shared with the readers of downloads in flight
  const std::string runner_id_;  // opts_.runner_id, or a fresh id for this process
  Executor* ex_ = nullptr;

  std::mutex mu_;
  std::condition_variable cv_;
  bool stop_ = false;
  bool wake_ = false;
  std::set<std::string> cancel_requested_;
  struct Result {
    std::string batch_id;
    int64_t line_no;
    Outcome o;
  };
  std::deque<Result> results_;
  std::thread runner_;
};

}  // namespace ms::batch
