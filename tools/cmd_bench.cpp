// moeserve bench — model speed on this machine: prefill tok/s per prompt
// length (the first run right after load also reported as "cold"), decode
// tok/s per batch size (aggregate over the batch), weight bytes read per
// decoded token at batch 1, the resulting GB/s, and peak RSS. The last line
// is JSON.
//
// It drives the model directly (no scheduler) with random token ids so the
// figures are the engine's compute alone. Each figure is the median of --reps
// runs. Memory bandwidth on a shared machine moves from minute to minute, so
// the read rate of the machine is probed right before and after every batch-1
// run (STREAM-style, the same number of threads) and batch-1 decode is also
// given as a fraction of it ("read_fraction"). Prefill is arithmetic-bound,
// so the int8 dot-product peak of the same threads is probed around the
// prefill runs (ops::probe_int8_gmacs) and each length's prefill is given as
// a fraction of the rate that peak would allow ("prefill_int8_fraction").
#include <algorithm>
#include <chrono>
#include <cstdio>
#include <fstream>
#include <map>
#include <nlohmann/json.hpp>
#include <numeric>
#include <random>
#include <sstream>

#include <sys/mman.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cstring>

#include "cli_common.h"
#include "commands.h"
#include "core/error.h"
#include "mixtral_runner.h"
#include "kernels/backend.h"
#include "kernels/ops.h"

