// json_schema.cpp — JSON Schema -> grammar rules (see json_schema.h).
#include "structured/json_schema.h"

#include <cmath>
#include <set>
#include <unordered_map>

#include <nlohmann/json.hpp>

#include "core/error.h"
#include "structured/grammar_text.h"

namespace ms::structured {

using ojson = nlohmann::ordered_json;

namespace {

constexpr int64_t kIntCap = 9999999999999999;  // 16 digits
constexpr int32_t kMaxLen = 1000;             // minLength/maxLength/minItems/maxItems above this: refused

std::string digits_of(uint64_t v) { return std::to_string(v); }

// Same-length decimal strings lo <= hi.
ExprP fixed_len(const std::string& lo, const std::string& hi) {
  const size_t n = lo.size() - 1;
  auto any_digits = [](size_t k) { return rep(byte_range('0', '9'), static_cast<int32_t>(k), static_cast<int32_t>(k)); };
  if (n == 0) return byte_range(lo[0], hi[0]);
  if (lo[0] == hi[0]) return seq({lit(lo.substr(0, 1)), fixed_len(lo.substr(1), hi.substr(1))});
  const bool lo_full = lo.find_first_not_of('0', 1) == std::string::npos;
  const bool hi_full = hi.find_first_not_of('9', 1) == std::string::npos;
  std::vector<ExprP> alts;
  if (!lo_full) alts.push_back(seq({lit(lo.substr(0, 1)), fixed_len(lo.substr(1), std::string(n, '9'))}));
  const char a = lo_full ? lo[0] : static_cast<char>(lo[0] + 1), b = hi_full ? hi[0] : static_cast<char>(hi[0] - 1);
  if (a <= b) alts.push_back(seq({byte_range(a, b), any_digits(n)}));
  if (!hi_full) alts.push_back(seq({lit(hi.substr(0, 1)), fixed_len(std::string(n, '0'), hi.substr(1))}));
  return alt(std::move(alts));
}

ExprP nonneg_range(uint64_t a, uint64_t b) {
  std::vector<ExprP> alts;
  const size_t la = digits_of(a).size(), lb = digits_of(b).size();
  uint64_t p = 1;
  for (size_t i = 1; i < la; ++i) p *= 10;
  for (size_t len = la; len <= lb; ++len, p *= 10) {
    uint64_t lo = std::max<uint64_t>(a, len == 1 ? 0 : p);
    uint64_t hi = std::min<uint64_t>(b, p * 10 - 1);
    if (lo > hi) continue;
    alts.push_back(fixed_len(digits_of(lo), digits_of(hi)));
  }
  return alt(std::move(alts));
}

const std::set<std::string>& annotations() {
  static const std::set<std::string> s{"title",   "description", "default", "examples", "$schema",
                                       "$id",     "$comment",    "deprecated", "readOnly", "writeOnly"};
  return s;
}

const std::set<std::string>& supported() {
  static const std::set<std::string> s{"type",      "properties", "required", "additionalProperties", "enum",
                                       "const",     "items",      "minItems", "maxItems",             "anyOf",
                                       "$ref",      "$defs",      "definitions", "pattern",           "format",
                                       "minLength", "maxLength",  "minimum",  "maximum"};
  return s;
}

std::string ptr_escape(const std::string& k) {
  std::string o;
  for (char c : k) {
    if (c == '~') o += "~0";
    else if (c == '/') o += "~1";
    else o += c;
  }
  return o;
}

class SchemaCompiler {
 public:
  SchemaCompiler(const ojson& root, GrammarBuilder& b) : root_(root), b_(b) {}

  int32_t compile() {
    int32_t r = b_.declare("root");
    b_.define(r, value(root_, "#"));
    return r;
  }

  // The generic rules (any JSON value), created on first use.
  int32_t any_value() {
    if (any_ >= 0) return any_;
    any_ = b_.declare("any-value");
    int32_t obj = b_.declare("any-object"), arr = b_.declare("any-array");
    b_.define(any_, alt({ref(obj), ref(arr), string_expr(0, -1), number_expr(), lit("true"), lit("false"), lit("null")}));
    ExprP kv = seq({string_expr(0, -1), lit(":"), ref(any_)});
    b_.define(obj, seq({lit("{"), opt(seq({kv, rep(seq({lit(","), kv}), 0, -1)})), lit("}")}));
    b_.define(arr, seq({lit("["), opt(seq({ref(any_), rep(seq({lit(","), ref(any_)}), 0, -1)})), lit("]")}));
    return any_;
  }
  int32_t any_object() {
    any_value();
    return b_.find("any-object");
  }

