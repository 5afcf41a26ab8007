// commands.h — each subcommand of the moeserve binary lives in its own file
// (cmd_<name>.cpp) and registers itself on the CLI11 app here. A command
// reports user errors by throwing ms::Error; main() prints one line
// "moeserve: error: <message>" and exits 2.
#pragma once
#include <CLI/CLI.hpp>

namespace ms::cli {

void add_generate(CLI::App& app);
void add_logits(CLI::App& app);
void add_tokenize(CLI::App& app);
void add_perplexity(CLI::App& app);
void add_serve(CLI::App& app);
void add_synth(CLI::App& app);
void add_bench(CLI::App& app);
void add_governance(CLI::App& app);  // keys, limits, prices, usage, payloads
void add_batch(CLI::App& app);       // Batch API lines offline (cmd_batch.cpp)

// Default model path when -m is not given: $MOESERVE_MODEL, else the bundled model.
std::string default_model_path();

}  // namespace ms::cli
