// cmd_batch.cpp — `moeserve batch -i IN.jsonl -o OUT.jsonl [--errors ERR.jsonl] [--resume]`:
// the Batch API's line format offline, in-process: every line of IN runs
// through the server's generation path (server/batch_executor.h) with up to
// --window lines in flight, and its output line is appended to OUT (or to
// ERR when it failed and --errors is given) as soon as it finishes.
//
// Resumable: an output line is appended whole (one write); --resume reads
// OUT and ERR, cuts a torn last line left by a crash, and runs only the
// lines whose custom_id is in neither — so after kill -9 and --resume every
// custom_id appears exactly once. Progress on a terminal (stderr): lines
// done/total, tok/s, ETA; then one summary line.
#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <chrono>
#include <condition_variable>
#include <cstdio>
#include <deque>
#include <filesystem>
#include <mutex>
#include <unordered_set>

#include <nlohmann/json.hpp>

#include "batch/batch_lines.h"
#include "cli_common.h"
#include "commands.h"
#include "core/error.h"
#include "core/file_util.h"
#include "server/api_context.h"
#include "server/batch_executor.h"

namespace ms::cli {

namespace {

using json = nlohmann::json;

struct BatchArgs {
  RuntimeOptions rt;
  std::string in, out, errors, served_name;
  bool resume = false;
  int max_batch = 64;
  int window = 0;
  int64_t kv_cache_mb = 0;
};

std::string name_from_path(const std::string& path) {
  std::filesystem::path p(path);
  if (!p.has_filename()) p = p.parent_path();
  if (p.extension() == ".gguf") return p.stem().string();
  return p.filename().string();
}

// A result file opened for appending. With `resume`, a torn last line is cut
// and the custom_ids already there are collected (null ones counted).
class ResultFile {
 public:
  ResultFile(const std::string& path, bool resume, std::unordered_set<std::string>& done, int64_t& null_ids) : path_(path) {
    struct stat st{};
    const bool exists = ::stat(path.c_str(), &st) == 0 && st.st_size > 0;
    if (exists && !resume) bad_input(path + " exists and is not empty: pass --resume to continue it, or remove it");
    fd_ = ::open(path.c_str(), O_RDWR | O_CREAT | O_CLOEXEC, 0644);
    if (fd_ < 0) bad_input("cannot open " + path + " for writing");
    if (exists) {  // read in chunks, one line at a time
      auto note = [&](const std::string& line) {
        json j = json::parse(line, nullptr, false);
        if (j.is_object() && j.contains("custom_id")) {
          if (j["custom_id"].is_string()) done.insert(j["custom_id"].get<std::string>());
          else ++null_ids;
        }
      };
      off_t keep = 0;  // the end of the last whole line
      batch::for_each_file_line(fd_, [&](const std::string& line, int64_t offset, bool terminated) {
        if (!terminated) return;  // torn by a crash: cut below
        note(line);
        keep = static_cast<off_t>(offset + static_cast<int64_t>(line.size()) + 1);
      });
      if (keep < st.st_size && ::ftruncate(fd_, keep) != 0) bad_input("cannot truncate " + path);
    }
    ::lseek(fd_, 0, SEEK_END);
  }
  ~ResultFile() {
    if (fd_ >= 0) ::close(fd_);
  }
  void append(const std::string& line) {  // one write: the line lands whole or is cut on resume
    std::string s = line + "\n";
    size_t off = 0;
    while (off < s.size()) {
      ssize_t n = ::write(fd_, s.data() + off, s.size() - off);
      if (n < 0 && errno == EINTR) continue;
      if (n < 0) throw Error(ErrorKind::Internal, "cannot write " + path_);
      off += static_cast<size_t>(n);
    }
  }