 private:
  [[noreturn]] static void fail(const std::string& path, const std::string& msg) {
    bad_input("JSON Schema at '" + path + "': " + msg);
  }

  static ExprP json_char() {
    CodepointSet plain = cp_normalize({{0x20, 0x21}, {0x23, 0x5B}, {0x5D, 0x10FFFF}});
    ByteSet esc;
    for (char c : std::string("\"\\/bfnrt")) esc.set(static_cast<unsigned char>(c));
    ByteSet hex;
    for (char c : std::string("0123456789abcdefABCDEF")) hex.set(static_cast<unsigned char>(c));
    return alt({utf8_class(plain), seq({lit("\\"), alt({bytes(esc), seq({lit("u"), rep(bytes(hex), 4, 4)})})})});
  }
  static ExprP string_expr(int32_t min, int32_t max) { return seq({lit("\""), rep(json_char(), min, max), lit("\"")}); }
  static ExprP frac() { return seq({lit("."), rep(byte_range('0', '9'), 1, 15)}); }
  static ExprP number_expr() {
    ByteSet e, sign;
    e.set('e');
    e.set('E');
    sign.set('+');
    sign.set('-');
    return seq({opt(lit("-")), nonneg_range(0, kIntCap), opt(frac()),
                opt(seq({bytes(e), opt(bytes(sign)), byte_range('1', '9'), rep(byte_range('0', '9'), 0, 2)}))});
  }

  int64_t get_int(const ojson& s, const char* key, const std::string& path, int64_t dflt) {
    auto it = s.find(key);
    if (it == s.end()) return dflt;
    if (!it->is_number_integer() && !it->is_number_unsigned() &&
        !(it->is_number_float() && std::floor(it->get<double>()) == it->get<double>()))
      fail(path, std::string("'") + key + "' must be a non-negative integer");
    double v = it->get<double>();
    if (v < 0) fail(path, std::string("'") + key + "' must be a non-negative integer");
    if (v > kMaxLen) fail(path, std::string("'") + key + "' above " + std::to_string(kMaxLen) + " is not supported");
    return static_cast<int64_t>(v);
  }

  ExprP string_of(const ojson& s, const std::string& path) {
    const bool has_len = s.contains("minLength") || s.contains("maxLength");
    const int64_t mn = get_int(s, "minLength", path, 0);
    const int64_t mx = get_int(s, "maxLength", path, -1);
    if (mx >= 0 && mx < mn) fail(path, "maxLength is below minLength");
    int kinds = (s.contains("pattern") ? 1 : 0) + (s.contains("format") ? 1 : 0) + (has_len ? 1 : 0);
    if (kinds > 1) fail(path, "combining pattern, format and minLength/maxLength in one string schema is not supported");
    if (auto it = s.find("pattern"); it != s.end()) {
      if (!it->is_string()) fail(path, "'pattern' must be a string");
      std::string p = it->get<std::string>();
      // JSON Schema patterns search; anchored ones match the whole string.
      std::string re = (p.size() && p[0] == '^') ? p.substr(1) : ".*" + p;
      if (re.size() && re.back() == '$' && (re.size() < 2 || re[re.size() - 2] != '\\'))
        re.pop_back();
      else
        re += ".*";
      try {
        return seq({lit("\""), regex_expr("(?:" + re + ")", {true}), lit("\"")});
      } catch (const Error& e) {
        fail(path + "/pattern", e.what());
      }
    }
    if (auto it = s.find("format"); it != s.end()) {
      if (!it->is_string()) fail(path, "'format' must be a string");
      const std::string f = it->get<std::string>();
      static const std::string date =
          "[0-9]{4}-(?:(?:0[13578]|1[02])-(?:0[1-9]|[12][0-9]|3[01])|(?:0[469]|11)-(?:0[1-9]|[12][0-9]|30)|02-(?:0[1-9]|1[0-9]|2[0-8]))";
      static const std::string time = "(?:[01][0-9]|2[0-3]):[0-5][0-9]:[0-5][0-9](?:\\.[0-9]{1,6})?(?:Z|[+-](?:[01][0-9]|2[0-3]):[0-5][0-9])";
      std::string re;
      if (f == "date") re = date;
      else if (f == "date-time") re = date + "T" + time;
      else if (f == "time") re = time;
      else if (f == "uuid") re = "[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}";
      else if (f == "email")
        re = "[A-Za-z0-9_+-]{1,32}(?:\\.[A-Za-z0-9_+-]{1,32}){0,3}@(?:[a-z0-9](?:[a-z0-9-]{0,20}[a-z0-9])?\\.){1,3}[a-z]{2,12}";
      else
        fail(path, "unsupported string format '" + f + "' (supported: date, date-time, time, uuid, email)");
      return seq({lit("\""), regex_expr(re, {true}), lit("\"")});
    }
    return string_expr(static_cast<int32_t>(mn), static_cast<int32_t>(mx));
  }

