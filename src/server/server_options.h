// server_options.h — what the HTTP server is configured with, and what it
// needs from the loaded model (ServerBackend, handed over once loading ends).
#pragma once
#include <chrono>
#include <cstddef>
#include <cstdint>
#include <string>

namespace ms {

class Engine;
class ModelRegistry;
class Tokenizer;
namespace gov {
class Governor;
}
namespace batch {
class BatchService;
}

struct ServerOptions {
  std::string host = "127.0.0.1";
  uint16_t port = 8080;                        // 0 = any free port (see Server::port())
  int io_threads = 2;                          // fixed; connections are multiplexed on them
  std::string served_model_name;               // the "model" clients send (single-model servers)
  ModelRegistry* models = nullptr;             // several models (serve --config / -m NAME=PATH); outlives the server
  std::string api_key;                         // empty = no authentication (ignored with governance)
  gov::Governor* governance = nullptr;         // --state: keys, limits, usage (outlives the server)
  bool metrics_require_key = false;            // /health and /metrics need a key too
  batch::BatchService* batches = nullptr;      // the Files and Batch APIs (--data-dir / --state file); null = off
  size_t max_file_bytes = 200u << 20;          // largest POST /v1/files body (--max-file-mb)
  size_t max_body_bytes = 4u << 20;            // larger bodies get 413
  size_t max_header_bytes = 16u << 10;
  std::chrono::milliseconds idle_timeout{60'000};    // keep-alive: waiting for a request
  std::chrono::milliseconds header_timeout{10'000};  // first byte -> end of headers
  std::chrono::milliseconds body_timeout{30'000};    // end of headers -> end of body
  std::chrono::milliseconds write_timeout{60'000};   // one write to a client that does not read
  std::chrono::milliseconds shutdown_grace{5'000};   // in-flight work on stop, then forced
  int max_connections = 8192;                  // beyond: accepted, answered 503, closed
  bool log_requests = true;                    // one line per request on stderr
  bool playground = true;                      // the web page at / and /playground (--no-playground)
  size_t grammar_cache = 64;                   // compiled structured-output grammars kept (LRU)
  size_t grammar_mask_cache = 1024;            // token masks kept per compiled grammar (LRU)
};

// The loaded model as the server sees it. Pointers stay valid until Server::stop().
struct ServerBackend {
  Engine* engine = nullptr;
  const Tokenizer* tokenizer = nullptr;
  int64_t max_context = 0;
  int64_t num_layers = 0;
  int64_t num_experts = 0;
  int64_t max_queue = 0;                       // the engine's queue bound (0: unknown); fallback routing checks it
  int64_t vocab_size = 0;                      // the model's, for token-id prompts when there is no tokenizer
};

}  // namespace ms
