// grammar_text.h — grammars written as text: regular expressions, a GBNF
// subset and choice lists, turned into Expr rules (grammar.h).
//
// Regex (code points, UTF-8 on the wire; the whole output must match):
//   literals, '.', classes [a-z], [^...], escapes \d \D \w \W \s \S \n \t \r
//   \f \v \xHH \uHHHH and escaped metacharacters, groups ( ) and (?: ),
//   alternation |, quantifiers * + ? {m} {m,} {m,n} (a trailing '?' for lazy
//   is accepted and means the same set of strings). '^' at the start and '$'
//   at the end are accepted. Backreferences, lookaround, \b and named groups
//   are refused (Error(BadInput) naming them).
// GBNF (llama.cpp's grammar format, subset): rules `name ::= alternatives`,
//   elements "literal" (escapes \n \t \r \" \\ \xHH \uHHHH), [character
//   class], rule names, ( ), |, * + ? {m} {m,} {m,n}, comments from '#'. The
//   start rule is `root`.
#pragma once
#include <string>
#include <string_view>
#include <vector>

#include "structured/grammar.h"

namespace ms::structured {

struct RegexOptions {
  // Inside a JSON string: '"' and '\' come out escaped, control characters
  // (< 0x20) are excluded, so the match is the JSON text of the string body.
  bool json_string = false;
};

// The Expr for a whole-string regex match. Throws Error(BadInput).
ExprP regex_expr(std::string_view pattern, const RegexOptions& opt = {});
// `text` as it appears inside a JSON string literal (escaped).
std::string json_escape(std::string_view text);

// A complete grammar from GBNF text; returns the builder and sets `root`.
GrammarBuilder parse_gbnf(std::string_view text, int32_t& root);

// The start rule id of a grammar that matches exactly one of `choices`.
int32_t choice_grammar(const std::vector<std::string>& choices, GrammarBuilder& b);
int32_t regex_grammar(std::string_view pattern, GrammarBuilder& b);

}  // namespace ms::structured
