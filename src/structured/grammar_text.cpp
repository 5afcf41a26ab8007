// grammar_text.cpp — regex and GBNF parsers (see grammar_text.h).
#include "structured/grammar_text.h"

#include <cstdio>

#include "core/error.h"

namespace ms::structured {

namespace {

constexpr int32_t kMaxCount = 1000;

CodepointSet digits() { return {{'0', '9'}}; }
CodepointSet word() { return {{'0', '9'}, {'A', 'Z'}, {'_', '_'}, {'a', 'z'}}; }
CodepointSet space() { return {{'\t', '\r'}, {' ', ' '}}; }

class Parser {
 public:
  Parser(std::string_view src, bool gbnf, RegexOptions opt, GrammarBuilder* b)
      : s_(src), gbnf_(gbnf), opt_(opt), b_(b) {}

  ExprP whole_regex() {
    if (peek_is('^')) ++i_;
    ExprP e = alternation();
    if (i_ < s_.size()) fail("unbalanced ')'");
    return e;
  }

  void gbnf_rules(int32_t& root) {
    skip_ws();
    while (i_ < s_.size()) {
      std::string name = ident();
      if (name.empty()) fail("expected a rule name");
      skip_ws();
      if (s_.substr(i_, 3) != "::=") fail("expected '::=' after rule name '" + name + "'");
      i_ += 3;
      int32_t r = rule_id(name);
      if (defined_.size() <= static_cast<size_t>(r)) defined_.resize(r + 1, false);
      if (defined_[r]) fail("rule '" + name + "' is defined twice");
      defined_[r] = true;
      b_->define(r, alternation());
      skip_ws();
    }
    for (size_t r = 0; r < b_->size(); ++r)
      if (!b_->body(static_cast<int32_t>(r))) bad_input("grammar: rule '" + b_->name(static_cast<int32_t>(r)) + "' is used but not defined");
    root = b_->find("root");
    if (root < 0) bad_input("grammar: no 'root' rule");
  }

 private:
  [[noreturn]] void fail(const std::string& what) const {
    bad_input(std::string(gbnf_ ? "grammar" : "regex") + ": " + what + " at offset " + std::to_string(i_));
  }
  bool peek_is(char c) const { return i_ < s_.size() && s_[i_] == c; }

  void skip_ws() {
    if (!gbnf_) return;
    while (i_ < s_.size()) {
      char c = s_[i_];
      if (c == '#') {
        while (i_ < s_.size() && s_[i_] != '\n') ++i_;
      } else if (c == ' ' || c == '\t' || c == '\n' || c == '\r') {
        ++i_;
      } else {
        break;
      }
    }
  }

  static bool ident_char(char c) {
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '-' || c == '_';
  }
  std::string ident() {
    size_t j = i_;
    while (j < s_.size() && ident_char(s_[j])) ++j;
    std::string id(s_.substr(i_, j - i_));
    i_ = j;
    return id;
  }
  // True when an identifier followed by '::=' starts at the cursor (a new rule).
  bool at_rule_head() const {
    size_t j = i_;
    while (j < s_.size() && ident_char(s_[j])) ++j;
    if (j == i_) return false;
    while (j < s_.size() && (s_[j] == ' ' || s_[j] == '\t' || s_[j] == '\n' || s_[j] == '\r')) ++j;
    return s_.substr(j, 3) == "::=";
  }
  int32_t rule_id(const std::string& name) {
    int32_t r = b_->find(name);
    return r >= 0 ? r : b_->declare(name);
  }

