// structured_request.cpp — structured outputs and tool calling at the API
// edge (see structured_request.h).
#include "server/structured_request.h"

#include <cstring>
#include <random>

#include <nlohmann/json.hpp>

#include "core/error.h"
#include "structured/grammar.h"
#include "structured/grammar_text.h"
#include "structured/json_schema.h"
#include "structured/token_mask.h"
#include "tokenizer/chat.h"
#include "tokenizer/tokenizer.h"

namespace ms {

using json = nlohmann::json;
using ojson = nlohmann::ordered_json;
using Kind = StructuredSpec::Kind;
using ToolChoice = StructuredSpec::ToolChoice;

namespace {

[[noreturn]] void bad(const std::string& param, const std::string& msg, const char* code = "invalid_value") {
  throw ApiException(400, msg, param, code);
}

const json* field(const json& obj, const char* key) {
  auto it = obj.find(key);
  return it == obj.end() || it->is_null() ? nullptr : &*it;
}

bool valid_function_name(const std::string& n) {
  if (n.empty() || n.size() > 64) return false;
  for (char c : n)
    if (!std::isalnum(static_cast<unsigned char>(c)) && c != '_' && c != '-') return false;
  return true;
}

void set_kind(StructuredSpec& st, Kind k, const std::string& param) {
  if (st.kind != Kind::None)
    bad(param, "Only one output constraint may be given (found '" + st.param + "' and '" + param + "').");
  st.kind = k;
  st.param = param;
}

std::string schema_text(const json& v, const std::string& param) {
  if (v.is_string()) {
    // vLLM accepts the schema as a JSON string too.
    json parsed = json::parse(v.get<std::string>(), nullptr, false);
    if (parsed.is_discarded()) bad(param, "'" + param + "' is not valid JSON.");
    return schema_text(parsed, param);
  }
  if (!v.is_object() && !v.is_boolean()) bad(param, "'" + param + "' must be a JSON Schema (an object).");
  return v.dump();
}

void parse_response_format(const json& rf, StructuredSpec& st) {
  if (!rf.is_object()) bad("response_format", "'response_format' must be an object.");
  const json* t = field(rf, "type");
  if (!t || !t->is_string()) bad("response_format", "'response_format.type' is required.", "missing_required_parameter");
  const std::string type = t->get<std::string>();
  if (type == "text") return;
  if (type == "json_object") {
    set_kind(st, Kind::JsonObject, "response_format");
    return;
  }
  if (type != "json_schema")
    bad("response_format", "Invalid 'response_format.type' '" + type + "': expected 'text', 'json_object' or 'json_schema'.");
  const json* js = field(rf, "json_schema");
  if (!js || !js->is_object())
    bad("response_format", "'response_format.json_schema' (an object with 'name' and 'schema') is required.",
        "missing_required_parameter");
  if (const json* n = field(*js, "name"); n && (!n->is_string() || !valid_function_name(n->get<std::string>())))
    bad("response_format", "'response_format.json_schema.name' must be 1-64 letters, digits, '_' or '-'.");
  if (const json* s = field(*js, "strict"); s && !s->is_boolean())
    bad("response_format", "'response_format.json_schema.strict' must be a boolean.");
  const json* schema = field(*js, "schema");
  set_kind(st, Kind::JsonSchema, "response_format");
  st.text = schema ? schema_text(*schema, "response_format") : std::string("{}");
}

void parse_structured_outputs(const json& so, const std::string& base, StructuredSpec& st) {
  if (!so.is_object()) bad(base, "'" + base + "' must be an object.");
  for (auto it = so.begin(); it != so.end(); ++it) {
    const std::string& k = it.key();
    const std::string param = base;
    if (it->is_null()) continue;
    if (k == "choice") {
      if (!it->is_array() || it->empty()) bad(param, "'" + base + ".choice' must be a non-empty array of strings.");
      set_kind(st, Kind::Choice, param);
      for (const auto& c : *it) {
        if (!c.is_string()) bad(param, "'" + base + ".choice' must be a non-empty array of strings.");
        st.choices.push_back(c.get<std::string>());
      }
    } else if (k == "regex" || k == "grammar") {
      if (!it->is_string() || it->get<std::string>().empty()) bad(param, "'" + base + "." + k + "' must be a non-empty string.");
      set_kind(st, k == "regex" ? Kind::Regex : Kind::Grammar, param);
      st.text = it->get<std::string>();
    } else if (k == "json") {
      set_kind(st, Kind::JsonSchema, param);
      st.text = schema_text(*it, base + ".json");
    } else if (k == "json_object") {
      if (!it->is_boolean()) bad(param, "'" + base + ".json_object' must be a boolean.");
      if (it->get<bool>()) set_kind(st, Kind::JsonObject, param);
    } else {
      bad(param, "Unsupported field '" + base + "." + k + "' (supported: choice, regex, json, grammar, json_object).");
    }
  }
}

void parse_tools(const json& body, StructuredSpec& st) {
  if (const json* tools = field(body, "tools")) {
    if (!tools->is_array()) bad("tools", "'tools' must be an array of tool definitions.");
    for (size_t i = 0; i < tools->size(); ++i) {
      const json& t = (*tools)[i];
      const std::string p = "tools[" + std::to_string(i) + "]";
      if (!t.is_object()) bad("tools", "'" + p + "' must be an object.");
      const json* type = field(t, "type");
      if (!type || *type != "function") bad("tools", "'" + p + ".type' must be 'function'.");
      const json* fn = field(t, "function");
      if (!fn || !fn->is_object()) bad("tools", "'" + p + ".function' (an object with 'name') is required.");
      const json* name = field(*fn, "name");
      if (!name || !name->is_string() || !valid_function_name(name->get<std::string>()))
        bad("tools", "'" + p + ".function.name' must be 1-64 letters, digits, '_' or '-'.");
      ToolDef d;
      d.name = name->get<std::string>();
      for (const ToolDef& other : st.tools)
        if (other.name == d.name) bad("tools", "Two tools are named '" + d.name + "'.");
      if (const json* desc = field(*fn, "description")) {
        if (!desc->is_string()) bad("tools", "'" + p + ".function.description' must be a string.");
        d.description = desc->get<std::string>();
      }
      if (const json* params = field(*fn, "parameters")) {
        if (!params->is_object()) bad("tools", "'" + p + ".function.parameters' must be a JSON Schema object.");
        d.parameters = params->dump();
      }
      st.tools.push_back(std::move(d));
    }
  }
  if (const json* tc = field(body, "tool_choice")) {
    if (tc->is_string()) {
      const std::string c = tc->get<std::string>();
      if (c == "auto") st.tool_choice = ToolChoice::Auto;
      else if (c == "none") st.tool_choice = ToolChoice::None;
      else if (c == "required") st.tool_choice = ToolChoice::Required;
      else bad("tool_choice", "Invalid 'tool_choice' '" + c + "': expected 'none', 'auto', 'required' or a function.");
    } else if (tc->is_object()) {
      const json* fn = field(*tc, "function");
      const json* name = fn && fn->is_object() ? field(*fn, "name") : nullptr;
      if (!name || !name->is_string())
        bad("tool_choice", "'tool_choice' must name a function: {\"type\": \"function\", \"function\": {\"name\": ...}}.");
      st.tool_choice = ToolChoice::Named;
      st.tool_name = name->get<std::string>();
      bool found = false;
      for (const ToolDef& t : st.tools) found = found || t.name == st.tool_name;
      if (!found) bad("tool_choice", "'tool_choice' names '" + st.tool_name + "', which is not in 'tools'.");
    } else {
      bad("tool_choice", "'tool_choice' must be a string or an object.");
    }
    if (st.tools.empty() && (st.tool_choice == ToolChoice::Required || st.tool_choice == ToolChoice::Named))
      bad("tool_choice", "'tool_choice' requires 'tools'.");
  }
  if (const json* ptc = field(body, "parallel_tool_calls")) {
    if (!ptc->is_boolean()) bad("parallel_tool_calls", "'parallel_tool_calls' must be a boolean.");
    st.parallel_tool_calls = ptc->get<bool>();
  }
}

// The per-sequence constraint the engine sees.
class GrammarConstraint final : public TokenConstraint {
 public:
  GrammarConstraint(std::shared_ptr<const structured::CompiledGrammar> g, int32_t forced)
      : m_(g), g_(std::move(g)), forced_(forced) {}
  void allowed(uint64_t* mask) override {
    if (forced_ >= 0) {
      std::memset(mask, 0, g_->vocab().mask_words() * sizeof(uint64_t));
      mask[forced_ >> 6] |= uint64_t{1} << (forced_ & 63);
      return;
    }
    m_.allowed(mask);
  }
  void advance(int32_t token) override {
    if (forced_ >= 0) {
      forced_ = -1;
      return;
    }
    m_.advance(token);
  }
  bool is_complete() const override { return forced_ < 0 && m_.is_complete(); }

