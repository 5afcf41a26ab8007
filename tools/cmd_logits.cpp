// moeserve logits — writes the last position's logits (vocab_size float32, little-endian).
#include <cstdio>
#include <numeric>

#include "cli_common.h"
#include "commands.h"
#include "core/error.h"
#include "mixtral_runner.h"

namespace ms::cli {

void add_logits(CLI::App& app) {
  struct Args {
    RuntimeOptions rt;
    std::string ids, out;
  };
  auto a = std::make_shared<Args>();
  CLI::App* cmd = app.add_subcommand("logits", "Write the logits of the last prompt position to a file");
  add_model_options(cmd, a->rt);
  cmd->add_option("--ids", a->ids, "Prompt token ids, comma-separated (used as given)")->required();
  cmd->add_option("--out", a->out, "Output file: vocab_size float32 values, little-endian")->required();
  cmd->callback([a] {
    RuntimeOptions ro = resolve(a->rt);
    const std::vector<int32_t> ids = parse_ids(a->ids, "--ids");
    ro.max_batch = 1;
    auto rt = load_runtime(ro);
    const ModelConfig& c = rt->desc.cfg;
    for (int32_t id : ids)
      if (id >= c.vocab_size) bad_input("--ids: token id " + std::to_string(id) + " outside the vocabulary");
    const int32_t bs = ro.block_size;
    std::vector<int32_t> table((ids.size() + size_t(bs) - 1) / size_t(bs));
    if (int64_t(table.size()) > rt->runner->kv().num_blocks()) bad_input("--ids: prompt does not fit the KV cache");
    std::iota(table.begin(), table.end(), 0);
    SeqChunk chunk{ids.data(), int32_t(ids.size()), 0, table.data(), int32_t(table.size()), LogitsWanted::Last};
    ForwardOutput out;
    rt->runner->forward({chunk}, out);
    FILE* f = std::fopen(a->out.c_str(), "wb");
    if (!f) bad_input(a->out + ": cannot open for writing");
    const size_t n = size_t(c.vocab_size);
    const bool ok = std::fwrite(out.row(0), sizeof(float), n, f) == n;
    if (std::fclose(f) != 0 || !ok) bad_input(a->out + ": write failed");
  });
}

}  // namespace ms::cli