  ExprP number_of(const ojson& s, const std::string& path, bool integer) {
    double lo = -static_cast<double>(kIntCap), hi = static_cast<double>(kIntCap);
    bool bounded = false;
    for (const char* k : {"minimum", "maximum"}) {
      auto it = s.find(k);
      if (it == s.end()) continue;
      if (!it->is_number()) fail(path, std::string("'") + k + "' must be a number");
      double v = it->get<double>();
      if (!std::isfinite(v) || std::fabs(v) > static_cast<double>(kIntCap))
        fail(path, std::string("'") + k + "' beyond 16 digits is not supported");
      (k[1] == 'i' ? lo : hi) = v;
      bounded = true;
    }
    const int64_t ilo = static_cast<int64_t>(std::ceil(lo)), ihi = static_cast<int64_t>(std::floor(hi));
    if (integer || bounded) {
      if (ilo > ihi) fail(path, "no integer lies between minimum and maximum");
    }
    if (integer) return int_range(ilo, ihi);
    if (!bounded) return number_expr();
    // Bounded numbers: I, or I.fff with [I, I+1) inside the bounds, or -J.fff
    // with (-(J+1), -J] inside (sound; bounds that are not integers round inward).
    std::vector<ExprP> alts{int_range(ilo, ihi)};
    const int64_t plo = std::max<int64_t>(ilo, 0), phi = ihi - 1;
    if (plo <= phi) alts.push_back(seq({nonneg_range(plo, phi), frac()}));
    const int64_t nlo = std::max<int64_t>(0, static_cast<int64_t>(std::ceil(-hi)));
    const int64_t nhi = static_cast<int64_t>(std::floor(-lo)) - 1;
    if (nlo <= nhi) alts.push_back(seq({lit("-"), nonneg_range(nlo, nhi), frac()}));
    return alt(std::move(alts));
  }

  ExprP array_of(const ojson& s, const std::string& path) {
    const int64_t mn = get_int(s, "minItems", path, 0);
    const int64_t mx = get_int(s, "maxItems", path, -1);
    if (mx >= 0 && mx < mn) fail(path, "maxItems is below minItems");
    int32_t item;
    if (auto it = s.find("items"); it != s.end()) {
      if (it->is_array()) fail(path + "/items", "tuple 'items' (an array of schemas) is not supported");
      item = b_.declare(path + "/items");
      b_.define(item, value(*it, path + "/items"));
    } else {
      item = any_value();
    }
    ExprP more = rep(seq({lit(","), ref(item)}), static_cast<int32_t>(std::max<int64_t>(mn - 1, 0)),
                     mx < 0 ? -1 : static_cast<int32_t>(mx - 1));
    ExprP nonempty = seq({ref(item), more});
    if (mx == 0) return lit("[]");
    return seq({lit("["), mn > 0 ? nonempty : opt(nonempty), lit("]")});
  }

