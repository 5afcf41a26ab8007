// The batch library without a model: JSONL checks, the stores, and the
// runner's status machine, window, cancel and resume-after-stop, driven by a
// fake Executor — on SQLite, and on PostgreSQL when MOESERVE_TEST_PG_URL is
// set (tests/e2e/lib/with_pg.sh starts one), where two services on one
// database also play two replicas: shared files, lease hand-over, a cancel
// sent to the replica that does not run the batch.
#include <fcntl.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <filesystem>
#include <map>
#include <mutex>
#include <set>
#include <thread>

#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include "batch/batch_lines.h"
#include "batch/batch_service.h"
#include "core/error.h"
#include "pgsql/pg_conn.h"

namespace ms::batch {
namespace {

using json = nlohmann::json;

std::string temp_dir() {
  char tmpl[] = "/tmp/ms-batch-test-XXXXXX";
  return mkdtemp(tmpl);
}

// A stored file's content, read whole through open_content() in 64 KiB reads.
std::string content(BatchService& s, const std::string& id) {
  auto c = s.open_content("", id);
  std::string out;
  char buf[64 << 10];
  while (size_t got = c->reader->read(buf, sizeof buf)) out.append(buf, got);
  EXPECT_EQ(static_cast<int64_t>(out.size()), c->size);
  return out;
}

std::string line(const std::string& id, const std::string& url = "/v1/completions") {
  return json{{"custom_id", id}, {"method", "POST"}, {"url", url}, {"body", {{"prompt", id}}}}.dump() + "\n";
}

// A line that cannot run (method GET): it goes to the error file.
std::string get_line(const std::string& id) {
  return json{{"custom_id", id}, {"method", "GET"}, {"url", "/v1/completions"}, {"body", json::object()}}.dump() + "\n";
}

// Answers each line with {"echo": custom body}, after `hold` is released;
// records the peak number in flight.
class FakeExecutor : public Executor {
 public:
  void submit(LineTask t, std::function<void(Outcome)> done) override {
    std::lock_guard<std::mutex> lk(mu);
    pending.emplace_back(std::move(t), std::move(done));
    peak = std::max<int>(peak, static_cast<int>(pending.size()));
    ++submitted;
  }
  void cancel_batch(const std::string&) override {
    std::lock_guard<std::mutex> lk(mu);
    for (auto& [t, d] : pending) {
      Outcome o;
      o.retry = true;
      d(o);
    }
    pending.clear();
  }
  // Answers up to n lines (all: -1); returns how many.
  int answer(int n = -1) {
    std::vector<std::pair<LineTask, std::function<void(Outcome)>>> take;
    {
      std::lock_guard<std::mutex> lk(mu);
      while (!pending.empty() && n-- != 0) {
        take.push_back(std::move(pending.front()));
        pending.erase(pending.begin());
      }
    }
    for (auto& [t, d] : take) {
      Outcome o;
      o.status_code = 200;
      o.request_id = "cmpl-" + std::to_string(t.line_no);
      o.body = json{{"echo", json::parse(t.body)}}.dump();
      d(o);
    }
    return static_cast<int>(take.size());
  }
  std::mutex mu;
  std::vector<std::pair<LineTask, std::function<void(Outcome)>>> pending;
  int peak = 0;
  std::atomic<int> submitted{0};
};

BatchRec wait_status(BatchService& s, const std::string& id, const std::set<std::string>& want, FakeExecutor* ex = nullptr) {
  for (int i = 0; i < 1000; ++i) {
    if (ex) ex->answer();
    BatchRec b = s.get_batch("", id);
    if (want.count(b.status)) return b;
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
  }
  return s.get_batch("", id);
}

// The store the test runs on: "sqlite" (a file in `dir`) or "postgresql"
// (MOESERVE_TEST_PG_URL, its batch tables dropped first: each test starts
// empty). Skips the test when PostgreSQL is wanted but not given.
class StoreParam : public ::testing::TestWithParam<std::string> {
 public:
  ServiceOptions opts_for(const std::string& dir, int64_t max_file_bytes, int64_t max_lines, int window) const {
    return opts(dir, max_file_bytes, max_lines, window);
  }

