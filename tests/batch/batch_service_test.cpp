// The batch library without a model: JSONL checks, the store, and the
// runner's status machine, window, cancel and resume-after-stop, driven by a
// fake Executor.
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

namespace ms::batch {
namespace {

using json = nlohmann::json;

std::string temp_dir() {
  char tmpl[] = "/tmp/ms-batch-test-XXXXXX";
  return mkdtemp(tmpl);
}

// A stored file's content, read whole through open_content().
std::string content(BatchService& s, const std::string& id) {
  auto c = s.open_content("", id);
  std::string out(static_cast<size_t>(c->size), '\0');
  EXPECT_EQ(::pread(c->fd.get(), out.data(), out.size(), 0), static_cast<ssize_t>(out.size()));
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

// A started service over a fresh directory and a FakeExecutor; stopped and
// removed at the end of the scope.
struct Running {
  std::string dir = temp_dir();
  BatchService s;
  FakeExecutor ex;
  Running(int64_t max_file_bytes, int64_t max_lines, int window)
      : s(ServiceOptions{dir + "/b.db", dir + "/files", max_file_bytes, max_lines, window}) {
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

TEST(BatchService, RunsWithinTheWindowAndFinalizes) {
  Running r(1 << 20, 100, 3);
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
TEST(BatchService, ResultFilesOverSeveralPagesKeepEveryLineInOrder) {
  Running r(8 << 20, 5000, 512);
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
  // No temporary files left beside the results.
  for (const auto& e : std::filesystem::directory_iterator(r.dir + "/files"))
    EXPECT_EQ(e.path().extension(), ".jsonl") << e.path();
}

TEST(BatchService, ResumesAfterStopWithoutRedoingLines) {
  std::string dir = temp_dir();
  ServiceOptions o{dir + "/b.db", dir + "/files", 1 << 20, 100, 4};
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

TEST(BatchService, CancelKeepsFinishedLines) {
  std::string dir = temp_dir();
  ServiceOptions o{dir + "/b.db", dir + "/files", 1 << 20, 100, 2};
  BatchService s(o);
  FakeExecutor ex;
  s.start(&ex);
  std::string text;
  for (int i = 0; i < 10; ++i) text += line("L" + std::to_string(i));
  FileRec f = s.create_file("", "batch", "in.jsonl", text);
  std::string id = s.create_batch("", f.id, "/v1/completions", "24h", "").id;
  int answered = 0;
  for (int i = 0; i < 500 && answered < 3; ++i) {
    answered += ex.answer(1);
    std::this_thread::sleep_for(std::chrono::milliseconds(5));
  }
  for (int i = 0; i < 200 && s.get_batch("", id).completed < 3; ++i)
    std::this_thread::sleep_for(std::chrono::milliseconds(5));
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

}  // namespace
}  // namespace ms::batch
