// cmd_serve.cpp — `moeserve serve`: the OpenAI-compatible HTTP server.
//
// Starts listening first (/health answers 503 while loading, /livez 200), loads
// the model, becomes ready, and on SIGINT/SIGTERM drains: /health 503, stops
// accepting, lets in-flight requests finish for up to --drain-timeout seconds,
// cancels the rest and exits 0.
#include <sys/resource.h>

#include <csignal>
#include <cstdio>
#include <filesystem>
#include <memory>
#include <string>

#include "cli_common.h"
#include "commands.h"
#include "core/error.h"
#include "core/file_util.h"
#include "runtime.h"
#include "serve_multi.h"
#include "batch/batch_service.h"
#include "governance/governor.h"
#include "governance/store.h"
#include "server/batch_executor.h"
#include "server/http_server.h"

namespace ms::cli {

namespace {

struct ServeArgs {
  RuntimeOptions rt;  // --threads, --quant, --kv-dtype
  std::vector<std::string> models;   // -m PATH | -m NAME=PATH (repeatable; serve_multi.h)
  std::string config;                // --config FILE.toml (serve_config.h)
  ServeConfig cfg;                   // its contents
  int64_t models_memory_mb = 0;      // --models-memory-mb
  int max_batch = 64;
  int64_t kv_cache_mb = 0;
  int max_queue = 1024;
  int max_step_tokens = 512;
  std::string host = "127.0.0.1";
  int port = 8080;
  int io_threads = 2;
  std::string served_name;
  std::string api_key;
  double max_body_mb = 4.0;
  double header_timeout = 10.0;
  double body_timeout = 30.0;
  double idle_timeout = 60.0;
  bool no_playground = false;
  int grammar_cache = 64;
  int grammar_mask_cache = 1024;
  std::string state;                 // governance: SQLite file or postgresql:// URL
  double log_payloads = 0;
  int payload_retention_days = 0;
  int64_t tpm_default_reservation = 0;
  bool metrics_require_key = false;
  double drain_timeout = 30.0;       // SIGTERM: seconds in-flight requests may take to finish
  std::string data_dir;              // the Batch API's files (and batch.db without a --state file)
  double max_file_mb = 200;
  int batch_window = 0;              // batch lines in flight (0: --max-batch)
  double batch_expiry_s = 24 * 3600;  // a batch's completion window ("24h"); shorter only for tests
  double batch_lease_s = 30;          // a replica's hold on a running batch (PostgreSQL state)
  std::string replica_id;             // this replica in the batch leases ("": a fresh id per process)
};

// "models/tiny-mixtral-kjv/" -> "tiny-mixtral-kjv"; "x/model.Q8_0.gguf" -> "model.Q8_0".
std::string name_from_path(const std::string& path) {
  std::filesystem::path p(path);
  if (!p.has_filename()) p = p.parent_path();
  if (p.extension() == ".gguf") return p.stem().string();
  return p.filename().string();
}

void raise_fd_limit() {
  rlimit rl{};
  if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur < rl.rlim_max) {
    rl.rlim_cur = rl.rlim_max;
    setrlimit(RLIMIT_NOFILE, &rl);
  }
}

std::chrono::milliseconds secs(double s, const char* flag) {
  if (!(s > 0) || s > 86400) throw Error(ErrorKind::BadInput, std::string(flag) + ": expected seconds in (0, 86400]");
  return std::chrono::milliseconds(static_cast<int64_t>(s * 1000));
}

void run_serve(const ServeArgs& a) {
  if (a.port < 0 || a.port > 65535) throw Error(ErrorKind::BadInput, "--port: expected 0..65535");
  if (a.io_threads < 1 || a.io_threads > 64) throw Error(ErrorKind::BadInput, "--io-threads: expected 1..64");
  if (a.max_batch < 1) throw Error(ErrorKind::BadInput, "--max-batch: expected >= 1");
  if (a.max_queue < 1) throw Error(ErrorKind::BadInput, "--max-queue: expected >= 1");
  if (a.kv_cache_mb < 0) throw Error(ErrorKind::BadInput, "--kv-cache-mb: expected >= 0");
  if (!(a.max_body_mb > 0) || a.max_body_mb > 1024) throw Error(ErrorKind::BadInput, "--max-body-mb: expected (0, 1024]");
  if (a.grammar_cache < 0 || a.grammar_cache > 100000) throw Error(ErrorKind::BadInput, "--grammar-cache: expected 0..100000");
  if (a.grammar_mask_cache < 0 || a.grammar_mask_cache > 1000000)
    throw Error(ErrorKind::BadInput, "--grammar-mask-cache: expected 0..1000000");
  if (a.models_memory_mb < 0 || a.models_memory_mb > (int64_t(1) << 30))
    throw Error(ErrorKind::BadInput, "--models-memory-mb: expected 0..1073741824 (0: no budget)");

  if (!(a.log_payloads >= 0 && a.log_payloads <= 1)) throw Error(ErrorKind::BadInput, "--log-payloads: expected a fraction in [0, 1]");
  if (a.payload_retention_days < 0 || a.payload_retention_days > 36500)
    throw Error(ErrorKind::BadInput, "--payload-retention-days: expected 0..36500");
  if (!(a.drain_timeout >= 0) || a.drain_timeout > 86400)
    throw Error(ErrorKind::BadInput, "--drain-timeout: expected seconds in [0, 86400]");
  if (a.tpm_default_reservation < 0 || a.tpm_default_reservation > 1'000'000'000)
    throw Error(ErrorKind::BadInput, "--tpm-default-reservation: expected 0..1000000000");
  if (a.state.empty() && (a.log_payloads > 0 || a.payload_retention_days > 0))
    throw Error(ErrorKind::BadInput, "--log-payloads and --payload-retention-days need --state");
  if (!a.state.empty() && !a.api_key.empty())
    throw Error(ErrorKind::BadInput, "--api-key and --state exclude each other: with --state, create keys with 'moeserve keys create'");

  // Governance first: a bad or unreachable state store is a start-up error (exit 2).
  std::unique_ptr<gov::Governor> governor;
  if (!a.state.empty()) {
    gov::GovernorOptions go;
    go.location = a.state;
    go.log_payloads = a.log_payloads;
    go.payload_retention_days = a.payload_retention_days;
    go.default_reservation = a.tpm_default_reservation;
    go.metrics_require_key = a.metrics_require_key;
    governor = std::make_unique<gov::Governor>(go);
    std::fprintf(stderr, "moeserve: governance on (%s state)\n", governor->store().kind().c_str());
  }

  // The Batch API: on with --data-dir or a --state file (then in STATE.files/),
  // or in the database with a postgresql:// --state (the files too; a spool
  // for uploads under --data-dir, or a private temporary directory).
  TempDir spool;  // (declared first: it outlives the service)
  std::unique_ptr<batch::BatchService> batches;
  if (!(a.max_file_mb > 0) || a.max_file_mb > 65536) throw Error(ErrorKind::BadInput, "--max-file-mb: expected (0, 65536]");
  if (a.batch_window < 0 || a.batch_window > 65536) throw Error(ErrorKind::BadInput, "--batch-window: expected 0..65536");
  if (!(a.batch_expiry_s >= 1) || a.batch_expiry_s > 24 * 3600)
    throw Error(ErrorKind::BadInput, "--batch-expiry-s: expected [1, 86400]");
  if (!(a.batch_lease_s >= 1) || a.batch_lease_s > 3600)
    throw Error(ErrorKind::BadInput, "--batch-lease-s: expected [1, 3600]");
  if (a.replica_id.size() > 128 || a.replica_id.find_first_not_of("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ"
                                                                    "0123456789._:-") != std::string::npos)
    throw Error(ErrorKind::BadInput, "--replica-id: expected up to 128 letters, digits and . _ : -");
  {
    const bool pg_state = !a.state.empty() && gov::is_postgres_url(a.state);
    if (!a.data_dir.empty() || !a.state.empty()) {
      batch::ServiceOptions bo;
      if (pg_state) {
        bo.state = a.state;  // shared by the replicas
        bo.files_dir = !a.data_dir.empty() ? a.data_dir + "/spool" : spool.create("moeserve-spool");
      } else {
        const std::string dir = !a.data_dir.empty() ? a.data_dir : a.state + ".files";
        bo.files_dir = dir + "/files";
        bo.state = dir + "/batch.db";  // beside the governance state, in a file of its own
      }
      if (!a.data_dir.empty()) std::filesystem::create_directories(a.data_dir);
      bo.max_file_bytes = static_cast<int64_t>(a.max_file_mb * 1024 * 1024);
      bo.window = a.batch_window > 0 ? a.batch_window : a.max_batch;
      bo.expiry_s = static_cast<int64_t>(a.batch_expiry_s);
      bo.lease_ms = static_cast<int64_t>(a.batch_lease_s * 1000);
      bo.runner_id = a.replica_id;
      batches = std::make_unique<batch::BatchService>(bo);
    }
  }

  RuntimeOptions ro = a.rt;
  const bool multi = is_multi_model(a.models, !a.config.empty());
  if (!multi && !a.models.empty()) ro.model_path = a.models.front();
  ro = resolve(ro);
  ro.kv_cache_mb = a.kv_cache_mb;
  ro.max_batch = a.max_batch;
  ro.max_queue = a.max_queue;
  ro.max_step_tokens = a.max_step_tokens;

  ServerOptions so;
  so.host = a.host;
  so.port = static_cast<uint16_t>(a.port);
  so.io_threads = a.io_threads;
  so.served_model_name = a.served_name.empty() ? name_from_path(ro.model_path) : a.served_name;
  so.api_key = a.api_key;
  so.playground = !a.no_playground;
  so.governance = governor.get();
  so.metrics_require_key = a.metrics_require_key;
  so.batches = batches.get();
  so.max_file_bytes = static_cast<size_t>(a.max_file_mb * 1024 * 1024);
  so.max_body_bytes = static_cast<size_t>(a.max_body_mb * 1024 * 1024);
  so.header_timeout = secs(a.header_timeout, "--header-timeout");
  so.body_timeout = secs(a.body_timeout, "--body-timeout");
  so.idle_timeout = secs(a.idle_timeout, "--idle-timeout");
  so.grammar_cache = static_cast<size_t>(a.grammar_cache);
  so.grammar_mask_cache = static_cast<size_t>(a.grammar_mask_cache);

  if (multi) {  // several models: one registry, loaded and unloaded at run time
    if (!a.served_name.empty())
      throw Error(ErrorKind::BadInput, "--served-model-name names a single -m PATH; name several models with -m NAME=PATH");
    MultiServeInput in;
    in.config = &a.cfg;
    in.config_path = a.config;
    in.model_args = a.models;
    in.defaults = ModelDefaults{a.rt.quant, a.rt.kv_dtype, a.kv_cache_mb, a.max_batch, a.max_queue, a.max_step_tokens};
    in.threads = a.rt.threads;
    in.memory_mb = a.models_memory_mb;
    in.drain_timeout = a.drain_timeout;
    in.batches = batches.get();
    run_serve_multi(so, in);
    governor.reset();  // flushes the queued usage rows
    return;
  }

  // A model file the bounds refuse (format/model_limits.h) is reported on
  // one line before the port opens; the weights are loaded after it opens.
  (void)load_model_desc(ro.model_path);
  check_device_options(ro);  // --device, --experts-on: refused before the port opens too

  std::signal(SIGPIPE, SIG_IGN);
  raise_fd_limit();

  Server server(so);
  server.stop_on_signals();
  server.start();
  const std::string url = "http://" + (a.host.find(':') != std::string::npos ? "[" + a.host + "]" : a.host) + ":" +
                          std::to_string(server.port());
  std::fprintf(stderr, "moeserve: listening on %s, loading %s\n", url.c_str(), ro.model_path.c_str());

  std::unique_ptr<Runtime> rt;
  try {
    rt = load_runtime(ro);
  } catch (...) {
    server.stop();
    throw;
  }
  if (server.stop_requested()) {
    server.stop();
    if (rt && rt->engine) rt->engine->stop();
    std::fprintf(stderr, "moeserve: stopped\n");
    return;
  }
  ServerBackend backend;
  try {
    backend.tokenizer = &need_tokenizer(*rt, "serve");
  } catch (...) {
    server.stop();
    throw;
  }
  rt->engine->start();

  backend.engine = rt->engine.get();
  backend.max_context = rt->desc.cfg.max_position_embeddings;
  backend.num_layers = rt->desc.cfg.num_layers;
  backend.num_experts = rt->desc.cfg.num_experts;
  server.set_ready(backend);
  std::unique_ptr<BatchExecutor> batch_exec;
  if (batches) {
    batch_exec = std::make_unique<BatchExecutor>(server.api_context());
    batches->start(batch_exec.get());  // resumes unfinished batches
  }
  std::fprintf(stderr, "moeserve: ready: serving '%s' on %s (OpenAI API under /v1%s)\n",
               so.served_model_name.c_str(), url.c_str(), so.playground ? ", playground at /" : "");

  server.wait_for_stop_request();
  if (a.drain_timeout > 0) {
    std::fprintf(stderr, "moeserve: draining (up to %gs): not ready, no new requests, finishing those in flight\n",
                 a.drain_timeout);
    const bool drained = server.drain(std::chrono::milliseconds(static_cast<int64_t>(a.drain_timeout * 1000)));
    std::fprintf(stderr, "moeserve: %s\n", drained ? "drained" : "drain timeout: cancelling what is left");
  }
  std::fprintf(stderr, "moeserve: shutting down\n");
  if (batches) batches->stop();    // in-flight batch lines are not recorded: they run again on restart
  if (batch_exec) batch_exec->stop();
  server.stop();         // no new work; what is still in flight is cancelled; I/O threads joined
  rt->engine->stop();    // before the server (its callbacks post to the server's strands)
  rt.reset();
  governor.reset();      // flushes the queued usage rows
  std::fprintf(stderr, "moeserve: stopped\n");
}

}  // namespace

void add_serve(CLI::App& app) {
  auto a = std::make_shared<ServeArgs>();
  CLI::App* cmd = app.add_subcommand("serve", "Serve models over an OpenAI-compatible HTTP API");
  add_model_options(cmd, a->rt);
  cmd->remove_option(cmd->get_option("-m"));
  cmd->add_option("-m,--model", a->models,
                  "Model to serve: PATH (HF directory or .gguf; default: bundled model) or NAME=PATH; repeatable");
  cmd->add_option("--config", a->config, "TOML file: models, endpoints, server and governance settings (docs/SERVING.md)");
  cmd->add_option("--models-memory-mb", a->models_memory_mb,
                  "Memory budget of the loaded models in MiB (0: none); a load evicts the least recently used");
  cmd->add_option("--host", a->host, "Address to listen on")->capture_default_str();
  cmd->add_option("--port", a->port, "Port to listen on (0: any free port)")->capture_default_str();
  cmd->add_option("--max-batch", a->max_batch, "Most sequences in a running batch")->capture_default_str();
  cmd->add_option("--kv-cache-mb", a->kv_cache_mb, "KV cache size in MiB (0: automatic)");
  cmd->add_option("--max-queue", a->max_queue, "Waiting requests beyond this get 429")->capture_default_str();
  cmd->add_option("--max-step-tokens", a->max_step_tokens, "Token budget of one engine step")->capture_default_str();
  cmd->add_option("--served-model-name", a->served_name, "Model name clients use (default: from the path)");
  cmd->add_option("--api-key", a->api_key, "Require 'Authorization: Bearer KEY'");
  cmd->add_option("--io-threads", a->io_threads, "HTTP I/O threads")->capture_default_str();
  cmd->add_option("--max-body-mb", a->max_body_mb, "Largest request body in MiB (larger: 413)")->capture_default_str();
  cmd->add_option("--header-timeout", a->header_timeout, "Seconds to receive a request's headers")->capture_default_str();
  cmd->add_option("--body-timeout", a->body_timeout, "Seconds to receive a request's body")->capture_default_str();
  cmd->add_option("--idle-timeout", a->idle_timeout, "Seconds a keep-alive connection may idle")->capture_default_str();
  cmd->add_flag("--no-playground", a->no_playground, "Do not serve the playground web page at /");
  cmd->add_option("--grammar-cache", a->grammar_cache, "Compiled structured-output grammars kept (LRU)")->capture_default_str();
  cmd->add_option("--grammar-mask-cache", a->grammar_mask_cache,
                  "Token masks kept per compiled grammar (LRU; each vocab/8 bytes)")->capture_default_str();
  cmd->add_option("--state", a->state, "Governance state: a SQLite file or a postgresql:// URL (keys, limits, usage)");
  cmd->add_option("--log-payloads", a->log_payloads, "Share of requests whose payloads are stored (0..1)")->capture_default_str();
  cmd->add_option("--payload-retention-days", a->payload_retention_days, "Prune stored payloads older than N days (0: keep)");
  cmd->add_option("--tpm-default-reservation", a->tpm_default_reservation,
                  "TPM reservation for a request without max_tokens (0: prompt + the max the context allows)");
  cmd->add_flag("--metrics-require-key", a->metrics_require_key, "/health and /metrics need a key too");
  cmd->add_option("--drain-timeout", a->drain_timeout,
                  "On SIGTERM: seconds in-flight requests may take to finish (0: cancel them at once)")
      ->capture_default_str();
  cmd->add_option("--data-dir", a->data_dir,
                  "Batch API storage: batch.db and the uploaded and result files; "
                  "default with a --state file: STATE.files/ (with a postgresql:// --state: the database, "
                  "and this directory only spools uploads)");
  cmd->add_option("--max-file-mb", a->max_file_mb, "Largest file upload (POST /v1/files) in MiB")->capture_default_str();
  cmd->add_option("--batch-window", a->batch_window, "Batch API lines in flight at most (0: --max-batch)")->capture_default_str();
  // For tests of expiry (docs/BATCH.md): the API's "24h" window lasts this many seconds instead.
  cmd->add_option("--batch-expiry-s", a->batch_expiry_s, "Seconds a batch's '24h' completion window lasts (testing)")
      ->group("");
  cmd->add_option("--batch-lease-s", a->batch_lease_s,
                  "With a postgresql:// --state: seconds a replica holds a running batch without renewing it "
                  "(a killed replica's batch moves to another after this)")
      ->capture_default_str();
  cmd->add_option("--replica-id", a->replica_id,
                  "With a postgresql:// --state: this replica's stable name in the batch leases (e.g. the pod's "
                  "name), so that it takes its own batches back at once after a crash; never shared by two "
                  "live replicas (default: a fresh id per process)");
  cmd->callback([a, cmd] {
    if (!a->config.empty()) {  // the file's settings, for every flag not given on the command line
      a->cfg = load_serve_config(a->config);
      apply_config_settings(a->cfg, *cmd);
    }
    run_serve(*a);
  });
}

}  // namespace ms::cli
