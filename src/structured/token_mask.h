// token_mask.h — grammars applied to a tokenizer's vocabulary.
//
// Vocabulary: the bytes each token id stands for in running text (SentencePiece
// '▁' -> ' ', <0xNN> -> that byte, control tokens -> ""), laid out as a trie
// in preorder so that one pass over the array visits every token prefix once.
// CompiledGrammar: a Grammar bound to a Vocabulary plus a bounded LRU cache of
// allowed-token masks keyed by the matcher state (states recur: inside a
// free-text string, at the same point of every array item, and across the
// requests that share a schema), shared by every sequence using the grammar.
// GrammarMatcher: one sequence's progress. allowed() fills the mask of tokens
// that may come next: a token is allowed when its bytes keep the output a
// prefix of some string of the grammar; EOS only when the output is complete.
// The output text is what the detokenizer shows: the first token's leading
// space is dropped (SentencePiece's dummy prefix), so it is not matched.
//
// Reference-first: reference_allowed() checks every token one by one with the
// byte matcher (no trie, no cache); the tests compare the two on random
// grammars and prefixes.
#pragma once
#include <cstdint>
#include <list>
#include <memory>
#include <mutex>
#include <string>
#include <unordered_map>
#include <vector>

#include "structured/grammar.h"

namespace ms::structured {

class Vocabulary {
 public:
  Vocabulary(std::vector<std::string> token_bytes, int32_t eos_id);

  int32_t size() const { return static_cast<int32_t>(bytes_.size()); }
  int32_t eos() const { return eos_; }
  const std::string& bytes(int32_t id) const { return bytes_[id]; }
  size_t mask_words() const { return (bytes_.size() + 63) / 64; }

  struct TrieNode {
    uint8_t byte;
    int32_t depth;        // root 0
    int32_t subtree_end;  // index after the last node below this one
    int32_t tok_begin, tok_end;  // tokens whose bytes end here (into tokens())
  };
  const std::vector<TrieNode>& trie() const { return trie_; }
  const std::vector<int32_t>& tokens() const { return trie_tokens_; }
  int32_t max_depth() const { return max_depth_; }

 private:
  std::vector<std::string> bytes_;
  int32_t eos_;
  std::vector<TrieNode> trie_;
  std::vector<int32_t> trie_tokens_;
  int32_t max_depth_ = 0;
};

using Mask = std::vector<uint64_t>;

class CompiledGrammar {
 public:
  CompiledGrammar(std::shared_ptr<const Grammar> g, std::shared_ptr<const Vocabulary> v, size_t mask_cache_entries);

  const Grammar& grammar() const { return *g_; }
  std::shared_ptr<const Grammar> grammar_ptr() const { return g_; }
  const Vocabulary& vocab() const { return *v_; }

  std::shared_ptr<const Mask> cached(const std::string& key) const;
  void store(const std::string& key, std::shared_ptr<const Mask> m) const;
  struct CacheStats {
    int64_t hits = 0, misses = 0;
    size_t entries = 0;
  };
  CacheStats cache_stats() const;

 private:
  std::shared_ptr<const Grammar> g_;
  std::shared_ptr<const Vocabulary> v_;
  size_t cap_;
  mutable std::mutex mu_;
  mutable std::list<std::pair<std::string, std::shared_ptr<const Mask>>> lru_;
  mutable std::unordered_map<std::string, decltype(lru_)::iterator> index_;
  mutable CacheStats stats_;
};

class GrammarMatcher {
 public:
  explicit GrammarMatcher(std::shared_ptr<const CompiledGrammar> cg);

  // words: vocab.mask_words() words; bit t of word t/64 = token t allowed.
  void allowed(uint64_t* words);
  // The same without the cache and the trie (reference).
  void reference_allowed(uint64_t* words);
  // Takes a token; false (and no change) if it is not allowed.
  bool advance(int32_t token);
  bool advance_bytes(const std::string& bytes);  // text as the output shows it
  bool is_complete() const;                      // EOS allowed
  bool ended() const { return ended_; }          // EOS taken

 private:
  void compute(uint64_t* words);
  bool token_ok(const State& s, const std::string& b, bool at_start);

  std::shared_ptr<const CompiledGrammar> cg_;
  Matcher m_;
  State state_;
  bool at_start_ = true;
  bool ended_ = false;
  std::vector<State> depth_states_;
  State tmp_, tmp2_;
};

// Compiled grammars by key (kind + text), least recently used dropped beyond
// `capacity`. Thread-safe.
class GrammarCache {
 public:
  explicit GrammarCache(size_t capacity) : cap_(capacity) {}
  std::shared_ptr<const CompiledGrammar> find(const std::string& key);
  void put(const std::string& key, std::shared_ptr<const CompiledGrammar> g);
  size_t size() const;

 private:
  size_t cap_;
  mutable std::mutex mu_;
  std::list<std::pair<std::string, std::shared_ptr<const CompiledGrammar>>> lru_;
  std::unordered_map<std::string, decltype(lru_)::iterator> index_;
};

}  // namespace ms::structured
