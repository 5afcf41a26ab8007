// model_util.h — helpers for model tests: load a model directory, run
// prompts through the paged forward pass, greedy decoding through the KV cache.
#pragma once
#include <algorithm>
#include <fstream>
#include <memory>
#include <nlohmann/json.hpp>
#include <numeric>
#include <string>
#include <vector>

#include "format/model_desc.h"
#include "model/kv_cache.h"
#include "model/mixtral.h"

namespace ms::test {

inline std::string fixture(const std::string& rel) { return std::string(MOESERVE_FIXTURES) + "/" + rel; }
inline std::string bundled_model() { return std::string(MOESERVE_SOURCE_DIR) + "/models/tiny-mixtral-kjv"; }

inline nlohmann::json read_json(const std::string& path) {
  std::ifstream in(path);
  return nlohmann::json::parse(in);
}

inline std::vector<float> read_f32(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  in.seekg(0, std::ios::end);
  const size_t n = size_t(in.tellg()) / 4;
  in.seekg(0);
  std::vector<float> v(n);
  in.read(reinterpret_cast<char*>(v.data()), std::streamsize(n * 4));
  return v;
}

// A model plus a KV cache, and one sequence's worth of block bookkeeping.
struct Harness {
  ModelDesc desc;
  std::unique_ptr<ThreadPool> pool;
  std::unique_ptr<Mixtral> model;
  std::unique_ptr<KvCache> kv;
  int32_t block_size = 16;

  explicit Harness(const std::string& path, int threads = 2, int32_t num_blocks = 1024, const std::string& quant = "none",
                   int32_t bs = 16, bool repack = true)
      : desc(load_model_desc(path)), pool(std::make_unique<ThreadPool>(threads)), block_size(bs) {
    QuantPlan plan = parse_quant_plan(quant);
    plan.repack = repack;
    model = std::make_unique<Mixtral>(desc, plan, *pool);
    kv = std::make_unique<KvCache>(model->backend(), desc.cfg, num_blocks, bs);
  }
  int64_t vocab() const { return desc.cfg.vocab_size; }

  // Logits of every position of `ids` (one prefill step), blocks starting at first_block.
  std::vector<float> prefill_all(const std::vector<int32_t>& ids, int32_t first_block = 0) {
    std::vector<int32_t> table(ids.size() / size_t(block_size) + 1);
    std::iota(table.begin(), table.end(), first_block);
    SeqChunk c{ids.data(), int32_t(ids.size()), 0, table.data(), int32_t(table.size()), LogitsWanted::All};
    ForwardOutput out;
    model->forward({c}, *kv, out);
    return out.logits;
  }

  // Greedy decoding: prefill the prompt, then one token per step through the cache.
  // Returns the generated ids; last_logits receives the logits after the prompt.
  std::vector<int32_t> greedy(const std::vector<int32_t>& prompt, int n, std::vector<float>* prompt_logits = nullptr) {
    std::vector<int32_t> seq = prompt;
    std::vector<int32_t> table((prompt.size() + size_t(n)) / size_t(block_size) + 1);
    std::iota(table.begin(), table.end(), 0);
    std::vector<int32_t> out_ids;
    ForwardOutput out;
    SeqChunk c{seq.data(), int32_t(seq.size()), 0, table.data(), int32_t(table.size()), LogitsWanted::Last};
    model->forward({c}, *kv, out);
    if (prompt_logits) prompt_logits->assign(out.logits.begin(), out.logits.end());
    for (int i = 0; i < n; ++i) {
      const float* l = out.row(0);
      const int32_t next = int32_t(std::max_element(l, l + vocab()) - l);
      out_ids.push_back(next);
      seq.push_back(next);
      if (i + 1 == n) break;
      SeqChunk d{&seq.back(), 1, int32_t(seq.size() - 1), table.data(), int32_t(table.size()), LogitsWanted::Last};
      model->forward({d}, *kv, out);
    }
    return out_ids;
  }
};

inline std::vector<int32_t> top_k_ids(const float* logits, int64_t n, int k) {
  std::vector<int32_t> idx(static_cast<size_t>(n));
  std::iota(idx.begin(), idx.end(), 0);
  std::partial_sort(idx.begin(), idx.begin() + k, idx.end(),
                    [&](int32_t a, int32_t b) { return logits[a] > logits[b] || (logits[a] == logits[b] && a < b); });
  idx.resize(size_t(k));
  return idx;
}

inline float max_abs(const float* v, int64_t n) {
  float m = 0;
  for (int64_t i = 0; i < n; ++i) m = std::max(m, std::abs(v[i]));
  return m;
}

}  // namespace ms::test
