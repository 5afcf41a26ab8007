// Grammar semantics: whole-string acceptance of regexes, GBNF, choices and
// JSON Schemas on hand-written examples, and schema compile errors.
#include <gtest/gtest.h>

#include <random>
#include <string>

#include "core/error.h"
#include "structured/grammar.h"
#include "structured/grammar_text.h"
#include "structured/json_schema.h"

using namespace ms::structured;

namespace {

std::shared_ptr<const Grammar> build(const std::function<int32_t(GrammarBuilder&)>& f) {
  GrammarBuilder b;
  int32_t root = f(b);
  return Grammar::compile(b, root);
}

bool accepts(const std::shared_ptr<const Grammar>& g, const std::string& s) {
  Matcher m(g);
  State st = m.initial();
  for (unsigned char c : s) {
    st = m.step(st, c);
    if (st.empty()) return false;
  }
  return m.accepting(st);
}

std::shared_ptr<const Grammar> schema(const std::string& text) {
  return build([&](GrammarBuilder& b) { return json_schema_grammar(text, b); });
}
std::shared_ptr<const Grammar> regex(const std::string& re) {
  return build([&](GrammarBuilder& b) { return regex_grammar(re, b); });
}

std::string compile_error(const std::string& text) {
  try {
    schema(text);
  } catch (const ms::Error& e) {
    return e.what();
  }
  return "";
}

}  // namespace

TEST(Regex, Basics) {
  auto g = regex("(ab|c)*d{2,3}[x-z]?");
  EXPECT_TRUE(accepts(g, "dd"));
  EXPECT_TRUE(accepts(g, "abcabddd"));
  EXPECT_TRUE(accepts(g, "cddz"));
  EXPECT_FALSE(accepts(g, "d"));
  EXPECT_FALSE(accepts(g, "dddd"));
  EXPECT_FALSE(accepts(g, "abdda"));
  auto n = regex("[^a-c]\\d+\\.\\w");
  EXPECT_TRUE(accepts(n, "z12.x"));
  EXPECT_TRUE(accepts(n, "\xC3\xA9" "0._"));  // é: a multi-byte character
  EXPECT_FALSE(accepts(n, "b1.x"));
  auto dot = regex("^.{3}$");
  EXPECT_TRUE(accepts(dot, "a\xE2\x82\xAC" "b"));  // one 3-byte character counts once
  EXPECT_FALSE(accepts(dot, "a\nb"));
  EXPECT_FALSE(accepts(dot, "ab"));
  for (const char* bad : {"(a", "a)", "*a", "a{3,1}", "\\1", "(?=a)", "a\\b", "[b-a]"})
    EXPECT_THROW(regex(bad), ms::Error) << bad;
}

TEST(Regex, Utf8ClassesMatchExactlyTheirCodePoints) {
  // Every code point on both sides of the UTF-8 length boundaries.
  auto g = build([](GrammarBuilder& b) { return b.add("root", utf8_class({{0x7E, 0x81}, {0x7FE, 0x801}, {0xFFFE, 0x10001}})); });
  auto enc = [](uint32_t cp) {
    std::string s;
    if (cp < 0x80) s += static_cast<char>(cp);
    else if (cp < 0x800) s += {static_cast<char>(0xC0 | (cp >> 6)), static_cast<char>(0x80 | (cp & 0x3F))};
    else if (cp < 0x10000)
      s += {static_cast<char>(0xE0 | (cp >> 12)), static_cast<char>(0x80 | ((cp >> 6) & 0x3F)), static_cast<char>(0x80 | (cp & 0x3F))};
    else
      s += {static_cast<char>(0xF0 | (cp >> 18)), static_cast<char>(0x80 | ((cp >> 12) & 0x3F)),
            static_cast<char>(0x80 | ((cp >> 6) & 0x3F)), static_cast<char>(0x80 | (cp & 0x3F))};
    return s;
  };
  std::mt19937 rng(1);
  for (int i = 0; i < 3000; ++i) {
    uint32_t cp = i < 1000 ? static_cast<uint32_t>(i) * 71 % 0x11000 : rng() % 0x110000;
    if (cp >= 0xD800 && cp <= 0xDFFF) continue;
    bool in = (cp >= 0x7E && cp <= 0x81) || (cp >= 0x7FE && cp <= 0x801) || (cp >= 0xFFFE && cp <= 0x10001);
    EXPECT_EQ(accepts(g, enc(cp)), in) << std::hex << cp;
  }
}

