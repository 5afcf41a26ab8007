// The fast mask (vocabulary trie + state cache) against the brute-force
// reference (every token checked byte by byte) on the bundled model's real
// vocabulary, for random schemas and random prefixes; and random walks that
// end complete must be valid JSON that matches the schema's shape.
#include <gtest/gtest.h>

#include <nlohmann/json.hpp>
#include <random>
#include <string>

#include "structured/grammar.h"
#include "structured/grammar_text.h"
#include "structured/json_schema.h"
#include "structured/token_mask.h"
#include "tokenizer/tokenizer.h"

using namespace ms::structured;
using json = nlohmann::json;

namespace {

std::shared_ptr<const Vocabulary> bundled_vocab() {
  static std::shared_ptr<const Vocabulary> v = [] {
    auto tok = ms::Tokenizer::from_file(std::string(MOESERVE_SOURCE_DIR) + "/models/tiny-mixtral-kjv/tokenizer.model");
    std::vector<std::string> bytes;
    for (int32_t i = 0; i < tok->vocab_size(); ++i) bytes.push_back(tok->token_bytes(i));
    return std::make_shared<const Vocabulary>(std::move(bytes), tok->eos_id());
  }();
  return v;
}

// A random schema from the supported subset, at most `depth` levels deep.
json random_schema(std::mt19937& rng, int depth) {
  auto pick = [&](int n) { return static_cast<int>(rng() % n); };
  int kind = depth <= 0 ? pick(7) : pick(11);
  switch (kind) {
    case 0: return {{"type", "string"}, {"maxLength", 1 + pick(6)}};
    case 1: return {{"type", "integer"}, {"minimum", -pick(50)}, {"maximum", pick(1000)}};
    case 2: return {{"type", "boolean"}};
    case 3: return {{"enum", json::array({"alpha", "beta", 7, nullptr})}};
    case 4: return {{"type", "string"}, {"format", pick(2) ? "date" : "uuid"}};
    case 5: return {{"type", "number"}, {"minimum", 0}, {"maximum", 10 + pick(90)}};
    case 6: return {{"type", "string"}, {"pattern", "^[a-c]{1,3}-\\d$"}};
    case 7: {
      json props = json::object();
      json req = json::array();
      int n = 1 + pick(3);
      for (int i = 0; i < n; ++i) {
        std::string k = std::string("k") + static_cast<char>('a' + i);
        props[k] = random_schema(rng, depth - 1);
        if (pick(2)) req.push_back(k);
      }
      return {{"type", "object"}, {"properties", props}, {"required", req}, {"additionalProperties", false}};
    }
    case 8: return {{"type", "array"}, {"items", random_schema(rng, depth - 1)}, {"minItems", pick(2)}, {"maxItems", 2 + pick(2)}};
    case 9: return {{"anyOf", json::array({random_schema(rng, depth - 1), {{"type", "null"}}})}};
    default: return {{"type", json::array({"string", "null"})}, {"maxLength", 4}};
  }
}

void expect_same_mask(GrammarMatcher& m, const Vocabulary& v, const std::string& ctx) {
  Mask fast(v.mask_words()), ref(v.mask_words());
  m.allowed(fast.data());
  m.reference_allowed(ref.data());
  for (size_t w = 0; w < fast.size(); ++w) {
    if (fast[w] == ref[w]) continue;
    for (int b = 0; b < 64; ++b) {
      const bool f = (fast[w] >> b) & 1, r = (ref[w] >> b) & 1;
      ASSERT_EQ(f, r) << ctx << " token " << (w * 64 + b) << " '" << v.bytes(static_cast<int32_t>(w * 64 + b)) << "'";
    }
  }
}

// Random walk over allowed tokens, comparing fast and reference masks at
// every step. Returns the text and whether it ended complete.
std::pair<std::string, bool> walk(std::shared_ptr<const CompiledGrammar> cg, std::mt19937& rng, int steps,
                                  const std::string& ctx) {
  const Vocabulary& v = cg->vocab();
  GrammarMatcher m(cg);
  std::string text;
  Mask mask(v.mask_words());
  for (int s = 0; s < steps; ++s) {
    expect_same_mask(m, v, ctx + " step " + std::to_string(s) + " after '" + text + "'");
    if (::testing::Test::HasFatalFailure()) return {text, false};
    m.allowed(mask.data());
    std::vector<int32_t> ok;
    for (int32_t t = 0; t < v.size(); ++t)
      if ((mask[t >> 6] >> (t & 63)) & 1) ok.push_back(t);
    EXPECT_FALSE(ok.empty());
    if (ok.empty()) break;
    // Prefer short tokens half of the time so that walks reach the end.
    int32_t t = ok[rng() % ok.size()];
    if (rng() % 2) {
      for (int tries = 0; tries < 8 && v.bytes(t).size() > 2; ++tries) t = ok[rng() % ok.size()];
    }
    if (t == v.eos()) return {text, true};
    EXPECT_TRUE(m.advance(t));
    std::string b = v.bytes(t);
    if (text.empty() && !b.empty() && b[0] == ' ') b.erase(0, 1);
    text += b;
  }
  return {text, m.is_complete()};
}

std::shared_ptr<const CompiledGrammar> compile(const std::function<int32_t(GrammarBuilder&)>& f) {
  GrammarBuilder b;
  int32_t root = f(b);
  return std::make_shared<const CompiledGrammar>(Grammar::compile(b, root), bundled_vocab(), 4096);
}

}  // namespace