  uint32_t next_cp() {
    if (i_ >= s_.size()) fail("unexpected end");
    unsigned char c = static_cast<unsigned char>(s_[i_]);
    int n = c < 0x80 ? 1 : (c >> 5) == 6 ? 2 : (c >> 4) == 14 ? 3 : (c >> 3) == 30 ? 4 : 0;
    if (n == 0 || i_ + n > s_.size()) fail("invalid UTF-8");
    uint32_t cp = n == 1 ? c : n == 2 ? (c & 0x1F) : n == 3 ? (c & 0x0F) : (c & 0x07);
    for (int k = 1; k < n; ++k) cp = (cp << 6) | (static_cast<unsigned char>(s_[i_ + k]) & 0x3F);
    i_ += n;
    return cp;
  }

  uint32_t hex(int n) {
    uint32_t v = 0;
    for (int k = 0; k < n; ++k) {
      if (i_ >= s_.size()) fail("truncated hex escape");
      char c = s_[i_++];
      int d = c >= '0' && c <= '9' ? c - '0' : c >= 'a' && c <= 'f' ? c - 'a' + 10 : c >= 'A' && c <= 'F' ? c - 'A' + 10 : -1;
      if (d < 0) fail("invalid hex escape");
      v = v * 16 + static_cast<uint32_t>(d);
    }
    return v;
  }