TEST(Gbnf, RulesAndRecursion) {
  int32_t root = -1;
  GrammarBuilder b = parse_gbnf(R"g(
    # balanced parentheses with words
    root ::= item ("," item)*
    item ::= "(" item* ")" | [a-z]+
  )g", root);
  auto g = Grammar::compile(b, root);
  EXPECT_TRUE(accepts(g, "abc,(),((x)y)"));
  EXPECT_FALSE(accepts(g, "(()"));
  EXPECT_FALSE(accepts(g, "a,"));
  int32_t r2;
  EXPECT_THROW(parse_gbnf("root ::= undefined-rule", r2), ms::Error);
  EXPECT_THROW(parse_gbnf("item ::= \"a\"", r2), ms::Error);
  EXPECT_THROW(parse_gbnf("root ::= \"a", r2), ms::Error);
}

TEST(Choice, ExactlyOneOfTheStrings) {
  auto g = build([](GrammarBuilder& b) { return choice_grammar({"yes", "no", "not sure"}, b); });
  EXPECT_TRUE(accepts(g, "yes"));
  EXPECT_TRUE(accepts(g, "not sure"));
  EXPECT_FALSE(accepts(g, "ye"));
  EXPECT_FALSE(accepts(g, "no "));
}

TEST(IntRange, ExhaustiveSmallRanges) {
  for (const auto& r : std::vector<std::pair<int64_t, int64_t>>{{0, 0}, {-5, 5}, {7, 123}, {-130, -11}, {95, 1005}, {-1, 0}}) {
    // Plain locals: clang 14 cannot capture structured bindings in a lambda.
    const int64_t lo = r.first, hi = r.second;
    auto g = build([&](GrammarBuilder& b) { return b.add("root", int_range(lo, hi)); });
    for (int64_t v = lo - 30; v <= hi + 30; ++v) EXPECT_EQ(accepts(g, std::to_string(v)), v >= lo && v <= hi) << v;
    EXPECT_FALSE(accepts(g, "-0"));
    EXPECT_FALSE(accepts(g, "00"));
  }
}

TEST(JsonSchema, ObjectsPropertiesAndRequired) {
  auto g = schema(R"({"type":"object","properties":{"b":{"type":"integer"},"a":{"type":"string","maxLength":3}},
                      "required":["a"],"additionalProperties":false})");
  EXPECT_TRUE(accepts(g, R"({"b":12,"a":"xyz"})"));
  EXPECT_TRUE(accepts(g, R"({"a":""})"));
  EXPECT_FALSE(accepts(g, R"({"b":12})"));            // a is required
  EXPECT_FALSE(accepts(g, R"({"a":"x","b":1})"));     // schema order
  EXPECT_FALSE(accepts(g, R"({"a":"abcd"})"));        // maxLength
  EXPECT_FALSE(accepts(g, R"({"a":"x","c":1})"));
  EXPECT_TRUE(accepts(g, R"({"a":"\"\\\u00e9"})"));    // escapes count as one character each
}

TEST(JsonSchema, ScalarsEnumsConstAnyOf) {
  EXPECT_TRUE(accepts(schema(R"({"enum":["red",1,null]})"), "null"));
  EXPECT_TRUE(accepts(schema(R"({"enum":["red",1,null]})"), "\"red\""));
  EXPECT_FALSE(accepts(schema(R"({"enum":["red",1,null]})"), "2"));
  EXPECT_TRUE(accepts(schema(R"({"const":{"k":[1,2]}})"), R"({"k":[1,2]})"));
  auto u = schema(R"({"anyOf":[{"type":"boolean"},{"type":"array","items":{"type":"null"},"minItems":1,"maxItems":2}]})");
  EXPECT_TRUE(accepts(u, "false"));
  EXPECT_TRUE(accepts(u, "[null,null]"));
  EXPECT_FALSE(accepts(u, "[]"));
  EXPECT_FALSE(accepts(u, "[null,null,null]"));
  auto t = schema(R"({"type":["string","null"]})");
  EXPECT_TRUE(accepts(t, "null"));
  EXPECT_TRUE(accepts(t, "\"x\""));
  auto num = schema(R"({"type":"number","minimum":-2.5,"maximum":3})");
  for (const char* ok : {"3", "-2", "2.75", "-1.5", "0", "0.001"}) EXPECT_TRUE(accepts(num, ok)) << ok;
  for (const char* no : {"4", "-3", "3.5", "-2.7", "1e3"}) EXPECT_FALSE(accepts(num, no)) << no;
  auto free = schema(R"({"type":"number"})");
  for (const char* ok : {"-0.5", "12e-3", "7", "1.25E+10"}) EXPECT_TRUE(accepts(free, ok)) << ok;
  for (const char* no : {"01", ".5", "1.", "+1", "--1"}) EXPECT_FALSE(accepts(free, no)) << no;
}

