#include "cli_common.h"

#include <fstream>
#include <nlohmann/json.hpp>
#include <sstream>

#include "commands.h"
#include "core/error.h"

namespace ms::cli {

void add_model_options(CLI::App* cmd, RuntimeOptions& o) {
  cmd->add_option("-m,--model", o.model_path, "Hugging Face model directory or .gguf file (default: bundled model)");
  cmd->add_option("--threads", o.threads, "Worker threads (default: physical cores)")->check(CLI::Range(1, 1024));
  cmd->add_option("--quant", o.quant, "Load-time quantization of float checkpoints: none|q8_0|q4_0|q4_k|mixed");
  cmd->add_option("--kv-dtype", o.kv_dtype, "KV cache type: auto|f32|f16 (auto: f16 for quantized GGUF files, else f32)");
  cmd->add_option("--device", o.device, "Where the model runs: cpu|cuda|cuda:N (default: cpu; cuda needs a CUDA build)");
  cmd->add_option("--experts-on", o.experts_on,
                  "With --device cuda: expert weights on cpu|gpu|auto (auto: as many layers' experts as fit)");
  cmd->add_option("--prefault", o.prefault,
                  "At load, fault the weights in and run one warm-up step so the first request runs warm: on|off "
                  "(default on)");
}

RuntimeOptions resolve(RuntimeOptions o) {
  if (o.model_path.empty()) o.model_path = default_model_path();
  return o;
}

std::vector<int32_t> parse_ids(const std::string& s, const char* flag) {
  std::vector<int32_t> ids;
  std::stringstream ss(s);
  std::string item;
  while (std::getline(ss, item, ',')) {
    size_t b = item.find_first_not_of(" \t"), e = item.find_last_not_of(" \t");
    if (b == std::string::npos) bad_input(std::string(flag) + ": empty item in '" + s + "'");
    item = item.substr(b, e - b + 1);
    size_t used = 0;
    long long v = 0;
    try {
      v = std::stoll(item, &used);
    } catch (const std::exception&) {
      used = 0;
    }
    if (used != item.size() || v < 0 || v > INT32_MAX)
      bad_input(std::string(flag) + ": '" + item + "' is not a token id");
    ids.push_back(int32_t(v));
  }
  if (ids.empty()) bad_input(std::string(flag) + ": no token ids given");
  return ids;
}

std::vector<ChatMessage> read_chat_file(const std::string& path) {
  using json = nlohmann::json;
  json j;
  try {
    j = json::parse(read_file(path));
  } catch (const json::exception& e) {
    bad_input(path + ": malformed JSON: " + e.what());
  }
  if (j.is_object() && j.contains("messages")) j = j["messages"];
  if (!j.is_array()) bad_input(path + ": expected a JSON array of messages");
  std::vector<ChatMessage> msgs;
  for (size_t i = 0; i < j.size(); ++i) {
    const json& m = j[i];
    if (!m.is_object() || !m.contains("role") || !m["role"].is_string() || !m.contains("content") ||
        !m["content"].is_string())
      bad_input(path + ": message " + std::to_string(i) + " needs string fields 'role' and 'content'");
    msgs.push_back({m["role"].get<std::string>(), m["content"].get<std::string>()});
  }
  return msgs;
}

}  // namespace ms::cli