  ExprP object_of(const ojson& s, const std::string& path) {
    std::vector<std::pair<std::string, ExprP>> props;
    std::vector<bool> req;
    std::set<std::string> required;
    if (auto it = s.find("required"); it != s.end()) {
      if (!it->is_array()) fail(path, "'required' must be an array of strings");
      for (const auto& r : *it) {
        if (!r.is_string()) fail(path, "'required' must be an array of strings");
        required.insert(r.get<std::string>());
      }
    }
    const ojson* ap = nullptr;
    bool ap_false = false;
    if (auto it = s.find("additionalProperties"); it != s.end()) {
      if (it->is_boolean()) ap_false = !it->get<bool>();
      else if (it->is_object()) ap = &*it;
      else fail(path, "'additionalProperties' must be a boolean or a schema");
    }
    std::set<std::string> listed;
    if (auto it = s.find("properties"); it != s.end()) {
      if (!it->is_object()) fail(path, "'properties' must be an object");
      for (auto p = it->begin(); p != it->end(); ++p) {
        const std::string sub = path + "/properties/" + ptr_escape(p.key());
        props.push_back({p.key(), value(p.value(), sub)});
        req.push_back(required.count(p.key()) > 0);
        listed.insert(p.key());
      }
    }
    for (const std::string& r : required) {
      if (listed.count(r)) continue;
      if (ap_false) fail(path, "required property '" + r + "' is not allowed by additionalProperties: false");
      props.push_back({r, ap ? value(*ap, path + "/additionalProperties") : ref(any_value())});
      req.push_back(true);
    }
    if (props.empty()) {
      if (ap_false) return lit("{}");
      ExprP v = ap ? value(*ap, path + "/additionalProperties") : ref(any_value());
      ExprP kv = seq({string_expr(0, -1), lit(":"), v});
      return seq({lit("{"), opt(seq({kv, rep(seq({lit(","), kv}), 0, -1)})), lit("}")});
    }
    // F(i, first): properties i.. in order; `first` when none came yet.
    const size_t n = props.size();
    std::vector<int32_t> rules(2 * (n + 1));
    for (size_t i = 0; i <= n; ++i)
      for (int f = 0; f < 2; ++f) rules[2 * i + f] = b_.declare(path + "#props" + std::to_string(i) + (f ? "f" : ""));
    for (size_t i = n + 1; i-- > 0;) {
      for (int f = 0; f < 2; ++f) {
        if (i == n) {
          b_.define(rules[2 * i + f], seq({}));
          continue;
        }
        ExprP kv = seq({lit((f ? "\"" : ",\"") + json_escape(props[i].first) + "\":"), props[i].second,
                        ref(rules[2 * (i + 1)])});
        b_.define(rules[2 * i + f], req[i] ? kv : alt({kv, ref(rules[2 * (i + 1) + f])}));
      }
    }
    return seq({lit("{"), ref(rules[1]), lit("}")});
  }

  static bool matches_type(const ojson& v, const std::string& t) {
    if (t == "string") return v.is_string();
    if (t == "integer") return v.is_number_integer() || v.is_number_unsigned() ||
                               (v.is_number_float() && std::floor(v.get<double>()) == v.get<double>());
    if (t == "number") return v.is_number();
    if (t == "boolean") return v.is_boolean();
    if (t == "null") return v.is_null();
    if (t == "object") return v.is_object();
    if (t == "array") return v.is_array();
    return false;
  }

  ExprP ref_target(const std::string& r, const std::string& path) {
    auto it = ref_rules_.find(r);
    if (it != ref_rules_.end()) return ref(it->second);
    if (r.empty() || r[0] != '#') fail(path, "only local $ref ('#/...') is supported, not '" + r + "'");
    const ojson* target = &root_;
    std::string rest = r.substr(1);
    size_t i = 0;
    while (i < rest.size()) {
      if (rest[i] != '/') fail(path, "invalid $ref '" + r + "'");
      size_t j = rest.find('/', i + 1);
      std::string tok = rest.substr(i + 1, j == std::string::npos ? std::string::npos : j - i - 1);
      std::string key;
      for (size_t k = 0; k < tok.size(); ++k) {
        if (tok[k] == '~' && k + 1 < tok.size()) {
          key += tok[k + 1] == '1' ? '/' : '~';
          ++k;
        } else {
          key += tok[k];
        }
      }
      if (!target->is_object() || !target->contains(key)) fail(path, "$ref '" + r + "' points nowhere");
      target = &(*target)[key];
      i = j == std::string::npos ? rest.size() : j;
    }
    int32_t rule = b_.declare("ref:" + r);
    ref_rules_[r] = rule;
    b_.define(rule, value(*target, r));
    return ref(rule);
  }

