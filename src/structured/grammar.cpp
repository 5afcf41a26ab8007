// grammar.cpp — Expr constructors, UTF-8 classes, NFA compilation, matcher.
#include "structured/grammar.h"

#include <algorithm>

#include "core/error.h"

namespace ms::structured {

namespace {

std::shared_ptr<Expr> make(Expr::Kind k) {
  auto e = std::make_shared<Expr>();
  e->kind = k;
  return e;
}

}  // namespace

ExprP bytes(const ByteSet& s) {
  auto e = make(Expr::Bytes);
  e->set = s;
  return e;
}

ExprP byte_range(unsigned lo, unsigned hi) {
  ByteSet s;
  for (unsigned b = lo; b <= hi && b < 256; ++b) s.set(b);
  return bytes(s);
}

ExprP lit(std::string_view str) {
  std::vector<ExprP> k;
  k.reserve(str.size());
  for (unsigned char c : str) k.push_back(byte_range(c, c));
  return seq(std::move(k));
}

ExprP seq(std::vector<ExprP> kids) {
  if (kids.size() == 1) return kids[0];
  auto e = make(Expr::Seq);
  e->kids = std::move(kids);
  return e;
}

ExprP alt(std::vector<ExprP> kids) {
  if (kids.size() == 1) return kids[0];
  auto e = make(Expr::Alt);
  e->kids = std::move(kids);
  return e;
}

ExprP rep(ExprP x, int32_t min, int32_t max) {
  auto e = make(Expr::Repeat);
  e->kids.push_back(std::move(x));
  e->min = min;
  e->max = max;
  return e;
}

ExprP opt(ExprP e) { return rep(std::move(e), 0, 1); }

ExprP ref(int32_t rule) {
  auto e = make(Expr::Ref);
  e->rule = rule;
  return e;
}

CodepointSet cp_normalize(CodepointSet s) {
  CodepointSet clamped;
  for (auto [lo, hi] : s) {
    hi = std::min<uint32_t>(hi, 0x10FFFF);
    if (lo > hi) continue;
    // Surrogates are not characters: cut them out.
    if (lo < 0xD800 && hi >= 0xD800) {
      clamped.push_back({lo, std::min<uint32_t>(hi, 0xD7FF)});
      if (hi > 0xDFFF) clamped.push_back({0xE000, hi});
    } else if (lo >= 0xD800 && lo <= 0xDFFF) {
      if (hi > 0xDFFF) clamped.push_back({0xE000, hi});
    } else {
      clamped.push_back({lo, hi});
    }
  }
  std::sort(clamped.begin(), clamped.end());
  CodepointSet out;
  for (auto r : clamped) {
    if (!out.empty() && r.first <= out.back().second + 1)
      out.back().second = std::max(out.back().second, r.second);
    else
      out.push_back(r);
  }
  return out;
}

CodepointSet cp_complement(const CodepointSet& s0) {
  CodepointSet s = cp_normalize(s0);
  CodepointSet out;
  uint32_t next = 0;
  for (auto [lo, hi] : s) {
    if (lo > next) out.push_back({next, lo - 1});
    next = hi + 1;
  }
  if (next <= 0x10FFFF) out.push_back({next, 0x10FFFF});
  return cp_normalize(out);
}

namespace {

int utf8_len(uint32_t cp) { return cp < 0x80 ? 1 : cp < 0x800 ? 2 : cp < 0x10000 ? 3 : 4; }

void utf8_encode(uint32_t cp, uint8_t* b) {
  switch (utf8_len(cp)) {
    case 1: b[0] = static_cast<uint8_t>(cp); break;
    case 2:
      b[0] = static_cast<uint8_t>(0xC0 | (cp >> 6));
      b[1] = static_cast<uint8_t>(0x80 | (cp & 0x3F));
      break;
    case 3:
      b[0] = static_cast<uint8_t>(0xE0 | (cp >> 12));
      b[1] = static_cast<uint8_t>(0x80 | ((cp >> 6) & 0x3F));
      b[2] = static_cast<uint8_t>(0x80 | (cp & 0x3F));
      break;
    default:
      b[0] = static_cast<uint8_t>(0xF0 | (cp >> 18));
      b[1] = static_cast<uint8_t>(0x80 | ((cp >> 12) & 0x3F));
      b[2] = static_cast<uint8_t>(0x80 | ((cp >> 6) & 0x3F));
      b[3] = static_cast<uint8_t>(0x80 | (cp & 0x3F));
  }
}

// Byte sequences L..H (same length n, lexicographic) where every byte after
// the first ranges over 0x80..0xBF.
ExprP byte_seq_range(const uint8_t* L, const uint8_t* H, int n) {
  if (n == 1) return byte_range(L[0], H[0]);
  if (L[0] == H[0]) return seq({byte_range(L[0], L[0]), byte_seq_range(L + 1, H + 1, n - 1)});
  uint8_t maxs[4] = {0xBF, 0xBF, 0xBF, 0xBF}, mins[4] = {0x80, 0x80, 0x80, 0x80};
  std::vector<ExprP> alts;
  alts.push_back(seq({byte_range(L[0], L[0]), byte_seq_range(L + 1, maxs, n - 1)}));
  if (L[0] + 1 <= H[0] - 1) {
    std::vector<ExprP> s{byte_range(L[0] + 1, H[0] - 1)};
    for (int i = 1; i < n; ++i) s.push_back(byte_range(0x80, 0xBF));
    alts.push_back(seq(std::move(s)));
  }
  alts.push_back(seq({byte_range(H[0], H[0]), byte_seq_range(mins, H + 1, n - 1)}));
  return alt(std::move(alts));
}

}  // namespace

ExprP utf8_class(const CodepointSet& s0) {
  CodepointSet s = cp_normalize(s0);
  std::vector<ExprP> alts;
  ByteSet ascii;
  static const uint32_t bounds[] = {0, 0x80, 0x800, 0x10000, 0x110000};
  for (auto [lo, hi] : s) {
    for (int k = 0; k < 4; ++k) {
      uint32_t a = std::max(lo, bounds[k]), b = std::min(hi, bounds[k + 1] - 1);
      if (a > b) continue;
      if (k == 0) {
        for (uint32_t c = a; c <= b; ++c) ascii.set(c);
        continue;
      }
      uint8_t L[4], H[4];
      utf8_encode(a, L);
      utf8_encode(b, H);
      alts.push_back(byte_seq_range(L, H, k + 1));
    }
  }
  if (ascii.any()) alts.insert(alts.begin(), bytes(ascii));
  if (alts.empty()) bad_input("a character class matches no character");
  return alt(std::move(alts));
}

int32_t GrammarBuilder::declare(const std::string& name) {
  int32_t id = static_cast<int32_t>(bodies_.size());
  names_.push_back(name);
  bodies_.push_back(nullptr);
  by_name_.emplace(name, id);
  return id;
}

int32_t GrammarBuilder::find(const std::string& name) const {
  auto it = by_name_.find(name);
  return it == by_name_.end() ? -1 : it->second;
}

void GrammarBuilder::define(int32_t rule, ExprP body) { bodies_[rule] = std::move(body); }

namespace {

struct Compiler {
  Grammar& g;
  std::unordered_map<ByteSet, int32_t> set_ids;