 private:
  structured::GrammarMatcher m_;
  std::shared_ptr<const structured::CompiledGrammar> g_;
  int32_t forced_;  // a token that must come first ([TOOL_CALLS] as a control token), or -1
};

}  // namespace

void parse_structured_fields(const json& body, GenerationSpec& spec) {
  StructuredSpec& st = spec.structured;
  if (const json* rf = field(body, "response_format")) parse_response_format(*rf, st);
  if (const json* so = field(body, "structured_outputs")) parse_structured_outputs(*so, "structured_outputs", st);
  // vLLM's older top-level names.
  static const char* legacy[][2] = {{"guided_json", "json"}, {"guided_regex", "regex"}, {"guided_choice", "choice"},
                                    {"guided_grammar", "grammar"}};
  for (const auto& l : legacy)
    if (const json* v = field(body, l[0])) parse_structured_outputs(json{{l[1], *v}}, l[0], st);
  parse_tools(body, st);
  if (!spec.chat && (!st.tools.empty() || field(body, "tool_choice")))
    bad("tools", "'tools' are only supported on /v1/chat/completions.");
  if (st.forced_tool_call() && st.kind != Kind::None)
    bad("tool_choice", "A required or named 'tool_choice' cannot be combined with '" + st.param + "'.");
}

void restore_schema_order(std::string_view raw_body, GenerationSpec& spec) {
  StructuredSpec& st = spec.structured;
  const bool schema = st.kind == Kind::JsonSchema;
  bool params = false;
  for (const ToolDef& t : st.tools) params = params || !t.parameters.empty();
  if (!schema && !params) return;
  ojson o = ojson::parse(raw_body, nullptr, false);
  if (o.is_discarded() || !o.is_object()) return;
  auto dump_at = [](const ojson& v) -> std::string {
    if (v.is_string()) {
      ojson p = ojson::parse(v.get<std::string>(), nullptr, false);
      return p.is_discarded() ? std::string() : p.dump();
    }
    return v.dump();
  };
  if (schema) {
    std::string text;
    if (st.param == "response_format" && o.contains("response_format") && o["response_format"].contains("json_schema") &&
        o["response_format"]["json_schema"].contains("schema"))
      text = dump_at(o["response_format"]["json_schema"]["schema"]);
    else if (st.param == "structured_outputs" && o.contains("structured_outputs") && o["structured_outputs"].contains("json"))
      text = dump_at(o["structured_outputs"]["json"]);
    else if (st.param == "guided_json" && o.contains("guided_json"))
      text = dump_at(o["guided_json"]);
    if (!text.empty()) st.text = text;
  }
  if (params && o.contains("tools") && o["tools"].is_array() && o["tools"].size() == st.tools.size()) {
    for (size_t i = 0; i < st.tools.size(); ++i) {
      const ojson& t = o["tools"][i];
      if (t.contains("function") && t["function"].contains("parameters") && t["function"]["parameters"].is_object())
        st.tools[i].parameters = t["function"]["parameters"].dump();
    }
  }
}

void parse_message_tool_fields(const json& m, const std::string& p, ChatMessage& out) {
  if (const json* tc = field(m, "tool_calls")) {
    if (out.role != "assistant") bad(p + ".tool_calls", "Only assistant messages carry 'tool_calls'.");
    if (!tc->is_array()) bad(p + ".tool_calls", "'" + p + ".tool_calls' must be an array.");
    for (size_t i = 0; i < tc->size(); ++i) {
      const json& c = (*tc)[i];
      const std::string cp = p + ".tool_calls[" + std::to_string(i) + "]";
      const json* fn = c.is_object() ? field(c, "function") : nullptr;
      const json* name = fn && fn->is_object() ? field(*fn, "name") : nullptr;
      if (!name || !name->is_string()) bad(cp, "'" + cp + ".function.name' is required.", "missing_required_parameter");
      ChatToolCall call;
      call.name = name->get<std::string>();
      if (const json* args = field(*fn, "arguments")) {
        if (!args->is_string()) bad(cp, "'" + cp + ".function.arguments' must be a string (JSON text).");
        call.arguments = args->get<std::string>();
      }
      if (const json* id = field(c, "id")) {
        if (!id->is_string()) bad(cp, "'" + cp + ".id' must be a string.");
        call.id = id->get<std::string>();
      }
      out.tool_calls.push_back(std::move(call));
    }
  }
  if (out.role == "tool") {
    const json* id = field(m, "tool_call_id");
    if (!id || !id->is_string())
      bad(p + ".tool_call_id", "A tool message needs a string 'tool_call_id'.", "missing_required_parameter");
    out.tool_call_id = id->get<std::string>();
  }
}

std::vector<int32_t> encode_chat_request(const Tokenizer& tok, const GenerationSpec& spec) {
  const StructuredSpec& st = spec.structured;
  bool tool_messages = false;
  for (const ChatMessage& m : spec.messages) tool_messages = tool_messages || m.role == "tool" || !m.tool_calls.empty();
  try {
    if (!st.tools_active() && !tool_messages) return encode_chat(tok, spec.messages);
    ChatToolsFormat fmt;
    if (st.tools_active()) {
      ojson tools = ojson::array();
      for (const ToolDef& t : st.tools) {
        ojson fn = ojson::object();
        fn["name"] = t.name;
        fn["description"] = t.description;
        fn["parameters"] = t.parameters.empty() ? ojson::object() : ojson::parse(t.parameters);
        tools.push_back(ojson{{"type", "function"}, {"function", std::move(fn)}});
      }
      fmt.tools_json = tools.dump(-1, ' ', false, ojson::error_handler_t::replace);
    }
    fmt.calls_json.resize(spec.messages.size());
    fmt.result_json.resize(spec.messages.size());
    for (size_t i = 0; i < spec.messages.size(); ++i) {
      const ChatMessage& m = spec.messages[i];
      if (!m.tool_calls.empty()) {
        ojson calls = ojson::array();
        for (const ChatToolCall& c : m.tool_calls) {
          ojson args = ojson::parse(c.arguments.empty() ? std::string("{}") : c.arguments, nullptr, false);
          ojson call = ojson::object();
          call["name"] = c.name;
          call["arguments"] = args.is_discarded() ? ojson(c.arguments) : args;
          if (!c.id.empty()) call["id"] = c.id;
          calls.push_back(std::move(call));
        }
        fmt.calls_json[i] = calls.dump(-1, ' ', false, ojson::error_handler_t::replace);
      }
      if (m.role == "tool")
        fmt.result_json[i] = ojson{{"call_id", m.tool_call_id}, {"content", m.content}}.dump(-1, ' ', false,
                                                                                            ojson::error_handler_t::replace);
    }
    return encode_chat_tools(tok, spec.messages, fmt);
  } catch (const Error& e) {
    throw ApiException(400, e.what(), "messages", "invalid_messages");
  }
}

StructuredRuntime::StructuredRuntime(const Tokenizer& tok, size_t grammar_cache, size_t mask_cache)
    : cache_(std::make_unique<structured::GrammarCache>(grammar_cache)), mask_cache_(mask_cache) {
  std::vector<std::string> bytes;
  bytes.reserve(static_cast<size_t>(tok.vocab_size()));
  for (int32_t i = 0; i < tok.vocab_size(); ++i) bytes.push_back(tok.token_bytes(i));
  vocab_ = std::make_shared<const structured::Vocabulary>(std::move(bytes), tok.eos_id());
  tool_calls_token_ = control_token(tok, kToolCallsMarker);
}

StructuredRuntime::~StructuredRuntime() = default;

size_t StructuredRuntime::cached_grammars() const { return cache_->size(); }

std::shared_ptr<const structured::CompiledGrammar> StructuredRuntime::compile(
    const std::string& key, const std::function<int32_t(structured::GrammarBuilder&)>& build, const std::string& param) {
  if (auto hit = cache_->find(key)) return hit;
  try {
    structured::GrammarBuilder b;
    const int32_t root = build(b);
    auto g = std::make_shared<const structured::CompiledGrammar>(structured::Grammar::compile(b, root), vocab_,
                                                                 mask_cache_);
    cache_->put(key, g);
    return g;
  } catch (const Error& e) {
    throw ApiException(400, std::string("Invalid '") + param + "': " + e.what(), param, "invalid_value");
  }
}

std::function<std::shared_ptr<TokenConstraint>()> StructuredRuntime::constraint_for(const GenerationSpec& spec) {
  namespace st = structured;
  const StructuredSpec& s = spec.structured;
  if (!s.constrained()) return nullptr;
  std::shared_ptr<const st::CompiledGrammar> g;
  int32_t forced = -1;
  switch (s.kind) {
    case Kind::JsonObject:
      g = compile("json_object", [](st::GrammarBuilder& b) { return st::json_object_grammar(b); }, s.param);
      break;
    case Kind::JsonSchema:
      g = compile("schema:" + s.text, [&](st::GrammarBuilder& b) { return st::json_schema_grammar(s.text, b); }, s.param);
      break;
    case Kind::Regex:
      g = compile("regex:" + s.text, [&](st::GrammarBuilder& b) { return st::regex_grammar(s.text, b); }, s.param);
      break;
    case Kind::Choice:
      g = compile("choice:" + json(s.choices).dump(), [&](st::GrammarBuilder& b) { return st::choice_grammar(s.choices, b); },
                  s.param);
      break;
    case Kind::Grammar:
      g = compile("grammar:" + s.text,
                  [&](st::GrammarBuilder& b) {
                    int32_t root;
                    b = st::parse_gbnf(s.text, root);
                    return root;
                  },
                  s.param);
      break;
    case Kind::None: {
      // A required or named tool call: [TOOL_CALLS] then a JSON list of calls.
      std::vector<const ToolDef*> tools;
      for (const ToolDef& t : s.tools)
        if (s.tool_choice != ToolChoice::Named || t.name == s.tool_name) tools.push_back(&t);
      const bool marker_token = tool_calls_token_ >= 0;
      // A named function is called once (as OpenAI and vLLM do); "required"
      // allows a list unless parallel_tool_calls is false.
      const bool many = s.parallel_tool_calls && s.tool_choice == ToolChoice::Required;
      json key = json::array({marker_token, many});
      for (const ToolDef* t : tools) key.push_back(json::array({t->name, t->parameters}));
      g = compile("tools:" + key.dump(),
                  [&](st::GrammarBuilder& b) {
                    const int32_t root = b.declare("tool-calls");
                    std::vector<st::ExprP> calls;
                    for (const ToolDef* t : tools) {
                      const int32_t args =
                          st::json_schema_grammar(t->parameters.empty() ? std::string(R"({"type":"object"})") : t->parameters, b);
                      calls.push_back(st::seq({st::lit("{\"name\":\"" + st::json_escape(t->name) + "\",\"arguments\":"),
                                               st::ref(args), st::lit("}")}));
                    }
                    const int32_t call = b.add("tool-call", st::alt(std::move(calls)));
                    st::ExprP list = many
                                         ? st::seq({st::lit("["), st::ref(call),
                                                    st::rep(st::seq({st::lit(","), st::ref(call)}), 0, -1), st::lit("]")})
                                         : st::seq({st::lit("["), st::ref(call), st::lit("]")});
                    b.define(root, marker_token ? list : st::seq({st::lit(std::string(kToolCallsMarker) + " "), list}));
                    return root;
                  },
                  "tools");
      forced = tool_calls_token_;
      break;
    }
  }
  return [g, forced] { return std::make_shared<GrammarConstraint>(g, forced); };
}

std::string new_tool_call_id() {
  thread_local std::mt19937_64 rng{std::random_device{}()};
  static const char* alnum = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789";
  std::string id;
  for (int i = 0; i < 9; ++i) id += alnum[rng() % 62];
  return id;
}

std::optional<std::vector<ToolCallOut>> parse_tool_calls(std::string_view text, bool marker_seen,
                                                         const std::vector<ToolDef>& tools) {
  size_t i = text.find_first_not_of(" \t\r\n");
  if (i == std::string_view::npos) return std::nullopt;
  text.remove_prefix(i);
  const std::string_view marker = kToolCallsMarker;
  if (text.substr(0, marker.size()) == marker) text.remove_prefix(marker.size());
  else if (!marker_seen) return std::nullopt;
  ojson v = ojson::parse(text, nullptr, false);
  if (v.is_discarded()) return std::nullopt;
  if (v.is_object()) v = ojson::array({v});
  if (!v.is_array() || v.empty()) return std::nullopt;
  std::vector<ToolCallOut> out;
  for (const ojson& c : v) {
    if (!c.is_object() || !c.contains("name") || !c["name"].is_string()) return std::nullopt;
    ToolCallOut call;
    call.name = c["name"].get<std::string>();
    bool known = false;
    for (const ToolDef& t : tools) known = known || t.name == call.name;
    if (!known) return std::nullopt;
    const ojson args = c.contains("arguments") ? c["arguments"] : ojson::object();
    if (args.is_string()) {
      ojson parsed = ojson::parse(args.get<std::string>(), nullptr, false);
      if (parsed.is_discarded()) return std::nullopt;
      call.arguments = parsed.dump();
    } else {
      call.arguments = args.dump(-1, ' ', false, ojson::error_handler_t::replace);
    }
    call.id = new_tool_call_id();
    out.push_back(std::move(call));
  }
  return out;
}

}  // namespace ms
