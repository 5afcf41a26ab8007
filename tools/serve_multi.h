// serve_multi.h — `moeserve serve` with several models: --config FILE.toml,
// repeated -m, or -m NAME=PATH. One ModelHost (shared compute threads,
// shared weight mappings) behind one ModelRegistry (states, load/unload,
// memory budget, split endpoints). A single plain `-m PATH` keeps the
// single-model path in cmd_serve.cpp.
#pragma once
#include <cstdint>
#include <string>
#include <vector>

#include <CLI/CLI.hpp>

#include "model_host.h"
#include "serve_config.h"
#include "batch/batch_service.h"
#include "server/server_options.h"

namespace ms::cli {

struct MultiServeInput {
  const ServeConfig* config = nullptr;  // the parsed --config (may be empty)
  std::string config_path;
  std::vector<std::string> model_args;  // -m values
  ModelDefaults defaults;               // the flags' per-model values
  int threads = 0;                      // --threads (0: the largest per-model value, else physical cores)
  int64_t memory_mb = 0;                // --models-memory-mb
  double drain_timeout = 0;             // --drain-timeout (SIGTERM: seconds in-flight requests may take)
  batch::BatchService* batches = nullptr;  // the Batch API, when on (lines are routed like online requests)
};

// True for --config, several -m, or -m NAME=PATH.
bool is_multi_model(const std::vector<std::string>& model_args, bool have_config);

// Gives every [server]/[governance] setting to its flag unless the flag was
// on the command line (the command line wins). Bad values: the flag's error.
void apply_config_settings(const ServeConfig& c, CLI::App& cmd);

// Declares, listens, preloads, serves until SIGINT/SIGTERM, shuts down.
// Throws Error(BadInput) (exit 2) on a bad declaration or a failed preload.
void run_serve_multi(ServerOptions so, const MultiServeInput& in);

}  // namespace ms::cli