  // After a backslash: a class escape (set) or one code point.
  CodepointSet escape() {
    if (i_ >= s_.size()) fail("trailing backslash");
    char c = s_[i_++];
    switch (c) {
      case 'd': return digits();
      case 'D': return cp_complement(digits());
      case 'w': return word();
      case 'W': return cp_complement(word());
      case 's': return space();
      case 'S': return cp_complement(space());
      case 'n': return {{'\n', '\n'}};
      case 't': return {{'\t', '\t'}};
      case 'r': return {{'\r', '\r'}};
      case 'f': return {{'\f', '\f'}};
      case 'v': return {{'\v', '\v'}};
      case '0': return {{0, 0}};
      case 'x': {
        uint32_t v = hex(2);
        return {{v, v}};
      }
      case 'u': {
        uint32_t v = hex(4);
        return {{v, v}};
      }
      case 'b': case 'B': fail("word boundaries (\\b) are not supported");
      case 'A': case 'z': case 'Z': case 'G': fail("anchors other than ^ and $ are not supported");
      default:
        if (c >= '1' && c <= '9') fail("backreferences are not supported");
        if ((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z')) fail(std::string("unknown escape \\") + c);
        --i_;
        uint32_t cp = next_cp();
        return {{cp, cp}};
    }
  }

  CodepointSet char_class() {
    // at '[' already consumed
    bool negate = false;
    if (peek_is('^')) {
      negate = true;
      ++i_;
    }
    CodepointSet set;
    bool first = true;
    while (true) {
      if (i_ >= s_.size()) fail("unterminated character class");
      if (s_[i_] == ']' && !first) {
        ++i_;
        break;
      }
      first = false;
      CodepointSet item;
      bool single = false;
      uint32_t lo = 0;
      if (s_[i_] == '\\') {
        ++i_;
        item = escape();
        single = item.size() == 1 && item[0].first == item[0].second;
        lo = item[0].first;
      } else {
        if (!gbnf_ && s_.substr(i_, 2) == "[:") fail("POSIX classes are not supported");
        lo = next_cp();
        item = {{lo, lo}};
        single = true;
      }
      if (single && peek_is('-') && i_ + 1 < s_.size() && s_[i_ + 1] != ']') {
        ++i_;
        uint32_t hi;
        if (peek_is('\\')) {
          ++i_;
          CodepointSet e = escape();
          if (e.size() != 1 || e[0].first != e[0].second) fail("a class escape cannot end a range");
          hi = e[0].first;
        } else {
          hi = next_cp();
        }
        if (hi < lo) fail("range out of order in character class");
        item = {{lo, hi}};
      }
      set.insert(set.end(), item.begin(), item.end());
    }
    return negate ? cp_complement(set) : cp_normalize(set);
  }

  // One code point out of `set`, as bytes (JSON-escaped in json_string mode).
  ExprP cp_expr(const CodepointSet& set0) {
    CodepointSet set = cp_normalize(set0);
    if (set.empty()) fail("a character class matches no character");
    if (!opt_.json_string) return utf8_class(set);
    std::vector<ExprP> alts;
    CodepointSet plain;
    for (auto [lo, hi] : set) {
      for (uint32_t c = lo; c <= hi && c < 0x20; ++c) {
        static const char* named[] = {nullptr, nullptr, nullptr, nullptr, nullptr, nullptr, nullptr, nullptr,
                                      "\\b", "\\t", "\\n", nullptr, "\\f", "\\r"};
        char buf[8];
        if (c < 14 && named[c]) {
          alts.push_back(lit(named[c]));
        } else {
          std::snprintf(buf, sizeof buf, "\\u%04x", c);
          alts.push_back(lit(buf));
        }
      }
      if (lo <= '"' && '"' <= hi) alts.push_back(lit("\\\""));
      if (lo <= '\\' && '\\' <= hi) alts.push_back(lit("\\\\"));
      plain.push_back({std::max<uint32_t>(lo, 0x20), hi});
    }
    CodepointSet rest;
    for (auto r : cp_normalize(plain)) {
      if (r.first > r.second) continue;
      // cut out '"' and '\'
      CodepointSet pieces{r};
      for (uint32_t cut : {uint32_t('"'), uint32_t('\\')}) {
        CodepointSet next;
        for (auto [a, b] : pieces) {
          if (cut < a || cut > b) {
            next.push_back({a, b});
            continue;
          }
          if (a < cut) next.push_back({a, cut - 1});
          if (cut < b) next.push_back({cut + 1, b});
        }
        pieces = next;
      }
      rest.insert(rest.end(), pieces.begin(), pieces.end());
    }
    if (!cp_normalize(rest).empty()) alts.insert(alts.begin(), utf8_class(rest));
    return alt(std::move(alts));
  }

  ExprP literal_string() {
    // GBNF "..." (opening quote consumed)
    std::vector<ExprP> parts;
    while (true) {
      if (i_ >= s_.size()) fail("unterminated string literal");
      if (s_[i_] == '"') {
        ++i_;
        break;
      }
      CodepointSet c;
      if (s_[i_] == '\\') {
        ++i_;
        c = escape();
      } else {
        uint32_t cp = next_cp();
        c = {{cp, cp}};
      }
      parts.push_back(cp_expr(c));
    }
    return seq(std::move(parts));
  }

  ExprP atom() {
    char c = s_[i_];
    if (c == '(') {
      ++i_;
      if (!gbnf_ && peek_is('?')) {
        if (s_.substr(i_, 2) == "?:") {
          i_ += 2;
        } else {
          fail("lookaround and named groups are not supported");
        }
      }
      ExprP e = alternation();
      skip_ws();
      if (!peek_is(')')) fail("missing ')'");
      ++i_;
      return e;
    }
    if (c == '[') {
      ++i_;
      return cp_expr(char_class());
    }
    if (gbnf_) {
      if (c == '"') {
        ++i_;
        return literal_string();
      }
      if (c == '.') {
        ++i_;
        return cp_expr({{0, 0x10FFFF}});
      }
      if (ident_char(c)) return ref(rule_id(ident()));
      fail(std::string("unexpected '") + c + "'");
    }
    if (c == '.') {
      ++i_;
      return cp_expr(cp_complement({{'\n', '\n'}}));
    }
    if (c == '\\') {
      ++i_;
      return cp_expr(escape());
    }
    if (c == '*' || c == '+' || c == '?' || c == '{') fail(std::string("nothing to repeat before '") + c + "'");
    if (c == '$') {
      if (i_ + 1 == s_.size()) {
        ++i_;
        return seq({});
      }
      fail("'$' is only supported at the end");
    }
    if (c == '^') fail("'^' is only supported at the start");
    uint32_t cp = next_cp();
    return cp_expr({{cp, cp}});
  }

  int32_t count() {
    size_t j = i_;
    int64_t v = 0;
    while (j < s_.size() && s_[j] >= '0' && s_[j] <= '9') {
      v = v * 10 + (s_[j] - '0');
      if (v > kMaxCount) fail("repetition count above " + std::to_string(kMaxCount));
      ++j;
    }
    if (j == i_) return -1;
    i_ = j;
    return static_cast<int32_t>(v);
  }

  ExprP quantified() {
    ExprP e = atom();
    while (true) {
      if (gbnf_) skip_ws();
      if (i_ >= s_.size()) break;
      char c = s_[i_];
      int32_t lo, hi;
      if (c == '*') {
        lo = 0, hi = -1, ++i_;
      } else if (c == '+') {
        lo = 1, hi = -1, ++i_;
      } else if (c == '?') {
        lo = 0, hi = 1, ++i_;
      } else if (c == '{') {
        size_t save = i_;
        ++i_;
        lo = count();
        if (lo < 0) {
          if (gbnf_) fail("expected a count after '{'");
          i_ = save;  // a literal '{' in a regex
          break;
        }
        hi = lo;
        if (peek_is(',')) {
          ++i_;
          hi = count();  // -1: unbounded
        }
        if (!peek_is('}')) fail("expected '}'");
        ++i_;
        if (hi >= 0 && hi < lo) fail("repetition {m,n} with n < m");
      } else {
        break;
      }
      if (!gbnf_ && peek_is('?')) ++i_;  // lazy: same language
      if (!gbnf_ && peek_is('+')) fail("possessive quantifiers are not supported");
      e = rep(e, lo, hi);
    }
    return e;
  }

  ExprP sequence() {
    std::vector<ExprP> parts;
    while (true) {
      skip_ws();
      if (i_ >= s_.size() || s_[i_] == '|' || s_[i_] == ')') break;
      if (gbnf_ && at_rule_head()) break;
      parts.push_back(quantified());
    }
    return seq(std::move(parts));
  }

  ExprP alternation() {
    std::vector<ExprP> alts{sequence()};
    while (peek_is('|')) {
      ++i_;
      alts.push_back(sequence());
    }
    return alt(std::move(alts));
  }

  std::string_view s_;
  size_t i_ = 0;
  bool gbnf_;
  RegexOptions opt_;
  GrammarBuilder* b_;
  std::vector<bool> defined_;
};

}  // namespace

ExprP regex_expr(std::string_view pattern, const RegexOptions& opt) {
  Parser p(pattern, false, opt, nullptr);
  return p.whole_regex();
}

std::string json_escape(std::string_view text) {
  std::string out;
  for (unsigned char c : text) {
    switch (c) {
      case '"': out += "\\\""; break;
      case '\\': out += "\\\\"; break;
      case '\n': out += "\\n"; break;
      case '\t': out += "\\t"; break;
      case '\r': out += "\\r"; break;
      case '\b': out += "\\b"; break;
      case '\f': out += "\\f"; break;
      default:
        if (c < 0x20) {
          char buf[8];
          std::snprintf(buf, sizeof buf, "\\u%04x", c);
          out += buf;
        } else {
          out += static_cast<char>(c);
        }
    }
  }
  return out;
}

GrammarBuilder parse_gbnf(std::string_view text, int32_t& root) {
  GrammarBuilder b;
  Parser p(text, true, {}, &b);
  p.gbnf_rules(root);
  return b;
}

int32_t choice_grammar(const std::vector<std::string>& choices, GrammarBuilder& b) {
  if (choices.empty()) bad_input("choice: the list is empty");
  std::vector<ExprP> alts;
  for (const auto& c : choices) alts.push_back(lit(c));
  return b.add("root", alt(std::move(alts)));
}

int32_t regex_grammar(std::string_view pattern, GrammarBuilder& b) { return b.add("root", regex_expr(pattern)); }

}  // namespace ms::structured
