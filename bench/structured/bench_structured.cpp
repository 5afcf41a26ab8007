// bench_structured — structured-output costs on a real vocabulary:
//   vocabulary trie build, schema -> grammar compile time, and the per-step
//   mask time, cold (state not in the cache: a walk over the vocabulary trie)
//   and warm (cache hit), along random walks through each grammar.
// Usage: bench_structured [tokenizer.model] [walks] [steps]
#include <algorithm>
#include <chrono>
#include <cstdio>
#include <random>
#include <string>
#include <vector>

#include "structured/grammar.h"
#include "structured/grammar_text.h"
#include "structured/json_schema.h"
#include "structured/token_mask.h"
#include "tokenizer/tokenizer.h"

using namespace ms::structured;
using Clock = std::chrono::steady_clock;

static double ms_since(Clock::time_point t) {
  return std::chrono::duration<double, std::milli>(Clock::now() - t).count();
}

int main(int argc, char** argv) {
  const std::string tok_path = argc > 1 ? argv[1] : std::string(MOESERVE_SOURCE_DIR) + "/models/tiny-mixtral-kjv/tokenizer.model";
  const int walks = argc > 2 ? std::atoi(argv[2]) : 4;
  const int steps = argc > 3 ? std::atoi(argv[3]) : 64;
  auto tok = ms::Tokenizer::from_file(tok_path);
  auto t0 = Clock::now();
  std::vector<std::string> bytes;
  for (int32_t i = 0; i < tok->vocab_size(); ++i) bytes.push_back(tok->token_bytes(i));
  auto vocab = std::make_shared<const Vocabulary>(std::move(bytes), tok->eos_id());
  std::printf("vocabulary: %d tokens, %zu trie nodes, built in %.1f ms\n", vocab->size(), vocab->trie().size(), ms_since(t0));

  const std::vector<std::pair<const char*, std::string>> schemas = {
      {"person", R"({"type":"object","properties":{"name":{"type":"string","maxLength":12},"age":{"type":"integer","minimum":0,"maximum":120}},"required":["name","age"],"additionalProperties":false})"},
      {"free-text", R"({"type":"object","properties":{"summary":{"type":"string"},"keywords":{"type":"array","items":{"type":"string"}}},"required":["summary","keywords"]})"},
      {"formats", R"({"type":"object","properties":{"id":{"type":"string","format":"uuid"},"at":{"type":"string","format":"date-time"},"email":{"type":"string","format":"email"}},"required":["id","at","email"]})"},
      {"recursive", R"({"$defs":{"n":{"type":"object","properties":{"v":{"type":"integer"},"kids":{"type":"array","items":{"$ref":"#/$defs/n"}}},"required":["v","kids"]}},"$ref":"#/$defs/n"})"},
      {"long-rows", R"({"type":"array","items":{"type":"object","properties":{"name":{"type":"string","maxLength":10},"n":{"type":"integer"}},"required":["name","n"],"additionalProperties":false},"minItems":100})"},
      {"json_object", ""},
  };
  std::printf("\n%-12s %10s %8s %12s %12s %12s %8s\n", "grammar", "compile ms", "nodes", "cold mask ms", "warm mask us",
              "mean step us", "hit %");
  std::mt19937 rng(1);
  for (const auto& [name, text] : schemas) {
    auto c0 = Clock::now();
    GrammarBuilder b;
    int32_t root = text.empty() ? json_object_grammar(b) : json_schema_grammar(text, b);
    auto g = Grammar::compile(b, root);
    const double compile_ms = ms_since(c0);
    auto cg = std::make_shared<const CompiledGrammar>(g, vocab, 4096);
    std::vector<double> cold, warm, all;
    Mask mask(vocab->mask_words());
    for (int w = 0; w < walks; ++w) {
      GrammarMatcher m(cg);
      for (int s = 0; s < steps; ++s) {
        const auto before = cg->cache_stats().misses;
        auto t = Clock::now();
        m.allowed(mask.data());
        const double us = std::chrono::duration<double, std::micro>(Clock::now() - t).count();
        (cg->cache_stats().misses > before ? cold : warm).push_back(us);
        all.push_back(us);
        std::vector<int32_t> ok;
        for (int32_t t2 = 0; t2 < vocab->size(); ++t2)
          if ((mask[t2 >> 6] >> (t2 & 63)) & 1) ok.push_back(t2);
        int32_t t2 = ok[rng() % ok.size()];
        for (int k = 0; k < 6 && vocab->bytes(t2).size() > 3; ++k) t2 = ok[rng() % ok.size()];
        if (t2 == vocab->eos()) break;
        m.advance(t2);
      }
    }
    auto mean = [](const std::vector<double>& v) {
      double s = 0;
      for (double x : v) s += x;
      return v.empty() ? 0.0 : s / static_cast<double>(v.size());
    };
    const auto st = cg->cache_stats();
    std::printf("%-12s %10.2f %8zu %12.2f %12.1f %12.1f %8.1f\n", name, compile_ms, g->nodes.size(), mean(cold) / 1000.0,
                mean(warm), mean(all), 100.0 * static_cast<double>(st.hits) / static_cast<double>(st.hits + st.misses));
  }
  return 0;
}
