// token_mask.cpp — vocabulary trie, mask cache, per-sequence matcher.
#include "structured/token_mask.h"

#include <algorithm>
#include <cstring>

namespace ms::structured {

Vocabulary::Vocabulary(std::vector<std::string> token_bytes, int32_t eos_id)
    : bytes_(std::move(token_bytes)), eos_(eos_id) {
  std::vector<int32_t> ids;
  for (size_t i = 0; i < bytes_.size(); ++i)
    if (!bytes_[i].empty() && static_cast<int32_t>(i) != eos_) ids.push_back(static_cast<int32_t>(i));
  std::sort(ids.begin(), ids.end(), [&](int32_t a, int32_t b) {
    return bytes_[a] < bytes_[b] || (bytes_[a] == bytes_[b] && a < b);
  });
  trie_.push_back({0, 0, 0, 0, 0});
  // Iterative preorder build over the sorted list: (lo, hi, depth, node).
  struct Frame {
    size_t lo, hi;
    int32_t depth, node;
    size_t next;  // first id not yet given to a child
  };
  std::vector<Frame> st;
  auto open = [&](size_t lo, size_t hi, int32_t depth, int32_t node) {
    TrieNode& n = trie_[node];
    n.tok_begin = static_cast<int32_t>(trie_tokens_.size());
    size_t i = lo;
    while (i < hi && bytes_[ids[i]].size() == static_cast<size_t>(depth)) trie_tokens_.push_back(ids[i++]);
    trie_[node].tok_end = static_cast<int32_t>(trie_tokens_.size());
    max_depth_ = std::max(max_depth_, depth);
    st.push_back({lo, hi, depth, node, i});
  };
  open(0, ids.size(), 0, 0);
  while (!st.empty()) {
    Frame& f = st.back();
    if (f.next >= f.hi) {
      trie_[f.node].subtree_end = static_cast<int32_t>(trie_.size());
      st.pop_back();
      continue;
    }
    const size_t i = f.next;
    const uint8_t b = static_cast<uint8_t>(bytes_[ids[i]][f.depth]);
    size_t j = i;
    while (j < f.hi && static_cast<uint8_t>(bytes_[ids[j]][f.depth]) == b) ++j;
    f.next = j;
    const int32_t depth = f.depth + 1;
    trie_.push_back({b, depth, 0, 0, 0});
    open(i, j, depth, static_cast<int32_t>(trie_.size() - 1));
  }
}

CompiledGrammar::CompiledGrammar(std::shared_ptr<const Grammar> g, std::shared_ptr<const Vocabulary> v,
                                 size_t mask_cache_entries)
    : g_(std::move(g)), v_(std::move(v)), cap_(mask_cache_entries) {}

std::shared_ptr<const Mask> CompiledGrammar::cached(const std::string& key) const {
  std::lock_guard<std::mutex> lk(mu_);
  auto it = index_.find(key);
  if (it == index_.end()) {
    ++stats_.misses;
    return nullptr;
  }
  ++stats_.hits;
  lru_.splice(lru_.begin(), lru_, it->second);
  return it->second->second;
}

void CompiledGrammar::store(const std::string& key, std::shared_ptr<const Mask> m) const {
  if (cap_ == 0) return;
  std::lock_guard<std::mutex> lk(mu_);
  if (index_.count(key)) return;
  lru_.emplace_front(key, std::move(m));
  index_[key] = lru_.begin();
  while (lru_.size() > cap_) {
    index_.erase(lru_.back().first);
    lru_.pop_back();
  }
}

CompiledGrammar::CacheStats CompiledGrammar::cache_stats() const {
  std::lock_guard<std::mutex> lk(mu_);
  CacheStats s = stats_;
  s.entries = lru_.size();
  return s;
}

GrammarMatcher::GrammarMatcher(std::shared_ptr<const CompiledGrammar> cg)
    : cg_(std::move(cg)), m_(cg_->grammar_ptr()) {
  state_ = m_.initial();
}

bool GrammarMatcher::is_complete() const { return m_.accepting(state_); }

void GrammarMatcher::compute(uint64_t* words) {
  const Vocabulary& v = cg_->vocab();
  const auto& T = v.trie();
  const auto& toks = v.tokens();
  std::memset(words, 0, v.mask_words() * sizeof(uint64_t));
  depth_states_.resize(static_cast<size_t>(v.max_depth()) + 1);
  depth_states_[0] = state_;
  const int32_t end = T[0].subtree_end;
  int32_t i = 1;
  while (i < end) {
    const Vocabulary::TrieNode& n = T[i];
    const State& prev = depth_states_[n.depth - 1];
    State& cur = depth_states_[n.depth];
    if (at_start_ && n.depth == 1 && n.byte == ' ') {
      cur = prev;  // the leading space is dropped; " " alone is not allowed
      ++i;
      continue;
    }
    m_.step_into(prev, n.byte, cur);
    if (cur.empty()) {
      i = n.subtree_end;
      continue;
    }
    for (int32_t k = n.tok_begin; k < n.tok_end; ++k) words[toks[k] >> 6] |= uint64_t{1} << (toks[k] & 63);
    ++i;
  }
}

void GrammarMatcher::allowed(uint64_t* words) {
  const Vocabulary& v = cg_->vocab();
  std::string key = m_.key(state_);
  key.push_back(at_start_ ? 'S' : 'N');
  std::shared_ptr<const Mask> hit = cg_->cached(key);
  if (hit) {
    std::memcpy(words, hit->data(), v.mask_words() * sizeof(uint64_t));
  } else {
    auto m = std::make_shared<Mask>(v.mask_words());
    compute(m->data());
    std::memcpy(words, m->data(), v.mask_words() * sizeof(uint64_t));
    cg_->store(key, std::move(m));
  }
  bool any = false;
  for (size_t w = 0; w < v.mask_words() && !any; ++w) any = words[w] != 0;
  // EOS when complete; also when nothing else is possible (a dead end cannot
  // happen with byte-fallback vocabularies, but a request must never hang).
  const int32_t eos = v.eos();
  if (eos >= 0 && eos < v.size() && (m_.accepting(state_) || !any)) words[eos >> 6] |= uint64_t{1} << (eos & 63);
}

bool GrammarMatcher::token_ok(const State& s, const std::string& b, bool at_start) {
  size_t k = 0;
  if (b.empty()) return false;
  if (at_start && b[0] == ' ') {
    if (b.size() == 1) return false;
    k = 1;
  }
  tmp_ = s;
  for (; k < b.size(); ++k) {
    m_.step_into(tmp_, static_cast<uint8_t>(b[k]), tmp2_);
    if (tmp2_.empty()) return false;
    tmp_.swap(tmp2_);
  }
  return true;
}

void GrammarMatcher::reference_allowed(uint64_t* words) {
  const Vocabulary& v = cg_->vocab();
  std::memset(words, 0, v.mask_words() * sizeof(uint64_t));
  bool any = false;
  for (int32_t t = 0; t < v.size(); ++t) {
    if (t == v.eos()) continue;
    if (token_ok(state_, v.bytes(t), at_start_)) {
      words[t >> 6] |= uint64_t{1} << (t & 63);
      any = true;
    }
  }
  const int32_t eos = v.eos();
  if (eos >= 0 && eos < v.size() && (m_.accepting(state_) || !any)) words[eos >> 6] |= uint64_t{1} << (eos & 63);
}

bool GrammarMatcher::advance(int32_t token) {
  const Vocabulary& v = cg_->vocab();
  if (token < 0 || token >= v.size()) return false;
  if (token == v.eos()) {
    ended_ = true;
    return true;
  }
  if (!token_ok(state_, v.bytes(token), at_start_)) return false;
  state_.swap(tmp_);
  at_start_ = false;
  return true;
}

bool GrammarMatcher::advance_bytes(const std::string& b) {
  if (b.empty()) return true;
  if (!token_ok(state_, b, false)) return false;
  state_.swap(tmp_);
  at_start_ = false;
  return true;
}

std::shared_ptr<const CompiledGrammar> GrammarCache::find(const std::string& key) {
  std::lock_guard<std::mutex> lk(mu_);
  auto it = index_.find(key);
  if (it == index_.end()) return nullptr;
  lru_.splice(lru_.begin(), lru_, it->second);
  return it->second->second;
}

void GrammarCache::put(const std::string& key, std::shared_ptr<const CompiledGrammar> g) {
  if (cap_ == 0) return;
  std::lock_guard<std::mutex> lk(mu_);
  if (index_.count(key)) return;
  lru_.emplace_front(key, std::move(g));
  index_[key] = lru_.begin();
  while (lru_.size() > cap_) {
    index_.erase(lru_.back().first);
    lru_.pop_back();
  }
}

size_t GrammarCache::size() const {
  std::lock_guard<std::mutex> lk(mu_);
  return lru_.size();
}

}  // namespace ms::structured
