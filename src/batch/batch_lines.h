// batch_lines.h — the Batch API's JSONL formats: input lines
// {"custom_id", "method": "POST", "url", "body"} and the output/error-file
// lines {"id", "custom_id", "response": {"status_code", "request_id", "body"},
// "error": {"code", "message"}}, as OpenAI defines them. Shared by the server's
// Batch API and `moeserve batch`.
#pragma once
#include <cstdint>
#include <functional>
#include <string>
#include <vector>

namespace ms::batch {

// One input line, checked: `error_code` set when it cannot run (it goes to
// the error file with that code and message; the batch goes on).
struct InputLine {
  int64_t line_no = 0;  // 0-based among the non-blank lines
  std::string custom_id;
  std::string url;
  std::string body;  // the request body, JSON text ("" from parse_input_file: read_input_body)
  std::string error_code, error_message;
  int64_t offset = 0, length = 0;  // parse_input_file: where the line is in the file
};

// Splits and checks the lines of `text` against `endpoint` (a line whose url
// differs is an error line; so is a repeated custom_id, a method other than
// POST, a body that is not an object). Blank lines are skipped. An empty
// `endpoint` accepts both /v1/chat/completions and /v1/completions.
std::vector<InputLine> parse_input(const std::string& text, const std::string& endpoint);

// A file read front to back in 64 KiB pieces: fn(p, n) for each. Throws
// Error(BadInput) when a read fails.
void read_chunks(int fd, const std::function<void(const char*, size_t)>& fn);
// Its lines, holding one at a time: fn(line, offset, terminated) for each
// (the line without its '\n'; offset where it starts; terminated false for
// a last line that has no '\n').
void for_each_file_line(int fd, const std::function<void(const std::string&, int64_t, bool)>& fn);

// parse_input over a file read in 64 KiB chunks, holding one line at a
// time; the lines come back without their bodies (a batch of 200 MB holds
// its ids and offsets, not its requests): read_input_body gets one when its
// line runs. Throws Error(BadInput) when the file cannot be read.
std::vector<InputLine> parse_input_file(int fd, const std::string& endpoint);
std::string read_input_body(int fd, const InputLine& l);

// Checks that `text` is JSONL: every non-blank line a JSON object. Returns ""
// or what is wrong ("line 3: ...").
std::string check_jsonl(const std::string& text);

// check_jsonl over a stream: feed() the bytes as they arrive (holding one
// line at a time), then finish() gives "" or what is wrong. After the first
// error, feed() ignores the rest and error() is set.
class JsonlChecker {
 public:
  void feed(const char* p, size_t n);
  std::string finish();
  const std::string& error() const { return err_; }

 private:
  void line_done();
  std::string line_, err_;
  int64_t objects_ = 0, physical_ = 0;
};

// The outcome of running one line.
struct Outcome {
  int status_code = 0;     // the HTTP status the request got (0: none, see error_code)
  std::string request_id;
  std::string body;        // the response body, JSON text
  std::string error_code, error_message;  // a line that never became a request
  bool retry = false;      // not an answer: the server is stopping or full; run the line again later
};

// The output or error-file line for `o`; `ok` is whether it belongs in the
// output file (status 200).
std::string output_line(const std::string& custom_id, const Outcome& o, bool& ok);
// The error-file line of a line that never became a request.
std::string error_line(const std::string& custom_id, const std::string& code, const std::string& message);
// ... of one whose bytes could not be read back from the input file
// (changed in place since it was checked): code invalid_file.
std::string unreadable_line(const std::string& custom_id, const std::exception& e);

// A fresh id: prefix + 24 lowercase hex characters.
std::string new_id(const std::string& prefix);

}  // namespace ms::batch
