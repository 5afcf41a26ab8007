// api_context.h — state shared by every connection of one server: options,
// metrics, readiness and the loaded model (set once, then read lock-free).
#pragma once
#include <atomic>
#include <chrono>
#include <cstdint>
#include <memory>
#include <string>

#include "server/metrics.h"
#include "server/model_registry.h"
#include "server/openai_schema.h"
#include "server/server_options.h"
#include "server/structured_request.h"

namespace ms {

// One line per request on stderr.
struct RequestLog {
  std::string id;        // request id (chatcmpl-..., cmpl-...) or "-"
  std::string method;
  std::string path;
  int status = 0;
  int64_t prompt_tokens = -1;      // -1: not a generation
  int64_t completion_tokens = -1;
  double ttft_ms = -1;
  double duration_ms = 0;
  std::string note;      // finish reasons, error message
};

class ApiContext {
 public:
  explicit ApiContext(ServerOptions o);

  const ServerOptions opts;
  ServerMetrics metrics;
  const int64_t started_unix;

  bool ready() const { return ready_.load(std::memory_order_acquire); }
  bool stopping() const { return stopping_.load(std::memory_order_acquire); }
  void set_stopping() { stopping_.store(true, std::memory_order_release); }
  // Publishes the backend as the one model (named opts.served_model_name);
  // ready() is true from then on.
  void set_ready(const ServerBackend& b);
  // With opts.models: the registry's models are being served from now on.
  void set_ready();
  // The served models: opts.models, or the one set_ready(backend) published.
  ModelRegistry& models() const { return *models_; }
  // After Server::stop(): nothing touches the engine any more.
  void set_unready() { ready_.store(false, std::memory_order_release); }
  const ServerBackend& backend() const { return backend_; }  // only once ready()
  ModelLimits limits() const;
  // Structured outputs over the served tokenizer (null until ready).
  StructuredRuntime* structured() const { return structured_.get(); }

  void log(const RequestLog& r) const;

 private:
  ServerBackend backend_;
  std::unique_ptr<StructuredRuntime> structured_;
  std::unique_ptr<ModelRegistry> own_models_;  // without opts.models
  ModelRegistry* models_ = nullptr;
  std::atomic<bool> ready_{false};
  std::atomic<bool> stopping_{false};
};

}  // namespace ms
