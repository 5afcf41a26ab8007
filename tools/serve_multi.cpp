// serve_multi.cpp — the multi-model server's composition (see serve_multi.h).
#include "governance/governor.h"
#include "server/batch_executor.h"
#include "serve_multi.h"

#include <sys/resource.h>

#include <algorithm>
#include <csignal>
#include <cstdio>
#include <filesystem>
#include <memory>

#include "cli_common.h"
#include "core/error.h"
#include "server/http_server.h"
#include "server/model_registry.h"

namespace ms::cli {

namespace {

// "models/tiny-mixtral-kjv/" -> "tiny-mixtral-kjv"; "x/model.Q8_0.gguf" -> "model.Q8_0" (as cmd_serve.cpp).
std::string name_of(const std::string& path) {
  std::filesystem::path p(path);
  if (!p.has_filename()) p = p.parent_path();
  if (p.extension() == ".gguf") return p.stem().string();
  return p.filename().string();
}

std::string setting_text(const SettingValue& v) {
  if (const bool* b = std::get_if<bool>(&v)) return *b ? "true" : "false";
  if (const int64_t* i = std::get_if<int64_t>(&v)) return std::to_string(*i);
  if (const double* d = std::get_if<double>(&v)) {
    char buf[64];
    std::snprintf(buf, sizeof buf, "%.17g", *d);
    return buf;
  }
  return std::get<std::string>(v);
}

}  // namespace

bool is_multi_model(const std::vector<std::string>& model_args, bool have_config) {
  if (have_config || model_args.size() > 1) return true;
  return model_args.size() == 1 && !split_model_arg(model_args.front()).first.empty();
}

void apply_config_settings(const ServeConfig& c, CLI::App& cmd) {
  for (const auto& [flag, value] : c.settings) {
    CLI::Option* opt = cmd.get_option_no_throw(flag);
    if (!opt) bad_input("--config: no flag " + flag);
    if (opt->count() > 0) continue;  // the command line wins
    try {
      opt->add_result(setting_text(value));
      opt->run_callback();
    } catch (const CLI::Error& e) {
      bad_input("--config: " + flag + ": " + e.what());
    }
  }
}

void run_serve_multi(ServerOptions so, const MultiServeInput& in) {
  // The declared models: the file's, then each -m.
  ServeConfig cfg = in.config ? *in.config : ServeConfig{};
  for (const std::string& arg : in.model_args) {
    auto [name, path] = split_model_arg(arg);
    ServedModelSpec m;
    m.name = name.empty() ? name_of(path) : name;
    m.path = path;
    cfg.models.push_back(std::move(m));
  }
  const std::string origin = in.config_path.empty() ? "-m" : in.config_path;
  if (cfg.models.empty()) bad_input(origin + ": no models declared (add [[models]] or -m NAME=PATH)");
  validate_serve_config(cfg, origin);

  int threads = in.threads;
  if (threads <= 0)
    for (const ServedModelSpec& m : cfg.models) threads = std::max<int>(threads, static_cast<int>(m.threads.value_or(0)));
  ModelHost host(threads);  // outlives the registry: instances use its pool

  ModelRegistry::Options ro;
  ro.memory_budget_bytes = in.memory_mb << 20;
  ro.grammar_cache = so.grammar_cache;
  ro.grammar_mask_cache = so.grammar_mask_cache;
  ModelRegistry registry(ro, [&host](const std::string& name) { return host.load(name); });
  std::vector<std::string> preload;
  for (const ServedModelSpec& m : cfg.models) {
    ModelEntry e;
    try {
      e = host.declare(m, in.defaults);
    } catch (const Error& ex) {
      bad_input(origin + ": " + ex.what());
    }
    if (e.preload) preload.push_back(e.name);
    registry.add_model(std::move(e));
    for (const ProvisionedSpec& p : m.provisioned) {
      if (!so.governance) bad_input(origin + ": model '" + m.name + "': provisioned throughput needs governance (--state)");
      so.governance->set_provisioned(m.name, p.key, p.tokens_per_s);
      std::fprintf(stderr, "moeserve: model '%s': %.0f tokens/s provisioned for key '%s'\n", m.name.c_str(),
                   p.tokens_per_s, p.key.c_str());
    }
  }
  for (const EndpointSpec& e : cfg.endpoints) registry.add_endpoint(e);
  so.models = &registry;
  so.served_model_name = registry.default_name();

  std::signal(SIGPIPE, SIG_IGN);
  rlimit rl{};
  if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur < rl.rlim_max) {
    rl.rlim_cur = rl.rlim_max;
    setrlimit(RLIMIT_NOFILE, &rl);
  }

  Server server(so);
  server.stop_on_signals();
  server.start();
  const std::string url = "http://" + (so.host.find(':') != std::string::npos ? "[" + so.host + "]" : so.host) + ":" +
                          std::to_string(server.port());
  std::fprintf(stderr, "moeserve: listening on %s, loading %zu of %zu models (%d compute threads, shared)\n", url.c_str(),
               preload.size(), cfg.models.size(), host.pool().size());
  for (const std::string& name : preload) {
    if (server.stop_requested()) break;
    try {
      registry.load_now(name);
    } catch (...) {
      server.stop();
      registry.shutdown();
      throw;
    }
  }
  std::unique_ptr<BatchExecutor> batch_exec;
  if (!server.stop_requested()) {
    server.set_ready();
    if (in.batches) {
      batch_exec = std::make_unique<BatchExecutor>(server.api_context());
      in.batches->start(batch_exec.get());  // resumes unfinished batches
    }
    std::string names;
    for (const std::string& n : registry.names()) names += (names.empty() ? "'" : ", '") + n + "'";
    std::fprintf(stderr, "moeserve: ready: serving %s on %s (OpenAI API under /v1%s)\n", names.c_str(), url.c_str(),
                 so.playground ? ", playground at /" : "");
    server.wait_for_stop_request();
    if (in.drain_timeout > 0) {
      std::fprintf(stderr, "moeserve: draining (up to %gs): not ready, no new requests, finishing those in flight\n",
                   in.drain_timeout);
      const bool drained = server.drain(std::chrono::milliseconds(static_cast<int64_t>(in.drain_timeout * 1000)));
      std::fprintf(stderr, "moeserve: %s\n", drained ? "drained" : "drain timeout: cancelling what is left");
    }
    std::fprintf(stderr, "moeserve: shutting down\n");
  }
  if (in.batches) in.batches->stop();  // in-flight batch lines are not recorded: they run again on restart
  if (batch_exec) batch_exec->stop();
  server.stop();          // no new work; in-flight requests cancelled; I/O threads joined
  registry.shutdown();    // load threads joined, engines stopped
  std::fprintf(stderr, "moeserve: stopped\n");
}

}  // namespace ms::cli
