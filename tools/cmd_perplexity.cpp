// moeserve perplexity — llama.cpp's perplexity protocol:
//   tokens = [BOS] + encode(text); n_chunks = len / n_ctx non-overlapping
//   chunks of n_ctx tokens, the first token of each replaced by BOS; the
//   negative log-likelihood of the token following each position in
//   [n_ctx/2, n_ctx-2] is scored; PPL = exp(mean NLL).
// Prints a running estimate per chunk; the last line is JSON
// {"ppl": ..., "chunks": ..., "scored_tokens": ...}.
#include <cmath>
#include <cstdio>
#include <nlohmann/json.hpp>
#include <numeric>

#include "cli_common.h"
#include "commands.h"
#include "core/error.h"
#include "mixtral_runner.h"

namespace ms::cli {

namespace {

// -log softmax(logits)[target], in double.
double nll(const float* logits, int64_t n, int32_t target) {
  double mx = logits[0];
  for (int64_t i = 1; i < n; ++i) mx = std::max(mx, double(logits[i]));
  double sum = 0.0;
  for (int64_t i = 0; i < n; ++i) sum += std::exp(double(logits[i]) - mx);
  return mx + std::log(sum) - double(logits[target]);
}

}  // namespace

void add_perplexity(CLI::App& app) {
  struct Args {
    RuntimeOptions rt;
    std::string file;
    int32_t ctx = 512;
    int32_t batch_chunks = 4;
  };
  auto a = std::make_shared<Args>();
  CLI::App* cmd = app.add_subcommand("perplexity", "Perplexity of a text file (llama.cpp's protocol)");
  add_model_options(cmd, a->rt);
  cmd->add_option("-f,--file", a->file, "UTF-8 text file")->required();
  cmd->add_option("--ctx", a->ctx, "Tokens per chunk (default 512)")->check(CLI::Range(4, 1 << 20));
  cmd->add_option("--chunks-per-step", a->batch_chunks, "Chunks evaluated together (default 4)")->check(CLI::Range(1, 64));
  cmd->callback([a] {
    RuntimeOptions ro = resolve(a->rt);
    const std::string text = read_file(a->file);
    const int32_t n_ctx = a->ctx;
    const int32_t bs = ro.block_size;
    const int64_t blocks_per_chunk = (n_ctx + bs - 1) / bs;
    const ModelDesc probe = load_model_desc(ro.model_path);
    ro.kv_cache_mb = kv_cache_mb_for_blocks(ro, probe, blocks_per_chunk * a->batch_chunks);
    auto rt = load_runtime(ro);
    const ModelConfig& c = rt->desc.cfg;
    if (n_ctx > c.max_position_embeddings) bad_input("--ctx exceeds the model's context length");
    std::vector<int32_t> toks = need_tokenizer(*rt, "perplexity").encode(text);
    toks.insert(toks.begin(), c.bos_id);
    const int64_t n_chunks = int64_t(toks.size()) / n_ctx;
    if (n_chunks == 0)
      bad_input(a->file + ": " + std::to_string(toks.size()) + " tokens, fewer than one chunk of --ctx " +
                std::to_string(n_ctx));
    const int64_t per_step = std::min<int64_t>(a->batch_chunks, rt->runner->kv().num_blocks() / blocks_per_chunk);
    if (per_step < 1) bad_input("KV cache too small for one chunk");
    double total = 0.0;
    int64_t scored = 0;
    std::vector<std::vector<int32_t>> chunk_toks(static_cast<size_t>(per_step));
    std::vector<std::vector<int32_t>> tables(static_cast<size_t>(per_step));
    for (int64_t c0 = 0; c0 < n_chunks; c0 += per_step) {
      const int64_t nc = std::min(per_step, n_chunks - c0);
      std::vector<SeqChunk> step;
      for (int64_t k = 0; k < nc; ++k) {
        auto& ct = chunk_toks[size_t(k)];
        ct.assign(toks.begin() + (c0 + k) * n_ctx, toks.begin() + (c0 + k + 1) * n_ctx);
        ct[0] = c.bos_id;
        auto& tb = tables[size_t(k)];
        tb.resize(size_t(blocks_per_chunk));
        std::iota(tb.begin(), tb.end(), int32_t(k * blocks_per_chunk));
        step.push_back({ct.data(), n_ctx, 0, tb.data(), int32_t(blocks_per_chunk), LogitsWanted::All});
      }
      ForwardOutput out;
      rt->runner->forward(step, out);
      for (int64_t k = 0; k < nc; ++k) {
        const auto& ct = chunk_toks[size_t(k)];
        for (int32_t i = n_ctx / 2; i <= n_ctx - 2; ++i) {
          total += nll(out.row(out.first_row[size_t(k)] + i), c.vocab_size, ct[size_t(i) + 1]);
          ++scored;
        }
        std::fprintf(stderr, "[%lld] %.4f\n", static_cast<long long>(c0 + k + 1), std::exp(total / double(scored)));
      }
    }
    const nlohmann::json j = {{"ppl", std::exp(total / double(scored))}, {"chunks", n_chunks}, {"scored_tokens", scored}};
    std::printf("%s\n", j.dump().c_str());
  });
}

}  // namespace ms::cli