TEST(JsonSchema, RefsAndRecursion) {
  auto g = schema(R"({"$ref":"#/$defs/node","$defs":{"node":{"type":"object","properties":{
      "v":{"type":"integer"},"kids":{"type":"array","items":{"$ref":"#/$defs/node"}}},
      "required":["v","kids"],"additionalProperties":false}}})");
  EXPECT_TRUE(accepts(g, R"({"v":1,"kids":[{"v":2,"kids":[]},{"v":3,"kids":[{"v":4,"kids":[]}]}]})"));
  EXPECT_FALSE(accepts(g, R"({"v":1,"kids":[{"v":2}]})"));
}

TEST(JsonSchema, StringFormatsAndPatterns) {
  auto d = schema(R"({"type":"string","format":"date"})");
  EXPECT_TRUE(accepts(d, "\"2024-02-28\""));
  EXPECT_FALSE(accepts(d, "\"2024-02-30\""));
  EXPECT_FALSE(accepts(d, "\"2024-13-01\""));
  auto dt = schema(R"({"type":"string","format":"date-time"})");
  EXPECT_TRUE(accepts(dt, "\"2024-01-31T23:59:07.5+02:00\""));
  EXPECT_FALSE(accepts(dt, "\"2024-01-31T24:00:00Z\""));
  EXPECT_TRUE(accepts(schema(R"({"type":"string","format":"uuid"})"), "\"123e4567-e89b-12d3-a456-426614174000\""));
  EXPECT_TRUE(accepts(schema(R"({"type":"string","format":"email"})"), "\"jo.ann+x@mail.example.com\""));
  EXPECT_FALSE(accepts(schema(R"({"type":"string","format":"email"})"), "\"jo@@x.com\""));
  auto p = schema(R"({"type":"string","pattern":"^[A-Z]{2}-\\d{3}$"})");
  EXPECT_TRUE(accepts(p, "\"AB-123\""));
  EXPECT_FALSE(accepts(p, "\"AB-1234\""));
  auto search = schema(R"({"type":"string","pattern":"ab"})");  // unanchored: a search
  EXPECT_TRUE(accepts(search, "\"xxaby\""));
  EXPECT_FALSE(accepts(search, "\"xxy\""));
  auto quote = schema(R"({"type":"string","pattern":"^a\"b$"})");  // a quote is written escaped
  EXPECT_TRUE(accepts(quote, R"("a\"b")"));
  EXPECT_FALSE(accepts(quote, R"("a"b")"));
}

TEST(JsonSchema, UnsupportedKeywordsAreNamed) {
  EXPECT_NE(compile_error(R"({"type":"object","patternProperties":{"a":{}}})").find("'patternProperties'"), std::string::npos);
  EXPECT_NE(compile_error(R"({"type":"string","format":"hostname"})").find("hostname"), std::string::npos);
  EXPECT_NE(compile_error(R"({"oneOf":[{"type":"string"}]})").find("'oneOf'"), std::string::npos);
  EXPECT_NE(compile_error(R"({"properties":{"x":{"type":"integer","multipleOf":2}}})").find("'multipleOf'"), std::string::npos);
  EXPECT_NE(compile_error(R"({"type":"number","exclusiveMinimum":0})").find("'exclusiveMinimum'"), std::string::npos);
  EXPECT_NE(compile_error(R"({"$ref":"#/$defs/missing"})").find("points nowhere"), std::string::npos);
  EXPECT_NE(compile_error(R"({"type":"strin"})").find("unknown type"), std::string::npos);
  EXPECT_NE(compile_error(R"({"type":"integer","minimum":3,"maximum":2})").find("no integer"), std::string::npos);
  EXPECT_NE(compile_error("{nope").find("not valid JSON"), std::string::npos);
  EXPECT_EQ(compile_error(R"({"type":"object","title":"T","description":"d","properties":{}})"), "");
}
