// multipart_upload.cpp — streamed multipart/form-data uploads (see multipart_upload.h).
#include "server/multipart_upload.h"

#include <unistd.h>

#include <algorithm>
#include <cctype>
#include <cerrno>
#include <cstring>

namespace ms {

namespace {

constexpr size_t kMaxPartHeaders = 16 << 10;
constexpr size_t kMaxPurpose = 256;

std::string lower(std::string s) {
  std::transform(s.begin(), s.end(), s.begin(), [](unsigned char c) { return std::tolower(c); });
  return s;
}

}  // namespace

std::string header_param(const std::string& h, const std::string& key) {
  const std::string l = lower(h);
  size_t p = 0;
  while ((p = l.find(key + "=", p)) != std::string::npos) {
    if (p == 0 || l[p - 1] == ';' || l[p - 1] == ' ' || l[p - 1] == '\t') break;
    p += key.size();
  }
  if (p == std::string::npos) return "";
  p += key.size() + 1;
  if (p < h.size() && h[p] == '"') {
    size_t e = h.find('"', p + 1);
    return h.substr(p + 1, e == std::string::npos ? std::string::npos : e - p - 1);
  }
  size_t e = h.find_first_of("; \t", p);
  return h.substr(p, e == std::string::npos ? std::string::npos : e - p);
}

MultipartUpload::MultipartUpload(const std::string& content_type, std::string part_path, int64_t max_file_bytes)
    : part_path_(std::move(part_path)), max_file_bytes_(max_file_bytes) {
  const std::string boundary = header_param(content_type, "boundary");
  if (lower(content_type).rfind("multipart/form-data", 0) != 0)
    fail(400, "invalid_request", "Upload a file as multipart/form-data (fields 'purpose' and 'file').");
  else if (boundary.empty() || boundary.size() > 200)
    fail(400, "invalid_request", "The multipart boundary is missing.");
  else
    delim_ = "--" + boundary;
}

MultipartUpload::~MultipartUpload() {
  if (out_) std::fclose(out_);
  if (!part_path_.empty()) ::unlink(part_path_.c_str());
}

std::string MultipartUpload::take_part() {
  std::string p;
  p.swap(part_path_);
  return p;
}

void MultipartUpload::fail(int status, const std::string& code, const std::string& message, const std::string& param) {
  if (!failure_) failure_ = batch::ApiFailure{status, code, message, param};
  state_ = State::Failed;
  pending_.clear();
  if (out_) {
    std::fclose(out_);
    out_ = nullptr;
  }
  if (!part_path_.empty()) ::unlink(part_path_.c_str());
}

bool MultipartUpload::write(const char* p, size_t n) {
  if (state_ == State::Failed) return false;
  if (state_ == State::Done) return true;  // the epilogue: ignored
  pending_.append(p, n);
  process();
  return state_ != State::Failed;
}

void MultipartUpload::end() {
  if (state_ == State::Failed) return;
  if (state_ != State::Done) return fail(400, "invalid_request", "Malformed multipart body: it ends inside a part.");
  if (has_file_) jsonl_error_ = jsonl_.finish();
}

void MultipartUpload::process() {
  for (;;) {
    switch (state_) {
      case State::Preamble: {
        const size_t at = pending_.find(delim_);
        if (at == std::string::npos) {  // keep what could be the start of the delimiter
          if (pending_.size() > delim_.size()) pending_.erase(0, pending_.size() - delim_.size());
          return;
        }
        pending_.erase(0, at + delim_.size());
        state_ = State::AfterDelim;
        break;
      }
      case State::AfterDelim:
        if (pending_.size() < 2) return;
        if (pending_.compare(0, 2, "--") == 0) {
          state_ = State::Done;
          pending_.clear();
          return;
        }
        if (pending_.compare(0, 2, "\r\n") != 0) return fail(400, "invalid_request", "Malformed multipart body.");
        pending_.erase(0, 2);
        state_ = State::Headers;
        break;
      case State::Headers: {
        const size_t at = pending_.find("\r\n\r\n");
        if (at == std::string::npos) {
          if (pending_.size() > kMaxPartHeaders)
            return fail(400, "invalid_request", "Malformed multipart body: part headers too large.");
          return;
        }
        part_begins(pending_.substr(0, at));
        if (state_ == State::Failed) return;
        pending_.erase(0, at + 4);
        state_ = State::Data;
        break;
      }
      case State::Data: {
        const std::string close = "\r\n" + delim_;
        const size_t at = pending_.find(close);
        if (at == std::string::npos) {  // all but what could start the delimiter is data
          if (pending_.size() >= close.size()) {
            const size_t n = pending_.size() - (close.size() - 1);
            part_data(pending_.data(), n);
            if (state_ == State::Failed) return;
            pending_.erase(0, n);
          }
          return;
        }
        part_data(pending_.data(), at);
        if (state_ == State::Failed) return;
        part_ends();
        if (state_ == State::Failed) return;
        pending_.erase(0, at + close.size());
        state_ = State::AfterDelim;
        break;
      }
      case State::Done:
      case State::Failed:
        return;
    }
  }
}

void MultipartUpload::part_begins(const std::string& headers) {
  std::string disp;
  size_t hp = 0;
  while (hp < headers.size()) {
    size_t e = headers.find("\r\n", hp);
    if (e == std::string::npos) e = headers.size();
    const std::string line = headers.substr(hp, e - hp);
    if (lower(line).rfind("content-disposition:", 0) == 0) disp = line.substr(20);
    hp = e + 2;
  }
  const std::string name = header_param(disp, "name");
  part_ = Part::Other;
  if (name == "purpose") {
    part_ = Part::Purpose;
    purpose_.clear();
  } else if (name == "file") {
    if (has_file_) return fail(400, "invalid_request", "Malformed multipart body: more than one 'file' part.", "file");
    part_ = Part::File;
    has_file_ = true;
    filename_ = header_param(disp, "filename");
    out_ = std::fopen(part_path_.c_str(), "wbxe");
    if (!out_)
      return fail(500, "server_error", "Cannot store the upload: " + std::string(std::strerror(errno)) + ".");
  }
}

void MultipartUpload::part_data(const char* p, size_t n) {
  if (n == 0) return;
  if (part_ == Part::Purpose) {
    if (purpose_.size() + n > kMaxPurpose) return fail(400, "invalid_value", "The 'purpose' field is too long.", "purpose");
    purpose_.append(p, n);
  } else if (part_ == Part::File) {
    file_bytes_ += static_cast<int64_t>(n);
    if (file_bytes_ > max_file_bytes_)
      return fail(413, "file_too_large",
                  "The file is larger than the limit of " + std::to_string(max_file_bytes_) + " bytes.", "file");
    jsonl_.feed(p, n);
    if (std::fwrite(p, 1, n, out_) != n)
      return fail(500, "server_error", "Cannot store the upload: " + std::string(std::strerror(errno)) + ".");
  }
}

void MultipartUpload::part_ends() {
  if (part_ != Part::File) return;
  const bool ok = std::fflush(out_) == 0 && ::fsync(fileno(out_)) == 0;
  const int e = errno;
  std::fclose(out_);
  out_ = nullptr;
  if (!ok) fail(500, "server_error", "Cannot store the upload: " + std::string(std::strerror(e)) + ".");
}

}  // namespace ms
