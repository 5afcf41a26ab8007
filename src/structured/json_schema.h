// json_schema.h — JSON Schema (the subset in docs/STRUCTURED.md) -> grammar.
//
// The grammar generates compact JSON (no whitespace between tokens), with
// object properties in the order the schema lists them (required ones always,
// optional ones may be left out) and no properties beyond the listed ones.
// Numbers have at most 16 integer digits, 15 fraction digits and a 3-digit
// exponent. Every string the grammar accepts validates against the schema;
// a keyword outside the subset throws Error(BadInput) naming it and its path.
#pragma once
#include <string_view>

#include "structured/grammar.h"

namespace ms::structured {

// Defines the rules of the schema (JSON text) in `b`; returns the start rule.
int32_t json_schema_grammar(std::string_view schema_text, GrammarBuilder& b);
// Any JSON object (response_format json_object).
int32_t json_object_grammar(GrammarBuilder& b);
// An integer in [lo, hi] as JSON text (no leading zeros, "-0" excluded).
ExprP int_range(int64_t lo, int64_t hi);

}  // namespace ms::structured
