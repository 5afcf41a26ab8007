// http_types.h — a request and a response as the API layer sees them,
// independent of the HTTP library (the session converts).
#pragma once
#include <memory>
#include <string>
#include <utility>
#include <vector>

namespace ms {

// A request body consumed as it arrives instead of held in memory (file
// uploads; see open_body_stream in batch_routes.h). The session feeds it the
// body's bytes in order; write() returning false stops the reading (the
// stream keeps why), and the request is then routed as usual with the stream
// in HttpReq::body_stream, so the route answers (an error, or the result).
class BodyStream {
 public:
  virtual ~BodyStream() = default;
  virtual bool write(const char* p, size_t n) = 0;
  virtual void end() = 0;  // the whole body arrived (not called after write() returned false)
};

// A response body read as it is sent instead of held in memory (a file's
// content, GET /v1/files/{id}/content). size() is the Content-Length; the
// session calls read() for the next piece whenever the socket has taken the
// last one; read() returns 0 at the end, or throws when the source fails
// (the connection is then closed: the client sees a short body).
class BodySource {
 public:
  virtual ~BodySource() = default;
  virtual size_t size() const = 0;
  virtual size_t read(char* p, size_t n) = 0;
};

struct HttpReq {
  std::string method;         // "GET", "POST", ...
  std::string target;         // path and query
  std::string authorization;  // the Authorization header, if any
  std::string if_none_match;  // the If-None-Match header, if any
  std::string content_type;   // the Content-Type header, if any
  std::string body;
  std::shared_ptr<BodyStream> body_stream;  // set instead of `body` for a streamed body
};

struct HttpResp {
  int status = 200;
  std::string content_type = "application/json";
  std::string body;
  std::vector<std::pair<std::string, std::string>> headers;  // extra (Retry-After, Allow, ...)
  std::shared_ptr<BodySource> body_source;  // set instead of `body` for a streamed body
};

// "OK", "Not Found", ... for a status line.
const char* http_reason(int status);

}  // namespace ms