  int32_t node() {
    if (g.nodes.size() >= Grammar::kMaxNodes)
      bad_input("the grammar is too large (more than " + std::to_string(Grammar::kMaxNodes) +
                " automaton states); use smaller repetition counts");
    g.nodes.emplace_back();
    return static_cast<int32_t>(g.nodes.size() - 1);
  }
  void edge(int32_t from, Grammar::Edge::Kind k, int32_t arg, int32_t to) {
    g.nodes[from].edges.push_back({k, arg, to});
    if (k == Grammar::Edge::Byte) g.nodes[from].has_bytes = true;
  }
  int32_t set_id(const ByteSet& s) {
    auto [it, fresh] = set_ids.emplace(s, static_cast<int32_t>(g.sets.size()));
    if (fresh) g.sets.push_back(s);
    return it->second;
  }

  // Builds `e` between a fresh pair of nodes reachable from `in`; returns the exit node.
  int32_t emit(const Expr& e, int32_t in) {
    switch (e.kind) {
      case Expr::Bytes: {
        if (e.set.none()) bad_input("a character class matches no character");
        int32_t out = node();
        edge(in, Grammar::Edge::Byte, set_id(e.set), out);
        return out;
      }
      case Expr::Seq: {
        int32_t cur = in;
        for (const ExprP& k : e.kids) cur = emit(*k, cur);
        return cur;
      }
      case Expr::Alt: {
        int32_t out = node();
        for (const ExprP& k : e.kids) {
          int32_t a = node();
          edge(in, Grammar::Edge::Eps, 0, a);
          edge(emit(*k, a), Grammar::Edge::Eps, 0, out);
        }
        return out;
      }
      case Expr::Repeat: {
        const Expr& k = *e.kids[0];
        int32_t cur = in;
        for (int32_t i = 0; i < e.min; ++i) cur = emit(k, cur);
        if (e.max < 0) {
          // cur -> loop -> body -> loop; loop -> out
          int32_t loop = node();
          edge(cur, Grammar::Edge::Eps, 0, loop);
          int32_t body_in = node();
          edge(loop, Grammar::Edge::Eps, 0, body_in);
          edge(emit(k, body_in), Grammar::Edge::Eps, 0, loop);
          int32_t out = node();
          edge(loop, Grammar::Edge::Eps, 0, out);
          return out;
        }
        int32_t out = node();
        for (int32_t i = e.min; i < e.max; ++i) {
          edge(cur, Grammar::Edge::Eps, 0, out);
          int32_t body_in = node();
          edge(cur, Grammar::Edge::Eps, 0, body_in);
          cur = emit(k, body_in);
        }
        edge(cur, Grammar::Edge::Eps, 0, out);
        return out;
      }
      case Expr::Ref: {
        if (e.rule < 0 || e.rule >= static_cast<int32_t>(g.rule_start.size()))
          bad_input("reference to an undefined rule");
        int32_t out = node();
        edge(in, Grammar::Edge::Call, e.rule, out);
        return out;
      }
    }
    return in;
  }
};

}  // namespace

std::shared_ptr<const Grammar> Grammar::compile(const GrammarBuilder& b, int32_t start) {
  auto g = std::make_shared<Grammar>();
  Compiler c{*g, {}};
  const size_t n = b.size();
  g->rule_start.resize(n);
  g->rule_end.resize(n);
  for (size_t r = 0; r < n; ++r) {
    if (!b.body(static_cast<int32_t>(r))) bad_input("grammar rule '" + b.name(static_cast<int32_t>(r)) + "' is not defined");
    g->rule_names.push_back(b.name(static_cast<int32_t>(r)));
    g->rule_start[r] = c.node();
  }
  for (size_t r = 0; r < n; ++r) {
    int32_t out = c.emit(*b.body(static_cast<int32_t>(r)), g->rule_start[r]);
    g->rule_end[r] = out;
  }
  if (start < 0 || static_cast<size_t>(start) >= n) bad_input("the grammar has no start rule");
  g->start_rule = start;
  g->is_rule_end.assign(g->nodes.size(), 0);
  for (int32_t e : g->rule_end) g->is_rule_end[e] = 1;
  return g;
}

int32_t StackTable::push(int32_t parent, int32_t ret) {
  const uint64_t k = (static_cast<uint64_t>(static_cast<uint32_t>(parent)) << 32) | static_cast<uint32_t>(ret);
  auto [it, fresh] = index_.emplace(k, static_cast<int32_t>(frames_.size()));
  if (fresh) frames_.push_back({ret, parent, frames_[parent].depth + 1});
  return it->second;
}

Matcher::Matcher(std::shared_ptr<const Grammar> g) : g_(std::move(g)) {}

void Matcher::closure(int32_t node0, int32_t stack0, State& out) {
  // Depth-first over epsilon, call and return moves; `seen_` guards cycles.
  seen_.clear();
  work_.clear();
  work_.push_back({node0, stack0});
  const int32_t root_end = g_->rule_end[g_->start_rule];
  while (!work_.empty()) {
    auto [node, stack] = work_.back();
    work_.pop_back();
    const uint64_t k = (static_cast<uint64_t>(static_cast<uint32_t>(node)) << 32) | static_cast<uint32_t>(stack);
    if (std::find(seen_.begin(), seen_.end(), k) != seen_.end()) continue;
    seen_.push_back(k);
    const Grammar::Node& n = g_->nodes[node];
    if (n.has_bytes) out.push_back({node, stack});
    for (const Grammar::Edge& e : n.edges) {
      if (e.kind == Grammar::Edge::Eps) {
        work_.push_back({e.target, stack});
      } else if (e.kind == Grammar::Edge::Call) {
        if (stacks_.depth(stack) >= kMaxDepth) continue;
        work_.push_back({g_->rule_start[e.arg], stacks_.push(stack, e.target)});
      }
    }
    // A rule's end: return to the caller, or accept at the bottom.
    if (g_->is_rule_end[node]) {
      {
        if (stack == 0) {
          if (node == root_end) out.push_back({node, 0});
        } else {
          work_.push_back({stacks_.ret(stack), stacks_.parent(stack)});
        }
      }
    }
  }
}

State Matcher::initial() {
  State s;
  closure(g_->rule_start[g_->start_rule], 0, s);
  std::sort(s.begin(), s.end());
  s.erase(std::unique(s.begin(), s.end()), s.end());
  return s;
}

void Matcher::step_into(const State& s, uint8_t byte, State& out) {
  out.clear();
  for (const Pos& p : s) {
    const Grammar::Node& n = g_->nodes[p.node];
    if (!n.has_bytes) continue;
    for (const Grammar::Edge& e : n.edges)
      if (e.kind == Grammar::Edge::Byte && g_->sets[e.arg].test(byte)) closure(e.target, p.stack, out);
  }
  if (out.size() > 1) {
    std::sort(out.begin(), out.end());
    out.erase(std::unique(out.begin(), out.end()), out.end());
  }
}

State Matcher::step(const State& s, uint8_t byte) {
  State out;
  step_into(s, byte, out);
  return out;
}

bool Matcher::accepting(const State& s) const {
  const int32_t root_end = g_->rule_end[g_->start_rule];
  for (const Pos& p : s)
    if (p.node == root_end && p.stack == 0) return true;
  return false;
}

bool Matcher::can_continue(const State& s) const {
  for (const Pos& p : s)
    if (g_->nodes[p.node].has_bytes) return true;
  return false;
}

std::string Matcher::key(const State& s) const {
  std::vector<std::string> parts;
  parts.reserve(s.size());
  for (const Pos& p : s) {
    std::string k;
    auto put = [&](int32_t v) { k.append(reinterpret_cast<const char*>(&v), sizeof v); };
    put(p.node);
    for (int32_t st = p.stack; st != 0; st = stacks_.parent(st)) put(stacks_.ret(st));
    put(-1);
    parts.push_back(std::move(k));
  }
  std::sort(parts.begin(), parts.end());
  std::string out;
  for (auto& p : parts) out += p;
  return out;
}

}  // namespace ms::structured
