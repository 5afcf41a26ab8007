// moeserve tokenize — prints the token ids of a text or a chat as a JSON array.
#include <iostream>
#include <nlohmann/json.hpp>

#include "cli_common.h"
#include "commands.h"
#include "core/error.h"
#include "format/model_desc.h"

namespace ms::cli {

void add_tokenize(CLI::App& app) {
  struct Args {
    RuntimeOptions rt;
    std::string text, chat;
    bool has_text = false;
  };
  auto a = std::make_shared<Args>();
  CLI::App* cmd = app.add_subcommand("tokenize", "Print token ids as a JSON array");
  cmd->add_option("-m,--model", a->rt.model_path, "Hugging Face model directory or .gguf file (default: bundled model)");
  auto* t = cmd->add_option("--text", a->text, "Text to encode (no BOS)");
  auto* c = cmd->add_option("--chat", a->chat, "JSON file with an OpenAI-style messages array (full chat prompt)");
  t->excludes(c);
  cmd->callback([a, t] {
    if (t->count() == 0 && a->chat.empty()) bad_input("tokenize: give --text or --chat");
    const RuntimeOptions ro = resolve(a->rt);
    const ModelDesc desc = load_model_desc(ro.model_path);
    auto tok = load_tokenizer(desc);
    std::vector<int32_t> ids = a->chat.empty() ? tok->encode(a->text) : encode_chat(*tok, read_chat_file(a->chat));
    std::cout << nlohmann::json(ids).dump() << "\n";
  });
}

}  // namespace ms::cli
