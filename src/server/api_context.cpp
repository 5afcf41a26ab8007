// api_context.cpp — shared server state and the request log (see api_context.h).
#include "server/api_context.h"

#include <cstdio>
#include <ctime>

#include "server/http_types.h"
#include "tokenizer/tokenizer.h"

namespace ms {

ApiContext::ApiContext(ServerOptions o)
    : opts(std::move(o)), started_unix(static_cast<int64_t>(std::time(nullptr))) {
  models_ = opts.models;
  if (!models_) {
    ModelRegistry::Options ro;
    ro.grammar_cache = opts.grammar_cache;
    ro.grammar_mask_cache = opts.grammar_mask_cache;
    own_models_ = std::make_unique<ModelRegistry>(ro, nullptr);
    models_ = own_models_.get();
  }
}

void ApiContext::set_ready(const ServerBackend& b) {
  backend_ = b;
  if (b.tokenizer && !structured_)
    structured_ = std::make_unique<StructuredRuntime>(*b.tokenizer, opts.grammar_cache, opts.grammar_mask_cache);
  if (own_models_ && !own_models_->is_model(opts.served_model_name)) own_models_->add_static(opts.served_model_name, b);
  ready_.store(true, std::memory_order_release);
}

void ApiContext::set_ready() { ready_.store(true, std::memory_order_release); }

ModelLimits ApiContext::limits() const {
  ModelLimits l;
  l.vocab_size = backend_.tokenizer ? backend_.tokenizer->vocab_size() : 0;
  l.max_context = backend_.max_context;
  return l;
}

void ApiContext::log(const RequestLog& r) const {
  if (!opts.log_requests) return;
  char ts[32];
  std::time_t now = std::time(nullptr);
  std::tm tm{};
  gmtime_r(&now, &tm);
  std::strftime(ts, sizeof ts, "%Y-%m-%dT%H:%M:%SZ", &tm);
  std::string line = std::string(ts) + " request id=" + (r.id.empty() ? "-" : r.id) + " " + r.method + " " + r.path +
                     " status=" + std::to_string(r.status);
  char buf[160];
  if (r.prompt_tokens >= 0) {
    std::snprintf(buf, sizeof buf, " prompt_tokens=%lld completion_tokens=%lld", (long long)r.prompt_tokens,
                  (long long)r.completion_tokens);
    line += buf;
    if (r.ttft_ms >= 0) {
      std::snprintf(buf, sizeof buf, " ttft_ms=%.1f", r.ttft_ms);
      line += buf;
    } else {
      line += " ttft_ms=-";
    }
  }
  std::snprintf(buf, sizeof buf, " duration_ms=%.1f", r.duration_ms);
  line += buf;
  if (!r.note.empty()) line += " " + r.note;
  line += "\n";
  std::fputs(line.c_str(), stderr);  // one call: lines from several threads do not interleave
}

const char* http_reason(int status) {
  switch (status) {
    case 100: return "Continue";
    case 200: return "OK";
    case 304: return "Not Modified";
    case 400: return "Bad Request";
    case 401: return "Unauthorized";
    case 403: return "Forbidden";
    case 404: return "Not Found";
    case 405: return "Method Not Allowed";
    case 408: return "Request Timeout";
    case 411: return "Length Required";
    case 413: return "Payload Too Large";
    case 415: return "Unsupported Media Type";
    case 422: return "Unprocessable Entity";
    case 429: return "Too Many Requests";
    case 431: return "Request Header Fields Too Large";
    case 499: return "Client Closed Request";
    case 500: return "Internal Server Error";
    case 501: return "Not Implemented";
    case 503: return "Service Unavailable";
    case 505: return "HTTP Version Not Supported";
    default: return "Unknown";
  }
}

}  // namespace ms
