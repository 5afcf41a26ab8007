// http_types.h — a request and a response as the API layer sees them,
// independent of the HTTP library (the session converts).
#pragma once
#include <string>
#include <utility>
#include <vector>

namespace ms {

struct HttpReq {
  std::string method;         // "GET", "POST", ...
  std::string target;         // path and query
  std::string authorization;  // the Authorization header, if any
  std::string if_none_match;  // the If-None-Match header, if any
  std::string content_type;   // the Content-Type header, if any
  std::string body;
};

struct HttpResp {
  int status = 200;
  std::string content_type = "application/json";
  std::string body;
  std::vector<std::pair<std::string, std::string>> headers;  // extra (Retry-After, Allow, ...)
};

// "OK", "Not Found", ... for a status line.
const char* http_reason(int status);

}  // namespace ms
