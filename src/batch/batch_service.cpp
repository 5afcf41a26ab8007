// batch_service.cpp — files, batches and the runner (see batch_service.h).
#include "batch/batch_service.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <chrono>
#include <cstring>
#include <ctime>
#include <filesystem>
#include <unordered_set>

#include <nlohmann/json.hpp>

#include "core/error.h"
#include "core/file_util.h"

namespace ms::batch {

using json = nlohmann::json;

namespace {

[[noreturn]] void fail(int status, const std::string& code, const std::string& message, const std::string& param = "") {
  throw Failure(ApiFailure{status, code, message, param});
}

// A file written atomically: appended to a temporary file, which commit()
// fsyncs and renames over `path` (then fsyncs the directory); dropped
// without commit(), the temporary file is removed.
class AtomicFile {
 public:
  explicit AtomicFile(std::string path) : path_(std::move(path)), tmp_(path_ + ".tmp") {
    fd_ = ::open(tmp_.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
    if (fd_ < 0) throw Error(ErrorKind::Internal, "cannot write " + tmp_ + ": " + std::strerror(errno));
  }
  AtomicFile(const AtomicFile&) = delete;
  AtomicFile& operator=(const AtomicFile&) = delete;
  ~AtomicFile() {
    if (fd_ >= 0) ::close(fd_);
    if (!committed_) ::unlink(tmp_.c_str());
  }
  void append(const char* p, size_t n) {
    size_t off = 0;
    while (off < n) {
      const ssize_t w = ::write(fd_, p + off, n - off);
      if (w < 0) {
        if (errno == EINTR) continue;
        throw Error(ErrorKind::Internal, "cannot write " + tmp_ + ": " + std::strerror(errno));
      }
      off += static_cast<size_t>(w);
    }
    bytes_ += static_cast<int64_t>(n);
  }
  int64_t bytes() const { return bytes_; }
  void commit() {
    const int fd = fd_;
    fd_ = -1;
    if (::fsync(fd) != 0 || ::close(fd) != 0)
      throw Error(ErrorKind::Internal, "cannot write " + tmp_ + ": " + std::strerror(errno));
    if (::rename(tmp_.c_str(), path_.c_str()) != 0)
      throw Error(ErrorKind::Internal, "cannot rename " + tmp_ + ": " + std::strerror(errno));
    committed_ = true;
    const std::string dir = std::filesystem::path(path_).parent_path().string();
    int dfd = ::open(dir.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (dfd >= 0) {
      ::fsync(dfd);
      ::close(dfd);
    }
  }

 private:
  std::string path_, tmp_;
  int fd_ = -1;
  int64_t bytes_ = 0;
  bool committed_ = false;
};

void write_atomic(const std::string& path, const std::string& data) {
  AtomicFile f(path);
  f.append(data.data(), data.size());
  f.commit();
}

bool valid_endpoint(const std::string& e) { return e == "/v1/chat/completions" || e == "/v1/completions"; }

}  // namespace

BatchService::BatchService(ServiceOptions o)
    : opts_(std::move(o)), runner_id_(opts_.runner_id.empty() ? new_id("runner-") : opts_.runner_id) {
  std::error_code ec;
  std::filesystem::create_directories(opts_.files_dir, ec);
  if (ec || !std::filesystem::is_directory(opts_.files_dir))
    throw Error(ErrorKind::BadInput, "cannot create the files directory " + opts_.files_dir + ": " + ec.message());
  ::chmod(opts_.files_dir.c_str(), 0700);
  store_ = open_batch_store(opts_.state);  // (first: an unusable store stops the start before any file is touched)
  // Uploads cut off by a crash (upload_path()) and result files a crash cut
  // off mid-write: never files of the API.
  auto ends = [](const std::string& n, const char* suf) {
    const size_t k = std::strlen(suf);
    return n.size() >= k && n.compare(n.size() - k, k, suf) == 0;
  };
  for (const auto& e : std::filesystem::directory_iterator(opts_.files_dir, ec)) {
    const std::string n = e.path().filename().string();
    if ((n.rfind("upload-", 0) == 0 && ends(n, ".part")) || ends(n, ".jsonl.tmp")) std::filesystem::remove(e.path(), ec);
  }
  if (opts_.window < 1) opts_.window = 1;
}

BatchService::~BatchService() { stop(); }

int64_t BatchService::now_s() const { return static_cast<int64_t>(std::time(nullptr)); }

void BatchService::start(Executor* ex) {
  std::lock_guard<std::mutex> lk(mu_);
  if (runner_.joinable() || !ex) return;
  ex_ = ex;
  stop_ = false;
  runner_ = std::thread([this] { runner_loop(); });
}

void BatchService::stop() {
  {
    std::lock_guard<std::mutex> lk(mu_);
    stop_ = true;
  }
  cv_.notify_all();
  if (runner_.joinable()) runner_.join();
}

// ---- files -----------------------------------------------------------------

FileRec BatchService::create_file(const std::string& owner, const std::string& purpose, const std::string& filename,
                                  const std::string& content) {
  check_purpose(purpose);
  if (static_cast<int64_t>(content.size()) > opts_.max_file_bytes)
    fail(413, "file_too_large",
         "The file is " + std::to_string(content.size()) + " bytes; the limit is " +
             std::to_string(opts_.max_file_bytes) + " bytes.",
         "file");
  std::string bad = check_jsonl(content);
  if (!bad.empty())
    fail(400, "invalid_file_format", "Invalid file format for Batch API: a JSONL file is expected (" + bad + ").",
         "file");
  FileRec f = new_file(owner, purpose, filename, static_cast<int64_t>(content.size()));
  write_atomic(f.path, content);
  return record_file(f);
}

FileRec BatchService::new_file(const std::string& owner, const std::string& purpose, const std::string& filename,
                               int64_t bytes) const {
  FileRec f;
  f.id = new_id("file-");
  f.owner = owner;
  f.purpose = purpose;
  f.filename = filename.empty() ? "upload.jsonl" : filename;
  f.path = opts_.files_dir + "/" + f.id + ".jsonl";
  f.bytes = bytes;
  f.created_at = now_s();
  return f;
}

std::string BatchService::upload_path() const { return opts_.files_dir + "/" + new_id("upload-") + ".part"; }

void BatchService::check_purpose(const std::string& purpose) const {
  if (purpose.empty()) fail(400, "missing_required_parameter", "The 'purpose' field is required.", "purpose");
  if (purpose != "batch")
    fail(400, "invalid_value", "Invalid purpose '" + purpose + "': this server accepts files with purpose 'batch'.",
         "purpose");
}

FileRec BatchService::adopt_file(const std::string& owner, const std::string& purpose, const std::string& filename,
                                 const std::string& part_path, int64_t bytes) {
  check_purpose(purpose);
  FileRec f = new_file(owner, purpose, filename, bytes);
  if (::rename(part_path.c_str(), f.path.c_str()) != 0)
    throw Error(ErrorKind::Internal, "cannot rename " + part_path + ": " + std::strerror(errno));
  int dfd = ::open(opts_.files_dir.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (dfd >= 0) {
    ::fsync(dfd);
    ::close(dfd);
  }
  return record_file(f);
}

FileRec BatchService::record_file(const FileRec& f) {
  try {
    store_->put_file(f);
  } catch (...) {
    ::unlink(f.path.c_str());
    throw;
  }
  drop_local_copy(f.path);
  return f;
}

void BatchService::drop_local_copy(const std::string& path) const {
  if (store_->keeps_content()) ::unlink(path.c_str());
}

FileRec BatchService::get_file(const std::string& owner, const std::string& id) {
  auto f = store_->get_file(id);
  if (!f || f->owner != owner) fail(404, "not_found", "No such File object: " + id, "id");
  return *f;
}

std::vector<FileRec> BatchService::list_files(const std::string& owner, const std::string& purpose,
                                              const std::string& after, int64_t limit) {
  return store_->list_files(owner, false, purpose, after, limit);
}

std::shared_ptr<BatchService::Content> BatchService::open_content(const std::string& owner, const std::string& id) {
  FileRec f = get_file(owner, id);
  auto c = std::make_shared<Content>();
  c->reader = store_->read_content(f);
  if (!c->reader) fail(404, "not_found", "The content of file " + id + " is no longer available.", "id");
  c->size = f.bytes;
  return c;
}

void BatchService::delete_file(const std::string& owner, const std::string& id) {
  FileRec f = get_file(owner, id);
  store_->delete_file(id);
  if (!store_->keeps_content()) ::unlink(f.path.c_str());
}

// ---- batches ---------------------------------------------------------------

BatchRec BatchService::create_batch(const std::string& owner, const std::string& input_file_id,
                                    const std::string& endpoint, const std::string& completion_window,
                                    const std::string& metadata_json) {
  if (input_file_id.empty())
    fail(400, "missing_required_parameter", "The 'input_file_id' field is required.", "input_file_id");
  if (!valid_endpoint(endpoint))
    fail(400, "invalid_value",
         "Invalid endpoint '" + endpoint + "': supported are '/v1/chat/completions' and '/v1/completions'.",
         "endpoint");
  if (completion_window != "24h")
    fail(400, "invalid_value", "Invalid completion_window '" + completion_window + "': only '24h' is supported.",
         "completion_window");
  auto f = store_->get_file(input_file_id);
  if (!f || f->owner != owner) fail(404, "not_found", "No such File object: " + input_file_id, "input_file_id");
  if (f->purpose != "batch")
    fail(400, "invalid_value", "File " + input_file_id + " has purpose '" + f->purpose + "', not 'batch'.",
         "input_file_id");
  BatchRec b;
  b.id = new_id("batch_");
  b.owner = owner;
  b.endpoint = endpoint;
  b.input_file_id = input_file_id;
  b.completion_window = completion_window;
  b.status = "validating";
  b.created_at = now_s();
  b.expires_at = b.created_at + opts_.expiry_s;
  b.metadata = metadata_json;
  store_->put_batch(b);
  {
    std::lock_guard<std::mutex> lk(mu_);
    wake_ = true;
  }
  cv_.notify_all();
  return b;
}

BatchRec BatchService::get_batch(const std::string& owner, const std::string& id) {
  auto b = store_->get_batch(id);
  if (!b || b->owner != owner) fail(404, "not_found", "No such Batch object: " + id, "batch_id");
  return *b;
}

std::vector<BatchRec> BatchService::list_batches(const std::string& owner, const std::string& after, int64_t limit) {
  return store_->list_batches(owner, false, after, limit);
}

BatchRec BatchService::cancel_batch(const std::string& owner, const std::string& id) {
  for (;;) {  // compare-and-set: the runner (here or on another replica) may move it meanwhile
    BatchRec b = get_batch(owner, id);
    if (b.status == "cancelling" || b.status == "cancelled") return b;
    if (b.status != "validating" && b.status != "in_progress")
      fail(409, "invalid_state", "Cannot cancel batch " + id + ": its status is '" + b.status + "'.", "batch_id");
    const std::string from = b.status;
    b.status = "cancelling";
    b.cancelling_at = now_s();
    if (store_->update_batch(b, from)) break;
  }
  {
    std::lock_guard<std::mutex> lk(mu_);
    cancel_requested_.insert(id);
    wake_ = true;
  }
  cv_.notify_all();
  return get_batch(owner, id);
}

// ---- the runner ------------------------------------------------------------

void BatchService::runner_loop() {
  for (;;) {
    {
      std::lock_guard<std::mutex> lk(mu_);
      if (stop_) return;
    }
    std::vector<std::string> work;
    try {
      work = store_->unfinished();
    } catch (const std::exception& e) {
      std::fprintf(stderr, "moeserve: batch: %s\n", e.what());
    }
    for (const std::string& id : work) {
      {
        std::lock_guard<std::mutex> lk(mu_);
        if (stop_) return;
      }
      try {
        run_batch(id);
      } catch (const std::exception& e) {
        std::fprintf(stderr, "moeserve: batch %s: %s\n", id.c_str(), e.what());
      }
    }
    std::unique_lock<std::mutex> lk(mu_);
    cv_.wait_for(lk, std::chrono::seconds(1), [this] { return stop_ || wake_; });
    wake_ = false;
  }
}

bool BatchService::validate(BatchRec& b, std::vector<InputLine>& lines, UniqueFd& in) {
  auto f = store_->get_file(b.input_file_id);
  std::string code, message;
  if (!f) {
    code = "invalid_file", message = "The input file " + b.input_file_id + " was deleted.";
  } else {
    // Read in chunks, one line at a time; the lines keep their offsets, and
    // each body is read again when its line runs (read_input_body), from
    // this descriptor: a file deleted during the run stays readable to it.
    try {
      in = store_->open_content(*f, opts_.files_dir);
      if (in.get() < 0) throw Error(ErrorKind::BadInput, "cannot open");
      lines = parse_input_file(in.get(), b.endpoint);
    } catch (const Error&) {
      code = "invalid_file", message = "The input file " + b.input_file_id + " cannot be read.";
    }
  }
  if (code.empty()) {
    if (lines.empty()) code = "empty_file", message = "The input file has no requests.";
    else if (static_cast<int64_t>(lines.size()) > opts_.max_lines)
      code = "too_many_requests", message = "The input file has " + std::to_string(lines.size()) +
                                            " requests; the limit is " + std::to_string(opts_.max_lines) + ".";
  }
  if (!code.empty()) {
    b.errors = json{{"object", "list"}, {"data", json::array({json{{"code", code}, {"message", message},
                                                                   {"param", "input_file_id"}, {"line", nullptr}}})}}
                   .dump();
    const std::string from = b.status;
    b.status = "failed";
    b.failed_at = now_s();
    store_->update_batch(b, from);  // (a cancel that came first wins: the next pass finalizes it)
    return false;
  }
  b.total = static_cast<int64_t>(lines.size());
  return true;
}

void BatchService::run_batch(const std::string& id) {
  // Only the lease holder runs a batch; the lease goes back at a clean stop.
  if (store_->claim(id, runner_id_, opts_.lease_ms).empty()) return;
  bool lost = false;
  struct Release {
    BatchService* s;
    const std::string& id;
    bool& lost;
    ~Release() {
      if (lost) return;
      try {
        s->store_->release(id, s->runner_id_);
      } catch (const std::exception&) {  // (it expires)
      }
    }
  } release{this, id, lost};
  auto rec = store_->get_batch(id);
  if (!rec) return;
  BatchRec b = *rec;
  if (b.status == "finalizing") return finalize(b, "completed");
  if (b.status == "cancelling") return finalize(b, "cancelled");
  std::vector<InputLine> lines;
  UniqueFd in;
  const int64_t old_total = b.total;
  if (!validate(b, lines, in)) return;
  if (b.status == "validating") {
    b.status = "in_progress";
    b.in_progress_at = now_s();
    if (!store_->update_batch(b, "validating")) return;  // cancelled meanwhile: the next pass
  } else if (b.total != old_total) {
    if (!store_->update_batch(b, b.status)) return;
  }
  run_lines(b, lines, in, lost);
}

void BatchService::run_lines(BatchRec& b, std::vector<InputLine>& lines, UniqueFd& in, bool& lost) {
  const std::string& id = b.id;
  std::unordered_set<int64_t> done;
  for (int64_t n : store_->done_lines(id)) done.insert(n);
  std::vector<LineRow> invalid;
  std::deque<size_t> pending;
  for (size_t i = 0; i < lines.size(); ++i) {
    const InputLine& l = lines[i];
    if (done.count(l.line_no)) continue;
    if (!l.error_code.empty()) {
      invalid.push_back({l.line_no, l.custom_id, false, error_line(l.custom_id, l.error_code, l.error_message)});
    } else {
      pending.push_back(i);
    }
  }
  store_->add_lines(id, invalid);

  // Results come back on the executor's threads into this inbox.
  struct Inbox {
    std::mutex mu;
    std::deque<std::pair<size_t, Outcome>> q;
  };
  auto inbox = std::make_shared<Inbox>();
  int inflight = 0;
  bool cancelled = false, expired = false, cancel_sent = false;
  auto retry_at = std::chrono::steady_clock::now();
  const auto renew_every = std::chrono::milliseconds(std::max<int64_t>(100, opts_.lease_ms / 3));
  auto renew_at = std::chrono::steady_clock::now() + renew_every;
  for (;;) {
    std::deque<std::pair<size_t, Outcome>> got;
    {
      std::lock_guard<std::mutex> lk(inbox->mu);
      got.swap(inbox->q);
    }
    std::vector<LineRow> rows;
    for (auto& [i, o] : got) {
      --inflight;
      if (cancelled) continue;
      if (o.retry) {  // (after expiry: a line cut off, in the error file as batch_expired)
        pending.push_front(i);
        retry_at = std::chrono::steady_clock::now() + std::chrono::milliseconds(200);
        continue;
      }
      bool ok = false;
      std::string line = output_line(lines[i].custom_id, o, ok);
      rows.push_back({lines[i].line_no, lines[i].custom_id, ok, std::move(line)});
    }
    store_->add_lines(id, rows);
    bool stopping = false;
    {
      std::lock_guard<std::mutex> lk(mu_);
      stopping = stop_;
      if (!stopping && cancel_requested_.erase(id)) cancelled = true;
    }
    if (!stopping && !cancelled && std::chrono::steady_clock::now() >= renew_at) {
      // Renew the lease; the status it returns carries a cancel sent to another replica.
      renew_at = std::chrono::steady_clock::now() + renew_every;
      const std::string st = store_->claim(id, runner_id_, opts_.lease_ms);
      if (st.empty()) lost = true;
      else if (st == "cancelling") cancelled = true;
    }
    if (stopping || lost) {  // (the executor may answer from inside cancel_batch: not under mu_)
      if (inflight > 0) ex_->cancel_batch(id);
      if (lost) std::fprintf(stderr, "moeserve: batch %s: another replica holds it now; stopped here\n", id.c_str());
      return;  // in-flight lines run again after a restart (or on the replica that took it)
    }
    if (!cancelled && !expired && now_s() >= b.expires_at) expired = true;
    if ((cancelled || expired) && !cancel_sent) {
      cancel_sent = true;
      if (inflight > 0) ex_->cancel_batch(id);
    }
    if ((cancelled || expired) && inflight == 0) break;
    if (!cancelled && !expired) {
      const int allowed = ex_->window(opts_.window);
      while (inflight < allowed && !pending.empty() && std::chrono::steady_clock::now() >= retry_at) {
        size_t i = pending.front();
        pending.pop_front();
        std::string body;
        try {
          body = read_input_body(in.get(), lines[i]);
        } catch (const Error& e) {  // the file was changed in place: this line cannot run
          store_->add_lines(id, {{lines[i].line_no, lines[i].custom_id, false, unreadable_line(lines[i].custom_id, e)}});
          continue;
        }
        ++inflight;
        LineTask t{id, lines[i].line_no, b.owner, lines[i].url, std::move(body)};
        std::weak_ptr<Inbox> wi = inbox;
        ex_->submit(std::move(t), [wi, i, this](Outcome o) {
          if (auto in = wi.lock()) {
            {
              std::lock_guard<std::mutex> lk(in->mu);
              in->q.emplace_back(i, std::move(o));
            }
            {
              std::lock_guard<std::mutex> lk(mu_);
              wake_ = true;
            }
            cv_.notify_all();
          }
        });
      }
      if (pending.empty() && inflight == 0) break;
    }
    std::unique_lock<std::mutex> lk(mu_);
    cv_.wait_for(lk, std::chrono::milliseconds(100), [this] { return stop_ || wake_; });
    wake_ = false;
  }

  if (cancelled) {
    auto cur = store_->get_batch(id);
    if (cur) b = *cur;
    return finalize(b, "cancelled");
  }
  if (expired) {
    std::vector<LineRow> rows;
    for (size_t i : pending)
      rows.push_back({lines[i].line_no, lines[i].custom_id, false,
                      error_line(lines[i].custom_id, "batch_expired",
                                 "This request could not be executed before the completion window expired.")});
    store_->add_lines(id, rows);
    return finalize(b, "expired");
  }
  b.status = "finalizing";
  b.finalizing_at = now_s();
  if (!store_->update_batch(b, "in_progress")) return;  // cancelled meanwhile: the next pass finalizes that
  finalize(b, "completed");
}

void BatchService::finalize(BatchRec& b, const std::string& final_status) {
  // The output and error files, written from the line rows a page at a time
  // (a batch's results are never all in memory at once).
  const std::string suffix = b.id.substr(b.id.find('_') + 1);
  FileRec recs[2];  // output, error
  std::unique_ptr<AtomicFile> out[2];
  for (int k = 0; k < 2; ++k) {
    FileRec& f = recs[k];
    f.id = std::string(k == 0 ? "file-out-" : "file-err-") + suffix;
    f.owner = b.owner;
    f.purpose = "batch_output";
    f.filename = b.id + (k == 0 ? "_output.jsonl" : "_error.jsonl");
    f.path = opts_.files_dir + "/" + f.id + ".jsonl";
    f.created_at = now_s();
    out[k] = std::make_unique<AtomicFile>(f.path);
  }
  constexpr int64_t kPage = 1024;
  for (int64_t after = -1;;) {
    const std::vector<LineRow> rows = store_->lines_after(b.id, after, kPage);
    for (const LineRow& r : rows) {
      AtomicFile& f = *out[r.ok ? 0 : 1];
      f.append(r.json.data(), r.json.size());
      f.append("\n", 1);
    }
    if (static_cast<int64_t>(rows.size()) < kPage) break;
    after = rows.back().line_no;
  }
  std::vector<FileRec> files;
  for (int k = 0; k < 2; ++k) {
    if (out[k]->bytes() == 0) continue;  // no such lines: no file (its temporary file is removed)
    out[k]->commit();
    recs[k].bytes = out[k]->bytes();
    (k == 0 ? b.output_file_id : b.error_file_id) = recs[k].id;
    files.push_back(recs[k]);
  }
  const int64_t t = now_s();
  if (final_status == "completed") b.completed_at = t;
  else if (final_status == "cancelled") b.cancelled_at = t;
  else if (final_status == "expired") b.expired_at = t;
  const std::string from = b.status;
  b.status = final_status;
  store_->finalize(b, files, from);  // (false: its status changed meanwhile; the next pass finalizes that)
  for (const FileRec& f : files) drop_local_copy(f.path);
}

}  // namespace ms::batch