namespace ms::cli {

namespace {

double now_s() {
  return std::chrono::duration<double>(std::chrono::steady_clock::now().time_since_epoch()).count();
}

int64_t peak_rss_mb() {
  std::ifstream in("/proc/self/status");
  std::string line;
  while (std::getline(in, line))
    if (line.rfind("VmHWM:", 0) == 0) return std::stoll(line.substr(6)) / 1024;
  return 0;
}

size_t mat_bytes(const MatView& m) { return m.row_stride * size_t(m.rows); }

// Weight bytes one decoded token reads: all attention and router weights, the
// k routed experts of each layer (experts have equal sizes), one embedding row
// and the output matrix.
size_t bytes_per_token(const Mixtral& m) {
  const ModelConfig& c = m.config();
  const MixtralWeights& w = m.weights();
  size_t b = w.tok_embd.row_stride + mat_bytes(w.output);
  for (const LayerWeights& l : w.layers) {
    b += mat_bytes(l.wq) + mat_bytes(l.wk) + mat_bytes(l.wv) + mat_bytes(l.wo);
    if (!l.router.empty()) b += mat_bytes(l.router);
    const size_t k = c.is_moe() ? size_t(c.experts_per_tok) : 1;
    b += k * (mat_bytes(l.w1[0]) + mat_bytes(l.w2[0]) + mat_bytes(l.w3[0]));
  }
  return b;
}

double median(std::vector<double> v) {
  if (v.empty()) return 0.0;
  std::sort(v.begin(), v.end());
  const size_t n = v.size();
  return n % 2 ? v[n / 2] : 0.5 * (v[n / 2 - 1] + v[n / 2]);
}

// Read rate of this machine (GB/s), STREAM-style: `threads` threads sum a
// 1 GiB buffer (huge pages where the kernel gives them), best of 3 passes.
// Runs in a forked child so its buffer never counts in our peak RSS.
double probe_read_gbps(int threads) {
  int fds[2];
  if (pipe(fds) != 0) return 0.0;
  const pid_t pid = fork();
  if (pid < 0) {
    close(fds[0]);
    close(fds[1]);
    return 0.0;
  }
  if (pid == 0) {
    close(fds[0]);
    const size_t bytes = size_t(1) << 30;
    double best = 0.0;
    void* buf = mmap(nullptr, bytes, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (buf != MAP_FAILED) {
      madvise(buf, bytes, MADV_HUGEPAGE);
      std::memset(buf, 1, bytes);
      ThreadPool pool(threads);
      for (int pass = 0; pass < 3; ++pass) {
        const double t0 = now_s();
        volatile uint64_t sink = ops::read_memory(buf, bytes, pool);
        (void)sink;
        best = std::max(best, double(bytes) / (now_s() - t0) / 1e9);
      }
    }
    const ssize_t w = write(fds[1], &best, sizeof best);
    _exit(w == ssize_t(sizeof best) ? 0 : 1);
  }
  close(fds[1]);
  double r = 0.0;
  if (read(fds[0], &r, sizeof r) != ssize_t(sizeof r)) r = 0.0;
  close(fds[0]);
  int st = 0;
  waitpid(pid, &st, 0);
  return r;
}

// int8 multiply-adds of a prefill of T tokens: the quantized projections and
// the k routed experts' matmuls of every layer for every token, and lm_head
// for the last token (float attention and the router are not counted).
double prefill_macs(const ModelConfig& c, int64_t T) {
  const double H = double(c.hidden_size), F = double(c.intermediate_size);
  const double QD = double(c.num_heads) * c.head_dim, KD = double(c.num_kv_heads) * c.head_dim;
  const double k = c.is_moe() ? double(c.experts_per_tok) : 1.0;
  const double per_layer = H * (QD + 2 * KD) + QD * H + k * 3 * H * F;
  return double(T) * per_layer * double(c.num_layers) + double(c.vocab_size) * H;
}

std::vector<int64_t> parse_list(const std::string& s, const char* flag, const char* what) {
  std::vector<int64_t> v;
  std::stringstream ss(s);
  std::string item;
  while (std::getline(ss, item, ',')) {
    try {
      size_t used = 0;
      const long long x = std::stoll(item, &used);
      if (used != item.size() || x <= 0 || x > (std::string(flag) == "--batch" ? 4096 : (1 << 20)))
        throw std::invalid_argument("");
      v.push_back(x);
    } catch (const std::exception&) {
      bad_input(std::string(flag) + ": '" + item + "' is not " + what);
    }
  }
  if (v.empty()) bad_input(std::string(flag) + ": empty list");
  return v;
}

}  // namespace

void add_bench(CLI::App& app) {
  struct Args {
    RuntimeOptions rt;
    std::string prompt = "512";
    int32_t gen = 64, decode_ctx = 16;
    std::string batch = "1,4,16";
    int32_t reps = 3;
  };
  auto a = std::make_shared<Args>();
  CLI::App* cmd = app.add_subcommand("bench", "Measure prefill and decode speed");
  add_model_options(cmd, a->rt);
  cmd->add_option("--prompt", a->prompt, "Prefill lengths in tokens, comma-separated (default 512)");
  cmd->add_option("--gen", a->gen, "Decode steps per batch size (default 64)")->check(CLI::Range(1, 1 << 20));
  cmd->add_option("--decode-ctx", a->decode_ctx,
                  "Tokens of each decode sequence's own prompt, i.e. the context decode starts at (default 16)")
      ->check(CLI::Range(1, 1 << 20));
  cmd->add_option("--batch", a->batch, "Decode batch sizes, comma-separated, or none (default 1,4,16)");
  cmd->add_option("--reps", a->reps, "Runs of each measurement; the median is reported (default 3)")
      ->check(CLI::Range(1, 100));
  cmd->callback([a] {
    RuntimeOptions ro = resolve(a->rt);
    const std::vector<int64_t> prompts = parse_list(a->prompt, "--prompt", "a prompt length in 1..1048576");
    const std::vector<int64_t> batches =
        a->batch == "none" ? std::vector<int64_t>{} : parse_list(a->batch, "--batch", "a batch size in 1..4096");
    const int64_t max_b = batches.empty() ? 1 : *std::max_element(batches.begin(), batches.end());
    const int64_t max_prompt = *std::max_element(prompts.begin(), prompts.end());
    const ModelDesc probe = load_model_desc(ro.model_path);
    const int32_t bs = ro.block_size;
    const int64_t ctx = std::max<int64_t>(max_prompt, int64_t(a->decode_ctx) + a->gen) + 1;
    const int64_t blocks_per_seq = (ctx + bs - 1) / bs;
    const int64_t need_blocks = std::max<int64_t>(blocks_per_seq, max_b * blocks_per_seq);
    ro.kv_cache_mb = kv_cache_mb_for_blocks(ro, probe, need_blocks);
    auto rt = load_runtime(ro);
    const ModelConfig& c = rt->desc.cfg;
    if (ctx > c.max_position_embeddings) bad_input("--prompt/--decode-ctx/--gen exceed the model's context length");
    std::mt19937 rng(42);
    auto rand_tok = [&] { return int32_t(3 + rng() % uint32_t(std::max<int64_t>(1, c.vocab_size - 3))); };
    std::vector<std::vector<int32_t>> tables(static_cast<size_t>(max_b), std::vector<int32_t>(static_cast<size_t>(blocks_per_seq)));
    for (int64_t s = 0; s < max_b; ++s) std::iota(tables[size_t(s)].begin(), tables[size_t(s)].end(), int32_t(s * blocks_per_seq));
    ForwardOutput out;

    // Prefill: one sequence of each --prompt length. The first run of the
    // first length comes right after load, before anything else ran: what a
    // server's first request sees ("cold"). Then each length gets one
    // untimed warm-up and --reps timed runs.
    std::vector<int32_t> prompt(static_cast<size_t>(max_prompt));
    for (auto& t : prompt) t = rand_tok();
    auto run_prefill = [&](int64_t T) {
      const double t0 = now_s();
      SeqChunk pc{prompt.data(), int32_t(T), 0, tables[0].data(), int32_t(blocks_per_seq), LogitsWanted::Last};
      rt->runner->forward({pc}, out);
      return double(T) / (now_s() - t0);
    };
    const double cold_tok_s = run_prefill(prompts[0]);
    std::fprintf(stderr, "prefill %lld tokens, first run after load (cold): %.1f tok/s\n",
                 static_cast<long long>(prompts[0]), cold_tok_s);
    double int8_gmacs = ops::probe_int8_gmacs(*rt->pool);
    std::map<int64_t, double> prefill;
    for (int64_t T : prompts) {
      if (prefill.count(T)) continue;
      run_prefill(T);
      std::vector<double> runs;
      for (int32_t r = 0; r < a->reps; ++r) runs.push_back(run_prefill(T));
      prefill[T] = median(runs);
    }
    int8_gmacs = std::max(int8_gmacs, ops::probe_int8_gmacs(*rt->pool));
    nlohmann::json prefill_j = nlohmann::json::object(), fraction_j = nlohmann::json::object();
    for (const auto& [T, tok_s] : prefill) {
      prefill_j[std::to_string(T)] = tok_s;
      const double peak_tok_s = int8_gmacs > 0 ? int8_gmacs * 1e9 * double(T) / prefill_macs(c, T) : 0.0;
      if (peak_tok_s > 0) fraction_j[std::to_string(T)] = tok_s / peak_tok_s;
      std::fprintf(stderr, "prefill %lld tokens: %.1f tok/s", static_cast<long long>(T), tok_s);
      if (peak_tok_s > 0) std::fprintf(stderr, ", %.0f%% of the int8 peak's %.0f tok/s", 100.0 * tok_s / peak_tok_s, peak_tok_s);
      std::fprintf(stderr, "\n");
    }
    if (int8_gmacs > 0)
      std::fprintf(stderr, "int8 peak (probed, %d threads): %.1f G multiply-adds/s; a prompt token is %.3f G\n",
                   rt->pool->size(), int8_gmacs, (prefill_macs(c, 2) - prefill_macs(c, 1)) / 1e9);

    // Decode: B sequences, each with its own prompt of --decode-ctx tokens
    // (prefilled one sequence per step, not timed), then --gen steps of B tokens.
    auto run_decode = [&](int64_t B) {
      std::vector<std::vector<int32_t>> seqs(static_cast<size_t>(B));
      std::vector<SeqChunk> step;
      for (int64_t s = 0; s < B; ++s) {
        seqs[size_t(s)].resize(size_t(a->decode_ctx));
        for (auto& t : seqs[size_t(s)]) t = rand_tok();
        step = {{seqs[size_t(s)].data(), a->decode_ctx, 0, tables[size_t(s)].data(), int32_t(blocks_per_seq), LogitsWanted::Last}};
        rt->runner->forward(step, out);
      }
      double t1 = 0;
      for (int32_t g = 0; g <= a->gen; ++g) {
        if (g == 1) t1 = now_s();  // first decode step is warm-up
        step.clear();
        for (int64_t s = 0; s < B; ++s) {
          auto& sq = seqs[size_t(s)];
          sq.push_back(rand_tok());
          step.push_back({&sq.back(), 1, int32_t(sq.size() - 1), tables[size_t(s)].data(), int32_t(blocks_per_seq),
                          LogitsWanted::Last});
        }
        rt->runner->forward(step, out);
      }
      return double(B) * a->gen / (now_s() - t1);
    };
    const size_t bpt = bytes_per_token(*rt->model);
    // Batch sizes take turns within each rep, so that the ratios to batch 1
    // compare runs made a few seconds apart (the machine's read rate drifts).
    std::map<int64_t, std::vector<double>> runs, ratios;
    std::vector<double> probes, fractions;
    for (int32_t r = 0; r < a->reps; ++r) {
      double b1 = 0;
      for (int64_t B : batches) {
        if (B != 1) {
          const double tok_s = run_decode(B);
          runs[B].push_back(tok_s);
          if (b1 > 0) ratios[B].push_back(tok_s / b1);
          continue;
        }
        const double before = probe_read_gbps(rt->pool->size());
        b1 = run_decode(B);
        const double after = probe_read_gbps(rt->pool->size());
        runs[B].push_back(b1);
        probes.push_back(before);
        probes.push_back(after);
        fractions.push_back(double(bpt) * b1 / 1e9 / (0.5 * (before + after)));
      }
    }
    nlohmann::json decode = nlohmann::json::object(), vs1 = nlohmann::json::object();
    const double decode1 = runs.count(1) ? median(runs[1]) : 0.0;
    for (int64_t B : batches) {
      const double tok_s = median(runs[B]);
      decode[std::to_string(B)] = tok_s;
      if (B == 1) {
        std::fprintf(stderr, "decode batch 1: %.1f tok/s\n", tok_s);
      } else if (!ratios[B].empty()) {
        vs1[std::to_string(B)] = median(ratios[B]);
        std::fprintf(stderr, "decode batch %lld: %.1f tok/s aggregate, %.2fx batch 1 (median of per-rep ratios)\n",
                     static_cast<long long>(B), tok_s, median(ratios[B]));
      } else {
        std::fprintf(stderr, "decode batch %lld: %.1f tok/s aggregate\n", static_cast<long long>(B), tok_s);
      }
    }
    const double gbps = decode1 > 0 ? double(bpt) * decode1 / 1e9 : 0.0;
    const double machine = median(probes), fraction = median(fractions);
    std::fprintf(stderr, "weights read per token at batch 1: %.1f MB -> %.2f GB/s; threads %d\n", bpt / 1e6, gbps,
                 rt->pool->size());
    if (!probes.empty())
      std::fprintf(stderr, "machine read rate (probed around each batch-1 run): %.2f GB/s; batch-1 decode reads at %.0f%% of it\n",
                   machine, 100.0 * fraction);
    nlohmann::json j = {{"prefill_tok_s", prefill_j},
                        {"prefill_cold_tok_s", {{std::to_string(prompts[0]), cold_tok_s}}},
                        {"decode_tok_s", decode},
                        {"bytes_per_token", bpt},
                        {"read_gbps", gbps},
                        {"peak_rss_mb", peak_rss_mb()}};
    j["device"] = rt->backend->name();  // the compute backend that ran (--device)
    j["kernels"] = ops::isa_name();      // the CPU kernel set (the CPU's best, capped by MOESERVE_ISA)
    j["argmax_pass"] = ops::argmax_pass_name();  // how a greedy bf16 lm_head is scored
    if (int8_gmacs > 0) {
      j["int8_peak_gmacs"] = int8_gmacs;
      j["prefill_int8_fraction"] = fraction_j;
    }
    if (!vs1.empty()) j["decode_vs_batch1"] = vs1;
    if (!probes.empty()) {
      j["machine_read_gbps"] = machine;
      j["read_fraction"] = fraction;
    }
    std::printf("%s\n", j.dump().c_str());
  });
}

}  // namespace ms::cli
