// grammar.h — context-free grammars over bytes, compiled to a recursive
// transition network (one NFA per rule, rule calls push a return node), and
// the byte-level matcher that runs them.
//
// Everything a constraint needs reduces to this: JSON Schema (json_schema.h),
// regular expressions, GBNF and choice lists (grammar_text.h) all build an
// Expr tree per rule with GrammarBuilder; compile() turns the rules into
// NFA nodes. A matcher state is the set of live positions (node, call stack);
// step(byte) advances every position that can take the byte. The language
// is over raw bytes; text rules build UTF-8 sequences (utf8_class()).
#pragma once
#include <bitset>
#include <cstdint>
#include <memory>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

namespace ms::structured {

using ByteSet = std::bitset<256>;

struct Expr;
using ExprP = std::shared_ptr<const Expr>;

struct Expr {
  enum Kind { Bytes, Seq, Alt, Repeat, Ref } kind = Seq;
  ByteSet set;               // Bytes: one byte out of the set
  std::vector<ExprP> kids;   // Seq, Alt; Repeat: kids[0]
  int32_t min = 0, max = 0;  // Repeat: max < 0 is unbounded
  int32_t rule = -1;         // Ref
};

// Constructors. seq({}) is the empty string; alt({}) matches nothing.
ExprP bytes(const ByteSet& s);
ExprP byte_range(unsigned lo, unsigned hi);
ExprP lit(std::string_view s);
ExprP seq(std::vector<ExprP> kids);
ExprP alt(std::vector<ExprP> kids);
ExprP rep(ExprP e, int32_t min, int32_t max);
ExprP opt(ExprP e);
ExprP ref(int32_t rule);

// A set of Unicode code points as sorted, disjoint inclusive ranges.
using CodepointSet = std::vector<std::pair<uint32_t, uint32_t>>;
CodepointSet cp_normalize(CodepointSet s);      // sort, merge, drop surrogates, clamp
CodepointSet cp_complement(const CodepointSet& s);
// One code point out of `s`, as the UTF-8 byte sequences that encode it.
ExprP utf8_class(const CodepointSet& s);

class GrammarBuilder {
 public:
  // Rule ids are dense; rule 0 is the start rule once defined.
  int32_t declare(const std::string& name);     // a new rule (body set later)
  int32_t find(const std::string& name) const;  // -1 if unknown
  void define(int32_t rule, ExprP body);
  int32_t add(const std::string& name, ExprP body) {
    int32_t r = declare(name);
    define(r, std::move(body));
    return r;
  }
  size_t size() const { return bodies_.size(); }
  const std::string& name(int32_t r) const { return names_[r]; }
  const ExprP& body(int32_t r) const { return bodies_[r]; }

 private:
  std::vector<std::string> names_;
  std::vector<ExprP> bodies_;
  std::unordered_map<std::string, int32_t> by_name_;
};

// The compiled network. Nodes have byte edges (a ByteSet index and a target),
// epsilon edges, and call edges (a rule and the node to return to).
class Grammar {
 public:
  struct Edge {
    enum Kind : uint8_t { Byte, Eps, Call } kind;
    int32_t arg;     // Byte: set index; Call: rule id
    int32_t target;  // Byte/Eps: next node; Call: return node
  };
  struct Node {
    std::vector<Edge> edges;
    bool has_bytes = false;
  };

  // Compiles `b` with `start` as the start rule. Throws Error(BadInput) on an
  // undefined rule or a grammar beyond kMaxNodes nodes.
  static std::shared_ptr<const Grammar> compile(const GrammarBuilder& b, int32_t start);
  static constexpr size_t kMaxNodes = 400000;

  std::vector<Node> nodes;
  std::vector<ByteSet> sets;
  std::vector<int32_t> rule_start, rule_end;
  std::vector<uint8_t> is_rule_end;  // per node
  int32_t start_rule = 0;
  std::vector<std::string> rule_names;
};

// A matcher state: live positions, each a node with a call stack. Stacks are
// interned in a StackTable (frame = return node + parent frame; 0 is empty).
class StackTable {
 public:
  StackTable() { frames_.push_back({-1, 0, 0}); }
  int32_t push(int32_t parent, int32_t ret);
  int32_t ret(int32_t s) const { return frames_[s].ret; }
  int32_t parent(int32_t s) const { return frames_[s].parent; }
  int32_t depth(int32_t s) const { return frames_[s].depth; }
  size_t size() const { return frames_.size(); }

 private:
  struct Frame {
    int32_t ret, parent, depth;
  };
  std::vector<Frame> frames_;
  std::unordered_map<uint64_t, int32_t> index_;
};

struct Pos {
  int32_t node;
  int32_t stack;
  bool operator==(const Pos& o) const { return node == o.node && stack == o.stack; }
  bool operator<(const Pos& o) const { return node < o.node || (node == o.node && stack < o.stack); }
};
using State = std::vector<Pos>;  // sorted, unique; only byte-taking nodes and accept marks

class Matcher {
 public:
  explicit Matcher(std::shared_ptr<const Grammar> g);

  State initial();
  // The state after one more byte (empty: the byte is not allowed).
  State step(const State& s, uint8_t byte);
  void step_into(const State& s, uint8_t byte, State& out);
  bool accepting(const State& s) const;
  // True when some byte can still follow.
  bool can_continue(const State& s) const;
  // A canonical byte string for `s` (stacks spelled out), for cache keys.
  std::string key(const State& s) const;
  const Grammar& grammar() const { return *g_; }
  size_t stack_frames() const { return stacks_.size(); }

  static constexpr int32_t kMaxDepth = 2000;  // deeper calls are dropped (left recursion)

 private:
  void closure(int32_t node, int32_t stack, State& out);

  std::shared_ptr<const Grammar> g_;
  StackTable stacks_;
  std::vector<std::pair<int32_t, int32_t>> work_;
  std::vector<uint64_t> seen_;
};

}  // namespace ms::structured