 private:
  std::string path_;
  int fd_ = -1;
};

std::string fmt_secs(double s) {
  if (!(s >= 0) || s > 1e7) return "--:--";
  int64_t t = static_cast<int64_t>(s + 0.5);
  char buf[32];
  if (t >= 3600) std::snprintf(buf, sizeof buf, "%lld:%02lld:%02lld", (long long)(t / 3600), (long long)(t / 60 % 60), (long long)(t % 60));
  else std::snprintf(buf, sizeof buf, "%lld:%02lld", (long long)(t / 60), (long long)(t % 60));
  return buf;
}

void run_batch(const BatchArgs& a) {
  if (a.in.empty() || a.out.empty()) bad_input("batch: -i IN.jsonl and -o OUT.jsonl are required");
  if (a.max_batch < 1) bad_input("--max-batch: expected >= 1");
  if (a.window < 0) bad_input("--window: expected >= 0");
  // The input is read in chunks, twice (checked as JSONL, then parsed into
  // ids and offsets); a line's body is read back when it is submitted, so
  // memory does not grow with the file.
  const UniqueFd in_file(::open(a.in.c_str(), O_RDONLY | O_CLOEXEC));
  const int in_fd = in_file.get();
  if (in_fd < 0) bad_input(a.in + ": cannot open");
  batch::JsonlChecker check;
  batch::read_chunks(in_fd, [&](const char* p, size_t n) { check.feed(p, n); });
  if (std::string bad = check.finish(); !bad.empty()) bad_input(a.in + ": not a JSONL file (" + bad + ")");
  std::vector<batch::InputLine> lines = batch::parse_input_file(in_fd, "");

  std::unordered_set<std::string> done;
  int64_t null_done = 0;
  ResultFile out(a.out, a.resume, done, null_done);
  std::unique_ptr<ResultFile> err;
  if (!a.errors.empty()) err = std::make_unique<ResultFile>(a.errors, a.resume, done, null_done);
  auto write = [&](const std::string& line, bool ok) { (ok || !err ? out : *err).append(line); };

  RuntimeOptions ro = resolve(a.rt);
  ro.max_batch = a.max_batch;
  ro.kv_cache_mb = a.kv_cache_mb;
  ro.max_queue = std::max(1024, a.max_batch * 4);
  auto rt = load_runtime(ro);
  ServerOptions so;
  so.served_model_name = a.served_name.empty() ? name_from_path(ro.model_path) : a.served_name;
  so.log_requests = false;
  ApiContext ctx(so);
  ServerBackend backend;
  backend.tokenizer = &need_tokenizer(*rt, "batch");
  backend.engine = rt->engine.get();
  backend.max_context = rt->desc.cfg.max_position_embeddings;
  backend.num_layers = rt->desc.cfg.num_layers;
  backend.num_experts = rt->desc.cfg.num_experts;
  rt->engine->start();
  ctx.set_ready(backend);

  // Lines that cannot run go out first (so a resume can count the null custom_ids it skips).
  int64_t ok_n = 0, fail_n = 0, skipped = 0;
  std::deque<size_t> pending;
  // This run's name in the lines' request ids (cmpl-RUN-LINE): unique per run.
  const std::string run_id = batch::new_id("offline_");
  int64_t null_seen = 0;
  for (size_t i = 0; i < lines.size(); ++i) {
    const batch::InputLine& l = lines[i];
    const bool already = l.custom_id.empty() ? null_seen++ < null_done
                                             : (l.error_code != "duplicate_custom_id" && done.count(l.custom_id) > 0);
    if (already) {
      ++skipped;
      continue;
    }
    if (!l.error_code.empty()) {
      write(batch::error_line(l.custom_id, l.error_code, l.error_message), false);
      ++fail_n;
    } else {
      pending.push_back(i);
    }
  }

  struct Inbox {
    std::mutex mu;
    std::condition_variable cv;
    std::deque<std::pair<size_t, batch::Outcome>> q;
  } inbox;
  BatchExecutor ex(ctx);
  const int window = a.window > 0 ? a.window : a.max_batch;
  const int64_t total = static_cast<int64_t>(lines.size());
  const bool tty = ::isatty(2);
  const auto t0 = std::chrono::steady_clock::now();
  int64_t tokens = 0, inflight = 0;
  auto last_draw = t0 - std::chrono::seconds(1);
  auto draw = [&](bool force) {
    auto now = std::chrono::steady_clock::now();
    if (!tty || (!force && now - last_draw < std::chrono::milliseconds(200))) return;
    last_draw = now;
    const double el = std::chrono::duration<double>(now - t0).count();
    const int64_t d = skipped + ok_n + fail_n;
    const int64_t run = ok_n + fail_n;
    const double rate = el > 0 ? run / el : 0;
    const int width = 30;
    const int fill = total ? static_cast<int>(width * d / total) : width;
    std::string bar(static_cast<size_t>(fill), '#');
    bar.resize(width, '.');
    std::fprintf(stderr, "\r[%s] %lld/%lld lines  %.0f tok/s  ETA %s ", bar.c_str(), (long long)d, (long long)total,
                 el > 0 ? tokens / el : 0.0, fmt_secs(rate > 0 ? (total - d) / rate : -1).c_str());
    std::fflush(stderr);
  };
  while (!pending.empty() || inflight > 0) {
    while (inflight < window && !pending.empty()) {
      size_t i = pending.front();
      pending.pop_front();
      std::string body;
      try {
        body = batch::read_input_body(in_fd, lines[i]);
      } catch (const Error& e) {  // the file changed under us: this line cannot run
        write(batch::unreadable_line(lines[i].custom_id, e), false);
        ++fail_n;
        continue;
      }
      ++inflight;
      batch::LineTask t{run_id, lines[i].line_no, "", lines[i].url, std::move(body)};
      ex.submit(std::move(t), [&inbox, i](batch::Outcome o) {
        std::lock_guard<std::mutex> lk(inbox.mu);
        inbox.q.emplace_back(i, std::move(o));
        inbox.cv.notify_all();
      });
    }
    std::deque<std::pair<size_t, batch::Outcome>> got;
    {
      std::unique_lock<std::mutex> lk(inbox.mu);
      inbox.cv.wait_for(lk, std::chrono::milliseconds(200), [&] { return !inbox.q.empty(); });
      got.swap(inbox.q);
    }
    for (auto& [i, o] : got) {
      --inflight;
      if (o.retry) {  // the engine queue was full: run it again
        pending.push_back(i);
        continue;
      }
      bool ok = false;
      const std::string out_line = batch::output_line(lines[i].custom_id, o, ok);  // sets ok
      write(out_line, ok);
      (ok ? ok_n : fail_n)++;
      if (ok) {
        json b = json::parse(o.body, nullptr, false);
        if (b.is_object() && b.contains("usage") && b["usage"].is_object())
          tokens += b["usage"].value("completion_tokens", int64_t{0});
      }
    }
    draw(false);
  }
  draw(true);
  if (tty) std::fprintf(stderr, "\n");
  ex.stop();
  rt->engine->stop();
  const double el = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  std::fprintf(stderr,
               "moeserve batch: %lld lines: %lld ok, %lld failed%s%s; %lld completion tokens in %.2f s (%.1f tok/s)\n",
               (long long)total, (long long)ok_n, (long long)fail_n,
               skipped ? ", " : "", skipped ? (std::to_string(skipped) + " already done").c_str() : "",
               (long long)tokens, el, el > 0 ? tokens / el : 0.0);
}

}  // namespace

void add_batch(CLI::App& app) {
  auto a = std::make_shared<BatchArgs>();
  CLI::App* cmd = app.add_subcommand("batch", "Run a Batch API JSONL file offline (OpenAI batch line format)");
  add_model_options(cmd, a->rt);
  cmd->add_option("-i,--input", a->in, "Input JSONL: {custom_id, method, url, body} per line")->required();
  cmd->add_option("-o,--output", a->out, "Output JSONL: {id, custom_id, response, error} per line")->required();
  cmd->add_option("--errors", a->errors, "Write failed lines here instead of to the output file");
  cmd->add_flag("--resume", a->resume, "Continue an interrupted run: skip the custom_ids already in the output files");
  cmd->add_option("--served-model-name", a->served_name, "Model name the lines may give (default: from the path)");
  cmd->add_option("--max-batch", a->max_batch, "Most sequences in a running batch")->capture_default_str();
  cmd->add_option("--window", a->window, "Lines in flight at most (0: --max-batch)")->capture_default_str();
  cmd->add_option("--kv-cache-mb", a->kv_cache_mb, "KV cache size in MiB (0: automatic)");
  cmd->callback([a] { run_batch(*a); });
}

}  // namespace ms::cli
