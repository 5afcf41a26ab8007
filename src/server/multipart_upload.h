// multipart_upload.h — POST /v1/files as a stream: a multipart/form-data
// body (RFC 7578) parsed as it arrives, the "file" part written straight to
// a part file in the files directory (BatchService::upload_path) and checked
// as JSONL on the way, the "purpose" part kept (small); nothing of the file
// is held in memory beyond one JSONL line and one read buffer.
//
// The file part is limited to max_file_bytes while it streams: one byte more
// stops the upload with 413 file_too_large. A malformed body (no boundary,
// bad delimiter, unterminated part, oversized part headers) is 400. Whatever
// happens, the part file is removed unless adopted (take_part()).
#pragma once
#include <cstdint>
#include <cstdio>
#include <optional>
#include <string>

#include "batch/batch_lines.h"
#include "batch/batch_service.h"
#include "server/http_types.h"

namespace ms {

class MultipartUpload : public BodyStream {
 public:
  // `content_type`: the request's Content-Type (with boundary=...).
  MultipartUpload(const std::string& content_type, std::string part_path, int64_t max_file_bytes);
  ~MultipartUpload() override;

  bool write(const char* p, size_t n) override;
  void end() override;

  // After end() (or a failed write): the failure, if any.
  const std::optional<batch::ApiFailure>& failure() const { return failure_; }
  bool has_file() const { return has_file_; }
  const std::string& purpose() const { return purpose_; }
  const std::string& filename() const { return filename_; }
  const std::string& jsonl_error() const { return jsonl_error_; }  // after end(): "" or what is wrong
  int64_t file_bytes() const { return file_bytes_; }
  // The part file's path; the caller now owns it (renamed or removed by it).
  std::string take_part();

 private:
  enum class State { Preamble, AfterDelim, Headers, Data, Done, Failed };
  void fail(int status, const std::string& code, const std::string& message, const std::string& param = "");
  void process();
  void part_begins(const std::string& headers);
  void part_data(const char* p, size_t n);
  void part_ends();

  std::string delim_;    // "--" + boundary
  std::string pending_;  // bytes not yet consumed (bounded: one read plus a delimiter)
  State state_ = State::Preamble;
  enum class Part { Other, Purpose, File } part_ = Part::Other;
  std::string purpose_, filename_, part_path_;
  std::FILE* out_ = nullptr;
  bool has_file_ = false;
  int64_t file_bytes_ = 0, max_file_bytes_;
  batch::JsonlChecker jsonl_;
  std::optional<batch::ApiFailure> failure_;
  std::string jsonl_error_;
};

// The value of `key` in a header parameter list (boundary=..., name="...").
std::string header_param(const std::string& h, const std::string& key);

}  // namespace ms
