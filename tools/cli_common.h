// cli_common.h — options and helpers shared by the subcommands.
#pragma once
#include <CLI/CLI.hpp>
#include <cstdint>
#include <string>
#include <vector>

#include "core/file_util.h"
#include "runtime.h"
#include "tokenizer/chat.h"

namespace ms::cli {

// -m/--model, --threads, --quant, --kv-dtype, --device, --experts-on
void add_model_options(CLI::App* cmd, RuntimeOptions& o);
// Fills the default model path if -m was not given.
RuntimeOptions resolve(RuntimeOptions o);

// "1,2,3" -> ids; Error(BadInput) naming the flag on anything else.
std::vector<int32_t> parse_ids(const std::string& s, const char* flag);
// Reads an OpenAI-style messages array from a JSON file.
std::vector<ChatMessage> read_chat_file(const std::string& path);
using ms::read_file;  // core/file_util.h

}  // namespace ms::cli