 protected:
  bool pg() const { return GetParam() == "postgresql"; }
  void SetUp() override {
    if (!pg()) return;
    const char* url = std::getenv("MOESERVE_TEST_PG_URL");
    if (!url || !*url) GTEST_SKIP() << "MOESERVE_TEST_PG_URL not set";
    url_ = url;
    pg::Conn c(url_);
    c.q("DROP TABLE IF EXISTS batch_lines, batch_file_chunks, batch_files, batch_batches");
  }
  std::string state(const std::string& dir) const { return pg() ? url_ : dir + "/b.db"; }
  ServiceOptions opts(const std::string& dir, int64_t max_file_bytes, int64_t max_lines, int window,
                      const std::string& files = "/files") const {
    ServiceOptions o;
    o.state = state(dir), o.files_dir = dir + files, o.max_file_bytes = max_file_bytes, o.max_lines = max_lines;
    o.window = window;
    o.lease_ms = 300;
    return o;
  }
  std::string url_;
};
std::string param_name(const ::testing::TestParamInfo<std::string>& i) { return i.param; }

// A started service over a fresh directory and a FakeExecutor; stopped and
// removed at the end of the scope.
class BatchServiceTest : public StoreParam {};

struct Running {
  std::string dir = temp_dir();
  BatchService s;
  FakeExecutor ex;
  Running(const StoreParam& p, int64_t max_file_bytes, int64_t max_lines, int window)
      : s(p.opts_for(dir, max_file_bytes, max_lines, window)) {
    s.start(&ex);
  }
  ~Running() {
    s.stop();
    std::filesystem::remove_all(dir);
  }
};

TEST(BatchLines, CheckJsonlAndParse) {
  EXPECT_EQ(check_jsonl("{\"a\":1}\n\n{\"b\":2}\r\n"), "");
  EXPECT_EQ(check_jsonl(""), "the file has no lines");
  EXPECT_EQ(check_jsonl("{}\nnope\n"), "line 2 is not valid JSON");
  EXPECT_EQ(check_jsonl("[1]\n"), "line 1 is not a JSON object");
  auto l = parse_input(line("a") + line("a") + line("b", "/v1/chat/completions") +
                           "{\"custom_id\":\"c\",\"method\":\"GET\",\"url\":\"/v1/completions\",\"body\":{}}\n" +
                           "{\"method\":\"POST\",\"url\":\"/v1/completions\",\"body\":{}}\n",
                       "/v1/completions");
  ASSERT_EQ(l.size(), 5u);
  EXPECT_EQ(l[0].error_code, "");
  EXPECT_EQ(l[1].error_code, "duplicate_custom_id");
  EXPECT_EQ(l[2].error_code, "mismatched_endpoint");
  EXPECT_EQ(l[3].error_code, "invalid_method");
  EXPECT_EQ(l[4].error_code, "missing_required_parameter");
  EXPECT_EQ(parse_input(line("b", "/v1/chat/completions"), "")[0].error_code, "");  // offline: either endpoint
  bool ok = true;
  json err = json::parse(output_line("x", Outcome{400, "r1", "{\"error\":{}}", "", "", false}, ok));
  EXPECT_FALSE(ok);
  EXPECT_EQ(err["response"]["status_code"], 400);
  EXPECT_TRUE(err["error"].is_null());
}

// The file parser (chunks of 64 KiB, offsets, bodies read back one at a
// time) gives what parse_input gives on the same text: blank and CRLF lines,
// bad lines, a line across a chunk boundary, no newline at the end.
TEST(BatchLines, FileParseEqualsTextParseAndBodiesReadBack) {
  const std::string big = json{{"custom_id", "big"}, {"method", "POST"}, {"url", "/v1/completions"},
                               {"body", {{"prompt", std::string(100000, 'x')}}}}.dump();
  std::string text = line("a") + "\n  \n" + line("b").insert(line("b").size() - 1, "\r") + "nope\n" + line("a") +
                     std::string(65000, ' ') + "\n" + big + "\n" + line("c", "/v1/chat/completions") + line("z");
  text.pop_back();  // the last line without its newline
  const std::string path = temp_dir() + "/in.jsonl";
  FILE* f = std::fopen(path.c_str(), "wb");
  ASSERT_TRUE(f);
  std::fwrite(text.data(), 1, text.size(), f);
  std::fclose(f);
  const int fd = ::open(path.c_str(), O_RDONLY);
  ASSERT_GE(fd, 0);
  const auto want = parse_input(text, "/v1/completions");
  const auto got = parse_input_file(fd, "/v1/completions");
  ASSERT_EQ(got.size(), want.size());
  ASSERT_EQ(got.size(), 7u);
  for (size_t i = 0; i < got.size(); ++i) {
    SCOPED_TRACE(i);
    EXPECT_EQ(got[i].line_no, want[i].line_no);
    EXPECT_EQ(got[i].custom_id, want[i].custom_id);
    EXPECT_EQ(got[i].url, want[i].url);
    EXPECT_EQ(got[i].error_code, want[i].error_code);
    EXPECT_TRUE(got[i].body.empty());
    if (want[i].error_code.empty()) {
      EXPECT_EQ(read_input_body(fd, got[i]), want[i].body);
    }
  }
  EXPECT_EQ(got[2].error_code, "invalid_json_line");
  EXPECT_EQ(got[3].error_code, "duplicate_custom_id");
  EXPECT_EQ(got[4].custom_id, "big");
  // A line changed in place is an error for that line, not a crash.
  InputLine moved = got[0];
  moved.offset += 1;
  EXPECT_THROW(read_input_body(fd, moved), Error);
  moved.offset = int64_t(text.size()) - 2;
  EXPECT_THROW(read_input_body(fd, moved), Error);
  ::close(fd);
  EXPECT_THROW(parse_input_file(-1, ""), Error);
}

TEST_P(BatchServiceTest, RunsWithinTheWindowAndFinalizes) {
  Running r(*this, 1 << 20, 100, 3);
  BatchService& s = r.s;
  FakeExecutor& ex = r.ex;
  std::string text;
  for (int i = 0; i < 10; ++i) text += line("L" + std::to_string(i));
  text += get_line("bad");
  FileRec f = s.create_file("", "batch", "in.jsonl", text);
  BatchRec b = s.create_batch("", f.id, "/v1/completions", "24h", "");
  EXPECT_EQ(b.status, "validating");
  BatchRec d = wait_status(s, b.id, {"completed", "failed"}, &ex);
  ASSERT_EQ(d.status, "completed");
  EXPECT_EQ(d.total, 11);
  EXPECT_EQ(d.completed, 10);
  EXPECT_EQ(d.failed, 1);
  EXPECT_LE(ex.peak, 3) << "never more than the window in flight";
  std::string out = content(s, d.output_file_id);
  EXPECT_EQ(std::count(out.begin(), out.end(), '\n'), 10);
  EXPECT_NE(out.find("\"custom_id\":\"L0\""), std::string::npos);
  EXPECT_NE(content(s, d.error_file_id).find("invalid_method"), std::string::npos);
  // Another owner sees nothing; a deleted input file fails a new batch's creation.
  EXPECT_THROW(s.get_batch("key_other", b.id), Failure);
  s.delete_file("", f.id);
  EXPECT_THROW(s.create_batch("", f.id, "/v1/completions", "24h", ""), Failure);
}

// The result files are written from the line rows a page (1024) at a time:
// over several pages every line lands once, in input order, in the right file.
TEST_P(BatchServiceTest, ResultFilesOverSeveralPagesKeepEveryLineInOrder) {
  Running r(*this, 8 << 20, 5000, 512);
  BatchService& s = r.s;
  std::string text;
  const int n = 2500;
  for (int i = 0; i < n; ++i) text += i % 10 == 3 ? get_line("L" + std::to_string(i)) : line("L" + std::to_string(i));
  const BatchRec d = wait_status(s, s.create_batch("", s.create_file("", "batch", "in.jsonl", text).id, "/v1/completions", "24h", "").id,
                                 {"completed", "failed"}, &r.ex);
  ASSERT_EQ(d.status, "completed");
  EXPECT_EQ(d.completed, n - n / 10);
  EXPECT_EQ(d.failed, n / 10);
  auto ids = [](const std::string& file) {
    std::vector<int> v;
    size_t start = 0;
    for (size_t nl; (nl = file.find('\n', start)) != std::string::npos; start = nl + 1)
      v.push_back(std::stoi(json::parse(file.substr(start, nl - start))["custom_id"].get<std::string>().substr(1)));
    return v;
  };
  const std::vector<int> ok = ids(content(s, d.output_file_id)), bad = ids(content(s, d.error_file_id));
  ASSERT_EQ(ok.size(), size_t(n - n / 10));
  ASSERT_EQ(bad.size(), size_t(n / 10));
  EXPECT_TRUE(std::is_sorted(ok.begin(), ok.end()));
  EXPECT_TRUE(std::is_sorted(bad.begin(), bad.end()));
  for (int i : bad) EXPECT_EQ(i % 10, 3);
  std::set<int> all(ok.begin(), ok.end());
  all.insert(bad.begin(), bad.end());
  EXPECT_EQ(all.size(), size_t(n));
  EXPECT_EQ(*all.rbegin(), n - 1);
  // No temporary files left beside the results (and, with the bytes in
  // PostgreSQL, no local copies either).
  for (const auto& e : std::filesystem::directory_iterator(r.dir + "/files")) {
    EXPECT_FALSE(pg()) << e.path();
    EXPECT_EQ(e.path().extension(), ".jsonl") << e.path();
  }
}

TEST_P(BatchServiceTest, ResumesAfterStopWithoutRedoingLines) {
  std::string dir = temp_dir();
  ServiceOptions o = opts(dir, 1 << 20, 100, 4);
  std::string id;
  int first_run = 0;
  {
    BatchService s(o);
    FakeExecutor ex;
    s.start(&ex);
    std::string text;
    for (int i = 0; i < 20; ++i) text += line("L" + std::to_string(i));
    FileRec f = s.create_file("", "batch", "in.jsonl", text);
    id = s.create_batch("", f.id, "/v1/completions", "24h", "").id;
    // Answer 6 lines, let them be committed, then "crash" with 4 in flight.
    for (int i = 0; i < 500 && first_run < 6; ++i) {
      first_run += ex.answer(6 - first_run);
      std::this_thread::sleep_for(std::chrono::milliseconds(5));
    }
    for (int i = 0; i < 200 && s.get_batch("", id).completed < 6; ++i)
      std::this_thread::sleep_for(std::chrono::milliseconds(5));
    ASSERT_EQ(s.get_batch("", id).completed, 6);
    s.stop();
  }
  BatchService s2(o);
  FakeExecutor ex2;
  s2.start(&ex2);
  BatchRec d = wait_status(s2, id, {"completed"}, &ex2);
  ASSERT_EQ(d.status, "completed");
  EXPECT_EQ(ex2.submitted.load(), 14) << "the 6 committed lines are not run again";
  std::string out = content(s2, d.output_file_id);
  for (int i = 0; i < 20; ++i) {
    std::string key = "\"custom_id\":\"L" + std::to_string(i) + "\"";
    size_t at = out.find(key);
    ASSERT_NE(at, std::string::npos) << key;
    EXPECT_EQ(out.find(key, at + 1), std::string::npos) << key << " twice";
  }
  s2.stop();
  std::filesystem::remove_all(dir);
}

TEST_P(BatchServiceTest, CancelKeepsFinishedLines) {
  std::string dir = temp_dir();
  ServiceOptions o = opts(dir, 1 << 20, 100, 2);
  BatchService s(o);
  FakeExecutor ex;
  s.start(&ex);
  std::string text;
  for (int i = 0; i < 10; ++i) text += line("L" + std::to_string(i));
  FileRec f = s.create_file("", "batch", "in.jsonl", text);
  std::string id = s.create_batch("", f.id, "/v1/completions", "24h", "").id;
  int answered = 0;
  for (int i = 0; i < 2000 && answered < 3; ++i) {
    answered += ex.answer(1);
    std::this_thread::sleep_for(std::chrono::milliseconds(5));
  }
  for (int i = 0; i < 2000 && s.get_batch("", id).completed < 3; ++i)  // (up to 10 s on a loaded host)
    std::this_thread::sleep_for(std::chrono::milliseconds(5));
  ASSERT_EQ(s.get_batch("", id).completed, 3) << "the three answered lines are committed before the cancel";
  BatchRec c = s.cancel_batch("", id);
  EXPECT_TRUE(c.status == "cancelling" || c.status == "cancelled");
  BatchRec d = wait_status(s, id, {"cancelled"});
  ASSERT_EQ(d.status, "cancelled");
  EXPECT_EQ(d.completed, 3);
  EXPECT_EQ(d.failed, 0);
  EXPECT_THROW(s.create_file("", "fine-tune", "x.jsonl", line("a")), Failure);
  EXPECT_THROW(s.create_file("", "batch", "x.jsonl", "nope\n"), Failure);
  s.stop();
  std::filesystem::remove_all(dir);
}

// Files over several of PostgreSQL's 1 MiB chunks (and on SQLite, as a
// control) come back byte for byte; a deleted one is gone.
TEST_P(BatchServiceTest, FilesComeBackByteForByteAndDeletedOnesAreGone) {
  Running r(*this, 8 << 20, 100000, 4);
  std::string text;
  for (int i = 0; text.size() < (5u << 20) / 2; ++i)  // 2.5 MiB: chunks 0, 1 and half of 2
    text += json{{"custom_id", "L" + std::to_string(i)}, {"method", "POST"}, {"url", "/v1/completions"},
                 {"body", {{"prompt", std::string(static_cast<size_t>(97 + i % 500), 'a' + i % 26)}}}}
                .dump() +
            "\n";
  FileRec f = r.s.create_file("", "batch", "big.jsonl", text);
  EXPECT_EQ(f.bytes, static_cast<int64_t>(text.size()));
  EXPECT_EQ(content(r.s, f.id), text);
  if (pg()) {  // the bytes are in the database, not left in the spool
    EXPECT_TRUE(std::filesystem::is_empty(r.dir + "/files"));
  }
  // A download reads as it goes: with PostgreSQL nothing is copied to the
  // spool, and a file deleted meanwhile ends it with an error when its next
  // chunk is needed; with SQLite the open file is read to its end.
  auto c = r.s.open_content("", f.id);
  std::string got(4096, '\0');
  ASSERT_EQ(c->reader->read(got.data(), got.size()), got.size());
  if (pg()) {
    EXPECT_TRUE(std::filesystem::is_empty(r.dir + "/files"));
  }
  r.s.delete_file("", f.id);
  auto rest = [&] {
    char buf[64 << 10];
    while (size_t k = c->reader->read(buf, sizeof buf)) got.append(buf, k);
  };
  if (pg()) {
    EXPECT_THROW(rest(), Error);
  } else {
    rest();
    EXPECT_EQ(got, text);
  }
  EXPECT_THROW(r.s.get_file("", f.id), Failure);
  EXPECT_THROW(r.s.open_content("", f.id), Failure);
}

// A status change is a compare-and-set on the stored status.
TEST_P(BatchServiceTest, StatusChangesAreCompareAndSet) {
  Running r(*this, 1 << 20, 100, 4);
  // No runner: its scan (every second) would take this batch, unfinished
  // while "finalizing", and finalize it between the steps below (CI saw it).
  r.s.stop();
  BatchStore& st = r.s.store();
  BatchRec b;
  b.id = "batch_cas", b.endpoint = "/v1/completions", b.input_file_id = "file-x", b.completion_window = "24h";
  b.status = "in_progress";
  st.put_batch(b);
  b.status = "finalizing";
  EXPECT_FALSE(st.update_batch(b, "validating"));
  EXPECT_EQ(st.get_batch(b.id)->status, "in_progress");
  EXPECT_TRUE(st.update_batch(b, "in_progress"));
  b.status = "completed";
  EXPECT_FALSE(st.finalize(b, {}, "in_progress"));
  EXPECT_EQ(st.get_batch(b.id)->status, "finalizing");
  EXPECT_TRUE(st.finalize(b, {}, "finalizing"));
  EXPECT_EQ(st.get_batch(b.id)->status, "completed");
  // A line is recorded once: the first result stays.
  st.add_lines(b.id, {{0, "a", true, "first"}});
  st.add_lines(b.id, {{0, "a", false, "second"}, {1, "b", false, "other"}});
  auto rows = st.lines_after(b.id, -1, 10);
  ASSERT_EQ(rows.size(), 2u);
  EXPECT_EQ(rows[0].json, "first");
  EXPECT_TRUE(rows[0].ok);
}

// Servers sharing a SQLite file: one runs the batches (it holds a flock);
// when it goes, the next one to claim takes over.
TEST(BatchStore, OneRunnerPerSqliteFileAndTheNextTakesOver) {
  std::string dir = temp_dir();
  auto a = open_batch_store(dir + "/b.db");
  auto b = open_batch_store(dir + "/b.db");
  BatchRec r;
  r.id = "batch_x", r.endpoint = "/v1/completions", r.input_file_id = "file-x", r.completion_window = "24h";
  r.status = "in_progress";
  a->put_batch(r);
  EXPECT_EQ(a->claim(r.id, "A", 1000), "in_progress");
  EXPECT_EQ(b->claim(r.id, "B", 1000), "") << "a runs the batches";
  EXPECT_EQ(b->get_batch(r.id)->status, "in_progress") << "b still serves the API";
  a.reset();  // (a process that dies drops its flock the same way)
  EXPECT_EQ(b->claim(r.id, "B", 1000), "in_progress");
  std::filesystem::remove_all(dir);
}

// Leases (PostgreSQL): a live one keeps other runners off; its holder renews
// it; an expired one goes to whoever claims next, and the old holder's
// renewal then fails; a released one is free at once.
TEST_P(BatchServiceTest, LeasesKeepOtherRunnersOffUntilTheyExpire) {
  if (!pg()) GTEST_SKIP() << "one server per SQLite file: no leases";
  Running r(*this, 1 << 20, 100, 4);
  r.s.stop();
  BatchStore& st = r.s.store();
  BatchRec b;
  b.id = "batch_lease", b.endpoint = "/v1/completions", b.input_file_id = "file-x", b.completion_window = "24h";
  b.status = "in_progress";
  st.put_batch(b);
  // (a long first lease: a stalled host cannot let it lapse before B tries)
  EXPECT_EQ(st.claim(b.id, "A", 60000), "in_progress");
  EXPECT_EQ(st.claim(b.id, "B", 400), "");
  EXPECT_EQ(st.claim(b.id, "A", 400), "in_progress") << "the holder renews (to 400 ms from now)";
  std::this_thread::sleep_for(std::chrono::milliseconds(600));
  EXPECT_EQ(st.claim(b.id, "B", 60000), "in_progress") << "an expired lease goes to the next claim";
  EXPECT_EQ(st.claim(b.id, "A", 400), "") << "the old holder has lost it";
  st.release(b.id, "A");  // (not A's any more: changes nothing)
  EXPECT_EQ(st.claim(b.id, "A", 400), "");
  st.release(b.id, "B");
  EXPECT_EQ(st.claim(b.id, "A", 400), "in_progress") << "a released lease is free at once";
  EXPECT_EQ(st.claim("batch_none", "A", 400), "");
}

// Two services on one store play two servers (replicas on PostgreSQL, or
// servers sharing a SQLite file on one machine): a batch created through one
// runs on the other; when that one goes, the first takes the batch over from
// its committed lines (each line once); results are readable through either.
TEST_P(BatchServiceTest, ReplicasShareBatchesAndHandOverTheRun) {
  std::string dir = temp_dir();
  // Leases of 10 s (renewed every 3.3 s), not 300 ms: a runner thread stalled
  // by a loaded host for 200 ms would let b take the batch while watched.
  ServiceOptions oa = opts(dir, 1 << 20, 100, 4, "/a"), ob = opts(dir, 1 << 20, 100, 4, "/b");
  oa.lease_ms = ob.lease_ms = 10000;
  auto a_ptr = std::make_unique<BatchService>(oa);
  BatchService& a = *a_ptr;
  BatchService b(ob);
  FakeExecutor ex_a, ex_b;
  std::string text;
  for (int i = 0; i < 20; ++i) text += line("L" + std::to_string(i));
  FileRec f = b.create_file("", "batch", "in.jsonl", text);
  EXPECT_EQ(a.get_file("", f.id).bytes, f.bytes) << "a file uploaded to one replica is on the other";
  const std::string id = b.create_batch("", f.id, "/v1/completions", "24h", "").id;
  a.start(&ex_a);  // only `a` runs batches
  int answered = 0;
  for (int i = 0; i < 500 && answered < 6; ++i) {
    answered += ex_a.answer(6 - answered);
    std::this_thread::sleep_for(std::chrono::milliseconds(5));
  }
  for (int i = 0; i < 200 && b.get_batch("", id).completed < 6; ++i)
    std::this_thread::sleep_for(std::chrono::milliseconds(5));
  ASSERT_EQ(b.get_batch("", id).completed, 6);
  b.start(&ex_b);
  std::this_thread::sleep_for(std::chrono::milliseconds(1500));  // b's runner scans, a holds the lease
  EXPECT_EQ(ex_b.submitted.load(), 0) << "a batch runs on one replica at a time";
  a.stop();  // a clean stop releases the lease (PostgreSQL): b takes over without waiting for it to expire
  const BatchRec stopped = b.get_batch("", id);
  EXPECT_EQ(stopped.status, "in_progress");
  EXPECT_EQ(stopped.completed, 6);
  a_ptr.reset();  // (and the runner's flock goes with the service: SQLite)
  BatchRec d = wait_status(b, id, {"completed"}, &ex_b);
  ASSERT_EQ(d.status, "completed");
  EXPECT_EQ(ex_b.submitted.load(), 14) << "the committed lines are not run again";
  const std::string out = content(b, d.output_file_id);
  BatchService again(opts(dir, 1 << 20, 100, 4, "/a"));  // (another server: the same results)
  EXPECT_EQ(out, content(again, d.output_file_id));
  for (int i = 0; i < 20; ++i) {
    std::string key = "\"custom_id\":\"L" + std::to_string(i) + "\"";
    size_t at = out.find(key);
    ASSERT_NE(at, std::string::npos) << key;
    EXPECT_EQ(out.find(key, at + 1), std::string::npos) << key << " twice";
  }
  b.stop();
  std::filesystem::remove_all(dir);
}

// A cancel sent to the server that does not run the batch reaches the
// runner on the other one (with its next lease renewal, which reads the status).
TEST_P(BatchServiceTest, CancelOnOneReplicaStopsTheRunOnAnother) {
  std::string dir = temp_dir();
  BatchService a(opts(dir, 1 << 20, 100, 2, "/a")), b(opts(dir, 1 << 20, 100, 2, "/b"));
  FakeExecutor ex_a;
  a.start(&ex_a);
  std::string text;
  for (int i = 0; i < 10; ++i) text += line("L" + std::to_string(i));
  const std::string id = b.create_batch("", b.create_file("", "batch", "in.jsonl", text).id, "/v1/completions", "24h", "").id;
  int answered = 0;
  for (int i = 0; i < 2000 && answered < 3; ++i) {
    answered += ex_a.answer(1);
    std::this_thread::sleep_for(std::chrono::milliseconds(5));
  }
  for (int i = 0; i < 2000 && b.get_batch("", id).completed < 3; ++i)  // (up to 10 s on a loaded host)
    std::this_thread::sleep_for(std::chrono::milliseconds(5));
  ASSERT_EQ(b.get_batch("", id).completed, 3) << "the three answered lines are committed before the cancel";
  EXPECT_EQ(b.cancel_batch("", id).status, "cancelling");
  BatchRec d = wait_status(b, id, {"cancelled"});
  ASSERT_EQ(d.status, "cancelled");
  EXPECT_EQ(d.completed, 3);
  EXPECT_LE(ex_a.submitted.load(), 5) << "no new lines after the cancel";
  a.stop();
  std::filesystem::remove_all(dir);
}

INSTANTIATE_TEST_SUITE_P(Stores, BatchServiceTest, ::testing::Values("sqlite", "postgresql"), param_name);

}  // namespace
}  // namespace ms::batch
