// moeserve — one binary, subcommands (see commands.h). User errors print one
// line "moeserve: error: ..." and exit 2.
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <string>

#include "commands.h"
#include "core/error.h"

namespace ms::cli {

std::string default_model_path() {
  if (const char* env = std::getenv("MOESERVE_MODEL"); env && *env) return env;
  // Next to the binary (installed layouts), then the source tree it was built from.
  std::error_code ec;
  const auto exe = std::filesystem::read_symlink("/proc/self/exe", ec);
  if (!ec) {
    for (auto dir = exe.parent_path(); !dir.empty() && dir != dir.root_path(); dir = dir.parent_path()) {
      const auto cand = dir / "models" / "tiny-mixtral-kjv";
      if (std::filesystem::exists(cand / "config.json", ec)) return cand.string();
    }
  }
  return MOESERVE_DEFAULT_MODEL;
}

}  // namespace ms::cli

int main(int argc, char** argv) {
  CLI::App app{"moeserve: inference server for Mixtral-family mixture-of-experts models"};
  app.require_subcommand(1);
  app.set_help_all_flag("--help-all", "Show help for all subcommands");
  ms::cli::add_generate(app);
  ms::cli::add_logits(app);
  ms::cli::add_tokenize(app);
  ms::cli::add_perplexity(app);
  ms::cli::add_serve(app);
  ms::cli::add_synth(app);
  ms::cli::add_bench(app);
  ms::cli::add_governance(app);
  ms::cli::add_batch(app);
  try {
    app.parse(argc, argv);
  } catch (const CLI::CallForHelp& e) {
    return app.exit(e);
  } catch (const CLI::CallForAllHelp& e) {
    return app.exit(e);
  } catch (const CLI::ParseError& e) {
    std::fprintf(stderr, "moeserve: error: %s\n", e.what());
    return 2;
  } catch (const ms::Error& e) {
    std::fprintf(stderr, "moeserve: error: %s\n", e.what());
    return e.kind() == ms::ErrorKind::Internal ? 1 : 2;
  } catch (const std::bad_alloc&) {
    std::fprintf(stderr, "moeserve: error: out of memory\n");
    return 1;
  } catch (const std::exception& e) {
    std::fprintf(stderr, "moeserve: error: %s\n", e.what());
    return 1;
  }
  return 0;
}