TEST(Vocabulary, TrieHoldsEveryNonEmptyToken) {
  auto v = bundled_vocab();
  size_t with_bytes = 0;
  for (int32_t t = 0; t < v->size(); ++t) with_bytes += !v->bytes(t).empty() && t != v->eos();
  EXPECT_EQ(v->tokens().size(), with_bytes);
  EXPECT_EQ(v->trie()[0].subtree_end, static_cast<int32_t>(v->trie().size()));
}

TEST(Mask, MatchesReferenceOnRandomSchemas) {
  std::mt19937 rng(12345);
  int completed = 0;
  for (int i = 0; i < 14; ++i) {
    json s = random_schema(rng, 2);
    auto cg = compile([&](GrammarBuilder& b) { return json_schema_grammar(s.dump(), b); });
    for (int w = 0; w < 2; ++w) {
      auto [text, complete] = walk(cg, rng, 12, s.dump());
      if (HasFatalFailure()) return;
      if (complete) {
        ++completed;
        EXPECT_TRUE(json::accept(text)) << text;
      }
    }
  }
  EXPECT_GT(completed, 0);
}

TEST(Mask, MatchesReferenceOnRegexChoiceGrammarAndJsonObject) {
  std::mt19937 rng(7);
  std::vector<std::shared_ptr<const CompiledGrammar>> gs = {
      compile([](GrammarBuilder& b) { return regex_grammar("(\\d{1,3}\\.){3}\\d{1,3}", b); }),
      compile([](GrammarBuilder& b) { return regex_grammar("[A-Z][a-z ]{0,12}[.!?]", b); }),
      compile([](GrammarBuilder& b) { return choice_grammar({"positive", "negative", " neutral", "pos"}, b); }),
      compile([](GrammarBuilder& b) {
        int32_t r;
        b = parse_gbnf("root ::= \"(\" list? \")\"\nlist ::= item (\", \" item)*\nitem ::= [a-z]+ | root", r);
        return r;
      }),
      compile([](GrammarBuilder& b) { return json_object_grammar(b); }),
  };
  for (size_t i = 0; i < gs.size(); ++i)
    for (int w = 0; w < 3; ++w) {
      walk(gs[i], rng, 10, "grammar " + std::to_string(i));
      if (HasFatalFailure()) return;
    }
}

TEST(Mask, EosOnlyWhenComplete) {
  auto cg = compile([](GrammarBuilder& b) { return choice_grammar({"ab", "abc"}, b); });
  const Vocabulary& v = cg->vocab();
  GrammarMatcher m(cg);
  Mask mask(v.mask_words());
  auto eos_allowed = [&] {
    m.allowed(mask.data());
    return static_cast<bool>((mask[v.eos() >> 6] >> (v.eos() & 63)) & 1);
  };
  EXPECT_FALSE(eos_allowed());
  EXPECT_TRUE(m.advance_bytes("a"));
  EXPECT_FALSE(eos_allowed());
  EXPECT_TRUE(m.advance_bytes("b"));
  EXPECT_TRUE(eos_allowed());
  EXPECT_TRUE(m.advance_bytes("c"));
  EXPECT_TRUE(eos_allowed());
  // Only EOS is left.
  m.allowed(mask.data());
  int n = 0;
  for (auto w : mask) n += __builtin_popcountll(w);
  EXPECT_EQ(n, 1);
  EXPECT_FALSE(m.advance_bytes("d"));
}

TEST(Mask, LeadingSpaceOfTheFirstTokenIsNotMatched) {
  auto cg = compile([](GrammarBuilder& b) { return choice_grammar({"{}"}, b); });
  const Vocabulary& v = cg->vocab();
  GrammarMatcher m(cg);
  Mask mask(v.mask_words());
  m.allowed(mask.data());
  int32_t space_brace = -1, brace = -1;
  for (int32_t t = 0; t < v.size(); ++t) {
    if (v.bytes(t) == " {") space_brace = t;
    if (v.bytes(t) == "{") brace = t;
  }
  ASSERT_GE(space_brace, 0);
  ASSERT_GE(brace, 0);
  EXPECT_TRUE((mask[space_brace >> 6] >> (space_brace & 63)) & 1);
  EXPECT_TRUE((mask[brace >> 6] >> (brace & 63)) & 1);
  EXPECT_TRUE(m.advance(space_brace));
  m.allowed(mask.data());
  EXPECT_FALSE((mask[space_brace >> 6] >> (space_brace & 63)) & 1);  // no longer at the start
}

TEST(Mask, CacheHitsOnRepeatedStates) {
  auto cg = compile([](GrammarBuilder& b) { return json_schema_grammar(R"({"type":"string"})", b); });
  const Vocabulary& v = cg->vocab();
  Mask mask(v.mask_words());
  for (int r = 0; r < 3; ++r) {
    GrammarMatcher m(cg);
    m.allowed(mask.data());
    ASSERT_TRUE(m.advance_bytes("\"ab"));
    m.allowed(mask.data());
    ASSERT_TRUE(m.advance_bytes("cd"));
    m.allowed(mask.data());
  }
  auto st = cg->cache_stats();
  EXPECT_EQ(st.misses, 2);  // the start, and inside the string (the same state each time)
  EXPECT_EQ(st.hits, 7);
}