  ExprP value(const ojson& s, const std::string& path) {
    if (++depth_ > 64) fail(path, "the schema is nested too deeply");
    struct Down {
      int& d;
      ~Down() { --d; }
    } down{depth_};
    if (s.is_boolean()) {
      if (!s.get<bool>()) fail(path, "the schema 'false' matches nothing");
      return ref(any_value());
    }
    if (!s.is_object()) fail(path, "a schema must be an object or a boolean");
    for (auto it = s.begin(); it != s.end(); ++it) {
      if (annotations().count(it.key())) continue;
      if (!supported().count(it.key()))
        bad_input("unsupported JSON Schema keyword '" + it.key() + "' at '" + path + "'");
    }
    auto only = [&](const char* kw) {
      for (auto it = s.begin(); it != s.end(); ++it)
        if (it.key() != kw && it.key() != "$defs" && it.key() != "definitions" && !annotations().count(it.key()))
          fail(path, std::string("keyword '") + it.key() + "' beside '" + kw + "' is not supported");
    };
    if (auto it = s.find("$ref"); it != s.end()) {
      only("$ref");
      if (!it->is_string()) fail(path, "'$ref' must be a string");
      return ref_target(it->get<std::string>(), path);
    }
    if (auto it = s.find("anyOf"); it != s.end()) {
      only("anyOf");
      if (!it->is_array() || it->empty()) fail(path, "'anyOf' must be a non-empty array");
      std::vector<ExprP> alts;
      for (size_t i = 0; i < it->size(); ++i) alts.push_back(value((*it)[i], path + "/anyOf/" + std::to_string(i)));
      return alt(std::move(alts));
    }
    std::vector<std::string> types;
    if (auto it = s.find("type"); it != s.end()) {
      if (it->is_string()) types.push_back(it->get<std::string>());
      else if (it->is_array())
        for (const auto& t : *it) {
          if (!t.is_string()) fail(path, "'type' must be a string or an array of strings");
          types.push_back(t.get<std::string>());
        }
      else fail(path, "'type' must be a string or an array of strings");
      for (const auto& t : types)
        if (!std::set<std::string>{"string", "number", "integer", "boolean", "null", "object", "array"}.count(t))
          fail(path, "unknown type '" + t + "'");
    }
    auto literal_of = [&](const ojson& v) { return lit(v.dump()); };
    if (auto it = s.find("const"); it != s.end()) {
      if (!types.empty() && !std::any_of(types.begin(), types.end(), [&](auto& t) { return matches_type(*it, t); }))
        fail(path, "'const' does not match 'type'");
      return literal_of(*it);
    }
    if (auto it = s.find("enum"); it != s.end()) {
      if (!it->is_array() || it->empty()) fail(path, "'enum' must be a non-empty array");
      std::vector<ExprP> alts;
      for (const auto& v : *it)
        if (types.empty() || std::any_of(types.begin(), types.end(), [&](auto& t) { return matches_type(v, t); }))
          alts.push_back(literal_of(v));
      if (alts.empty()) fail(path, "no 'enum' value matches 'type'");
      return alt(std::move(alts));
    }
    if (types.empty()) {
      // Without 'type' the other keywords say which kinds are meant.
      auto has = [&](std::initializer_list<const char*> ks) {
        for (const char* k : ks)
          if (s.contains(k)) return true;
        return false;
      };
      if (has({"properties", "required", "additionalProperties"})) types.push_back("object");
      if (has({"items", "minItems", "maxItems"})) types.push_back("array");
      if (has({"pattern", "format", "minLength", "maxLength"})) types.push_back("string");
      if (has({"minimum", "maximum"})) types.push_back("number");
      if (types.empty()) return ref(any_value());
    }
    std::vector<ExprP> alts;
    for (const auto& t : types) {
      if (t == "string") alts.push_back(string_of(s, path));
      else if (t == "integer") alts.push_back(number_of(s, path, true));
      else if (t == "number") alts.push_back(number_of(s, path, false));
      else if (t == "boolean") alts.push_back(alt({lit("true"), lit("false")}));
      else if (t == "null") alts.push_back(lit("null"));
      else if (t == "object") alts.push_back(object_of(s, path));
      else if (t == "array") alts.push_back(array_of(s, path));
    }
    return alt(std::move(alts));
  }

  const ojson& root_;
  GrammarBuilder& b_;
  std::unordered_map<std::string, int32_t> ref_rules_;
  int32_t any_ = -1;
  int depth_ = 0;
};

}  // namespace

ExprP int_range(int64_t lo, int64_t hi) {
  std::vector<ExprP> alts;
  if (lo < 0) {
    const uint64_t a = hi < 0 ? static_cast<uint64_t>(-hi) : 1, b = static_cast<uint64_t>(-lo);
    alts.push_back(seq({lit("-"), nonneg_range(a, b)}));
  }
  if (hi >= 0) alts.push_back(nonneg_range(static_cast<uint64_t>(std::max<int64_t>(lo, 0)), static_cast<uint64_t>(hi)));
  return alt(std::move(alts));
}

int32_t json_schema_grammar(std::string_view schema_text, GrammarBuilder& b) {
  // ordered_json: properties come in the order the schema lists them.
  ojson o;
  try {
    o = ojson::parse(schema_text);
  } catch (const ojson::exception& e) {
    bad_input(std::string("the JSON Schema is not valid JSON: ") + e.what());
  }
  SchemaCompiler c(o, b);
  return c.compile();
}

int32_t json_object_grammar(GrammarBuilder& b) {
  ojson empty = ojson::object();
  SchemaCompiler c(empty, b);
  int32_t obj = c.any_object();
  return b.add("root", ref(obj));
}

}  // namespace ms::structured
