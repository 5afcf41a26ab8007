// openai_schema.cpp — request parsing and validation (see openai_schema.h).
#include "server/openai_schema.h"

#include <cmath>
#include <cstdlib>
#include <limits>
#include <sstream>

#include <nlohmann/json.hpp>

#include "server/structured_request.h"

namespace ms {

using json = nlohmann::json;

const char* error_type_for_status(int status) {
  switch (status) {
    case 401: return "authentication_error";
    case 403: return "permission_error";
    case 404: return "not_found_error";
    case 413: return "invalid_request_error";
    case 429: return "rate_limit_error";
    case 503: return "service_unavailable_error";
    default: return status >= 500 ? "server_error" : "invalid_request_error";
  }
}

ApiException::ApiException(int status, std::string message, std::string param, std::string code,
                           std::string type) {
  err_.status = status;
  err_.message = std::move(message);
  err_.param = std::move(param);
  err_.code = std::move(code);
  err_.type = type.empty() ? error_type_for_status(status) : std::move(type);
}

namespace {

[[noreturn]] void bad(const std::string& param, const std::string& msg, const char* code = "invalid_value") {
  throw ApiException(400, msg, param, code);
}

const char* type_name(const json& v) {
  switch (v.type()) {
    case json::value_t::null: return "null";
    case json::value_t::boolean: return "a boolean";
    case json::value_t::string: return "a string";
    case json::value_t::array: return "an array";
    case json::value_t::object: return "an object";
    case json::value_t::number_integer:
    case json::value_t::number_unsigned: return "an integer";
    case json::value_t::number_float: return "a number";
    default: return "an unsupported value";
  }
}

[[noreturn]] void wrong_type(const std::string& param, const char* expected, const json& got) {
  bad(param, "Invalid type for '" + param + "': expected " + expected + ", but got " + type_name(got) +
                 " instead.",
      "invalid_type");
}

std::string fmt_num(double v) {
  std::ostringstream os;
  os << v;
  return os.str();
}

// Typed, null-tolerant access to the fields of a request object.
class Fields {
 public:
  explicit Fields(const json& obj) : obj_(obj) {}

  const json* get(const char* key) const {
    auto it = obj_.find(key);
    if (it == obj_.end() || it->is_null()) return nullptr;
    return &*it;
  }
  bool has(const char* key) const { return get(key) != nullptr; }

  std::optional<bool> boolean(const char* key) const {
    const json* v = get(key);
    if (!v) return std::nullopt;
    if (!v->is_boolean()) wrong_type(key, "a boolean", *v);
    return v->get<bool>();
  }

  std::optional<std::string> string(const char* key) const {
    const json* v = get(key);
    if (!v) return std::nullopt;
    if (!v->is_string()) wrong_type(key, "a string", *v);
    return v->get<std::string>();
  }

  // A finite number in [lo, hi].
  std::optional<double> number(const char* key, double lo, double hi) const {
    const json* v = get(key);
    if (!v) return std::nullopt;
    if (!v->is_number()) wrong_type(key, "a number", *v);
    double d = v->get<double>();
    if (!std::isfinite(d) || d < lo || d > hi)
      bad(key, std::string("Invalid '") + key + "': expected a value in [" + fmt_num(lo) + ", " +
                   fmt_num(hi) + "], but got " + fmt_num(d) + " instead.");
    return d;
  }

  // An integer (integral floats allowed) in [lo, hi].
  std::optional<int64_t> integer(const char* key, int64_t lo, int64_t hi) const {
    const json* v = get(key);
    if (!v) return std::nullopt;
    return as_integer(*v, key, lo, hi);
  }

  static int64_t as_integer(const json& v, const std::string& param, int64_t lo, int64_t hi) {
    if (!v.is_number()) wrong_type(param, "an integer", v);
    double d;
    if (v.is_number_unsigned()) {
      uint64_t u = v.get<uint64_t>();
      // Non-negative literals parse as unsigned: check both ends.
      if (u > static_cast<uint64_t>(hi) || (lo > 0 && u < static_cast<uint64_t>(lo)))
        range(param, lo, hi, static_cast<double>(u));
      return static_cast<int64_t>(u);
    }
    if (v.is_number_integer()) {
      int64_t i = v.get<int64_t>();
      if (i < lo || i > hi) range(param, lo, hi, static_cast<double>(i));
      return i;
    }
    d = v.get<double>();
    if (!std::isfinite(d) || std::floor(d) != d) wrong_type(param, "an integer", v);
    // Only a double in [-2^63, 2^63) converts to int64; double(INT64_MAX) is
    // 2^63 itself, so the range is checked on the exact bounds first.
    if (d < -0x1p63 || d >= 0x1p63) range(param, lo, hi, d);
    const int64_t i = static_cast<int64_t>(d);
    if (i < lo || i > hi) range(param, lo, hi, d);
    return i;
  }

  // A 64-bit seed: any integer in [-2^63, 2^64), integral floats included
  // (negative values wrap to their two's-complement bits, as before).
  static uint64_t as_seed(const json& v, const std::string& param) {
    if (v.is_number_unsigned()) return v.get<uint64_t>();
    if (v.is_number_integer()) return static_cast<uint64_t>(v.get<int64_t>());
    if (!v.is_number()) wrong_type(param, "an integer", v);
    const double d = v.get<double>();
    if (!std::isfinite(d) || std::floor(d) != d) wrong_type(param, "an integer", v);
    if (d < -0x1p63 || d >= 0x1p64)
      bad(param, "Invalid '" + param + "': expected an integer in [-2^63, 2^64), but got " + fmt_num(d) + " instead.");
    return d < 0 ? static_cast<uint64_t>(static_cast<int64_t>(d)) : static_cast<uint64_t>(d);
  }

 private:
  [[noreturn]] static void range(const std::string& param, int64_t lo, int64_t hi, double got) {
    std::string msg = "Invalid '" + param + "': expected ";
    if (hi == std::numeric_limits<int64_t>::max() || hi == std::numeric_limits<int32_t>::max())
      msg += "an integer >= " + std::to_string(lo);
    else
      msg += "an integer in [" + std::to_string(lo) + ", " + std::to_string(hi) + "]";
    bad(param, msg + ", but got " + fmt_num(got) + " instead.");
  }

  const json& obj_;
};

std::string part_text(const json& content, const std::string& param) {
  if (content.is_string()) return content.get<std::string>();
  if (!content.is_array()) wrong_type(param, "a string or an array of content parts", content);
  std::string out;
  for (size_t i = 0; i < content.size(); ++i) {
    const json& part = content[i];
    std::string p = param + "[" + std::to_string(i) + "]";
    if (!part.is_object()) wrong_type(p, "an object", part);
    auto t = part.find("type");
    if (t == part.end() || !t->is_string()) bad(p + ".type", "Missing or invalid 'type' of a content part.");
    if (*t != "text")
      bad(p + ".type", "Unsupported content part type '" + t->get<std::string>() +
                           "': this model only takes text.");
    auto tx = part.find("text");
    if (tx == part.end() || !tx->is_string()) bad(p + ".text", "A text content part needs a string 'text'.");
    out += tx->get<std::string>();
  }
  return out;
}

// A token id list: every element an integer in [0, vocab).
std::vector<int32_t> token_list(const json& arr, const std::string& param, const ModelLimits& lim) {
  std::vector<int32_t> out;
  out.reserve(arr.size());
  for (size_t i = 0; i < arr.size(); ++i) {
    const json& t = arr[i];
    if (!t.is_number_integer() && !t.is_number_unsigned())
      wrong_type(param + "[" + std::to_string(i) + "]", "an integer token id", t);
    out.push_back(static_cast<int32_t>(Fields::as_integer(t, param, 0, lim.vocab_size - 1)));
  }
  return out;
}

std::vector<PromptInput> parse_prompt(const json* v, const ModelLimits& lim) {
  if (!v) bad("prompt", "'prompt' is required.", "missing_required_parameter");
  std::vector<PromptInput> out;
  if (v->is_string()) {
    out.push_back({true, v->get<std::string>(), {}});
    return out;
  }
  if (!v->is_array()) wrong_type("prompt", "a string, an array of strings or token ids", *v);
  if (v->empty()) bad("prompt", "'prompt' must not be empty.");
  if ((*v)[0].is_number()) {
    out.push_back({false, {}, token_list(*v, "prompt", lim)});
    return out;
  }
  if (v->size() > static_cast<size_t>(kMaxPrompts))
    bad("prompt", "Too many prompts: at most " + std::to_string(kMaxPrompts) + " per request.");
  for (size_t i = 0; i < v->size(); ++i) {
    const json& e = (*v)[i];
    std::string p = "prompt[" + std::to_string(i) + "]";
    if (e.is_string()) {
      out.push_back({true, e.get<std::string>(), {}});
    } else if (e.is_array()) {
      if (e.empty()) bad(p, "A token-id prompt must not be empty.");
      out.push_back({false, {}, token_list(e, p, lim)});
    } else {
      wrong_type(p, "a string or an array of token ids", e);
    }
  }
  return out;
}

std::vector<std::string> parse_stop(const Fields& f) {
  const json* v = f.get("stop");
  std::vector<std::string> out;
  if (!v) return out;
  if (v->is_string()) {
    out.push_back(v->get<std::string>());
  } else if (v->is_array()) {
    if (v->size() > static_cast<size_t>(kMaxStopStrings))
      bad("stop", "At most " + std::to_string(kMaxStopStrings) + " stop sequences are allowed.");
    for (size_t i = 0; i < v->size(); ++i) {
      if (!(*v)[i].is_string()) wrong_type("stop[" + std::to_string(i) + "]", "a string", (*v)[i]);
      out.push_back((*v)[i].get<std::string>());
    }
  } else {
    wrong_type("stop", "a string or an array of strings", *v);
  }
  for (const auto& s : out)
    if (s.empty()) bad("stop", "Stop sequences must not be empty.");
  return out;
}

// The fields chat and completions share.
void parse_common(const Fields& f, GenerationSpec& s, const ModelLimits& lim) {
  if (auto m = f.string("model")) s.model = *m;
  if (auto u = f.string("user")) s.user = *u;
  SamplingParams& sp = s.sampling;

  // max_completion_tokens (newer name) wins over max_tokens.
  const char* mt_key = f.has("max_completion_tokens") ? "max_completion_tokens" : "max_tokens";
  if (auto mt = f.integer(mt_key, 1, std::numeric_limits<int32_t>::max()))
    s.max_tokens = static_cast<int32_t>(*mt);
  if (auto mn = f.integer("max_tokens", 1, std::numeric_limits<int32_t>::max()); mn && !s.max_tokens)
    s.max_tokens = static_cast<int32_t>(*mn);

  if (auto t = f.number("temperature", 0.0, 2.0)) sp.temperature = static_cast<float>(*t);
  // top_k: -1 or 0 = off (vLLM uses -1).
  if (auto k = f.integer("top_k", -1, lim.vocab_size); k && *k > 0) sp.top_k = static_cast<int32_t>(*k);
  if (auto p = f.number("top_p", 0.0, 1.0)) {
    if (*p == 0.0) {
      sp.top_p = 1.0f;  // top_p 0 keeps only the most likely token
      sp.top_k = 1;
    } else {
      sp.top_p = static_cast<float>(*p);
    }
  }
  if (auto m = f.number("min_p", 0.0, 1.0)) sp.min_p = static_cast<float>(*m);
  if (auto p = f.number("presence_penalty", -2.0, 2.0)) sp.presence_penalty = static_cast<float>(*p);
  if (auto p = f.number("frequency_penalty", -2.0, 2.0)) sp.frequency_penalty = static_cast<float>(*p);
  if (auto r = f.number("repetition_penalty", 0.0, 10.0)) {
    if (*r <= 0.0) bad("repetition_penalty", "Invalid 'repetition_penalty': must be > 0.");
    sp.repetition_penalty = static_cast<float>(*r);
  }
  if (const json* seed = f.get("seed")) {
    sp.seed = Fields::as_seed(*seed, "seed");
    sp.has_seed = true;
  }
  if (auto n = f.integer("n", 1, kMaxN)) s.n = static_cast<int>(*n);
  sp.stop = parse_stop(f);
  if (auto ids = f.get("stop_token_ids")) {
    if (!ids->is_array()) wrong_type("stop_token_ids", "an array of token ids", *ids);
    sp.stop_token_ids = token_list(*ids, "stop_token_ids", lim);
  }
  if (auto ie = f.boolean("ignore_eos")) sp.ignore_eos = *ie;

  if (const json* lb = f.get("logit_bias")) {
    if (!lb->is_object()) wrong_type("logit_bias", "an object mapping token ids to biases", *lb);
    for (auto it = lb->begin(); it != lb->end(); ++it) {
      const std::string& key = it.key();
      // Decimal digits only (no sign, space or exponent), at most 9 of them.
      int64_t id = key.empty() || key.size() > 9 ? -1 : 0;
      for (char ch : key) id = (id < 0 || ch < '0' || ch > '9') ? -1 : id * 10 + (ch - '0');
      if (id < 0 || id >= lim.vocab_size)
        bad("logit_bias", "Invalid key in 'logit_bias': '" + key + "' is not a token id in [0, " +
                              std::to_string(lim.vocab_size) + ").");
      if (!it->is_number()) wrong_type("logit_bias", "numbers as values", *it);
      double b = it->get<double>();
      if (!std::isfinite(b) || b < -100.0 || b > 100.0)
        bad("logit_bias", "Invalid 'logit_bias' value for token " + key + ": expected a number in [-100, 100].");
      sp.logit_bias[static_cast<int32_t>(id)] = static_cast<float>(b);
    }
  }

  if (auto st = f.boolean("stream")) s.stream = *st;
  if (const json* so = f.get("stream_options")) {
    if (!so->is_object()) wrong_type("stream_options", "an object", *so);
    if (!s.stream) bad("stream_options", "'stream_options' is only allowed when 'stream' is true.");
    auto iu = so->find("include_usage");
    if (iu != so->end() && !iu->is_null()) {
      if (!iu->is_boolean()) wrong_type("stream_options.include_usage", "a boolean", *iu);
      s.include_usage = iu->get<bool>();
    }
  }
  if (auto tt = f.boolean("return_tokens_as_token_ids")) s.return_tokens_as_token_ids = *tt;
  if (auto el = f.boolean("return_expert_load")) s.return_expert_load = *el;

}

}  // namespace

json parse_json_body(std::string_view body) {
  json j;
  try {
    auto depth_guard = [](int depth, json::parse_event_t, json&) {
      if (depth > kMaxJsonDepth) throw ApiException(400, "Invalid JSON body: nested too deeply.");
      return true;
    };
    j = json::parse(body.begin(), body.end(), depth_guard);
  } catch (const ApiException&) {
    throw;
  } catch (const json::exception& e) {
    std::string what = e.what();
    // nlohmann prefixes messages with "[json.exception.parse_error.101] ".
    if (auto p = what.find("] "); p != std::string::npos) what = what.substr(p + 2);
    throw ApiException(400, "Invalid JSON body: " + what, "", "invalid_json");
  }
  if (!j.is_object()) throw ApiException(400, "The request body must be a JSON object.", "", "invalid_json");
  return j;
}

std::vector<ChatMessage> parse_messages(const json& v) {
  if (!v.is_array()) wrong_type("messages", "an array", v);
  if (v.empty()) bad("messages", "'messages' must contain at least one message.");
  std::vector<ChatMessage> out;
  out.reserve(v.size());
  for (size_t i = 0; i < v.size(); ++i) {
    const json& m = v[i];
    std::string p = "messages[" + std::to_string(i) + "]";
    if (!m.is_object()) wrong_type(p, "an object", m);
    auto role = m.find("role");
    if (role == m.end() || role->is_null()) bad(p + ".role", "Missing 'role' in " + p + ".", "missing_required_parameter");
    if (!role->is_string()) wrong_type(p + ".role", "a string", *role);
    std::string r = role->get<std::string>();
    if (r == "developer") r = "system";
    if (r != "system" && r != "user" && r != "assistant" && r != "tool")
      bad(p + ".role", "Invalid role '" + r + "' in " + p +
                           ": supported roles are 'system', 'developer', 'user', 'assistant' and 'tool'.");
    auto content = m.find("content");
    std::string text;
    if (content == m.end() || content->is_null()) {
      if (r != "assistant") bad(p + ".content", "Missing 'content' in " + p + ".", "missing_required_parameter");
    } else {
      text = part_text(*content, p + ".content");
    }
    ChatMessage msg{std::move(r), std::move(text), {}, {}};
    parse_message_tool_fields(m, p, msg);
    out.push_back(std::move(msg));
  }
  return out;
}

GenerationSpec parse_chat_request(const json& body, const ModelLimits& lim) {
  Fields f(body);
  GenerationSpec s;
  s.chat = true;
  const json* msgs = f.get("messages");
  if (!msgs) bad("messages", "'messages' is required.", "missing_required_parameter");
  s.messages = parse_messages(*msgs);
  parse_common(f, s, lim);
  parse_structured_fields(body, s);
  if (auto lp = f.boolean("logprobs")) s.want_logprobs = *lp;
  if (auto tl = f.integer("top_logprobs", 0, kMaxTopLogprobsChat)) {
    if (!s.want_logprobs) bad("top_logprobs", "'top_logprobs' requires 'logprobs' to be true.");
    s.top_logprobs = static_cast<int>(*tl);
  }
  if (s.want_logprobs) s.sampling.logprobs = s.top_logprobs;
  return s;
}

GenerationSpec parse_completion_request(const json& body, const ModelLimits& lim) {
  Fields f(body);
  GenerationSpec s;
  s.chat = false;
  s.prompts = parse_prompt(f.get("prompt"), lim);
  parse_common(f, s, lim);
  parse_structured_fields(body, s);
  if (const json* lp = f.get("logprobs")) {
    if (lp->is_boolean()) wrong_type("logprobs", "an integer", *lp);
    s.top_logprobs = static_cast<int>(Fields::as_integer(*lp, "logprobs", 0, kMaxLogprobsCompletion));
    s.want_logprobs = true;
    s.sampling.logprobs = s.top_logprobs;
  }
  if (auto echo = f.boolean("echo"); echo && *echo) bad("echo", "'echo' is not supported by this server.");
  if (f.has("suffix")) bad("suffix", "'suffix' is not supported by this server.");
  if (auto bo = f.integer("best_of", 1, kMaxN); bo && *bo != s.n)
    bad("best_of", "'best_of' other than 'n' is not supported by this server.");
  if (s.prompts.size() * static_cast<size_t>(s.n) > static_cast<size_t>(kMaxPrompts))
    bad("n", "Too many choices: prompts x n must be at most " + std::to_string(kMaxPrompts) + ".");
  return s;
}

int32_t resolve_max_tokens(const GenerationSpec& spec, size_t prompt_len, const ModelLimits& lim) {
  const char* what = spec.chat ? "messages" : "prompt";
  const int64_t ctx = lim.max_context;
  if (static_cast<int64_t>(prompt_len) >= ctx)
    throw ApiException(400,
                       "This model's maximum context length is " + std::to_string(ctx) +
                           " tokens. However, your " + what + " resulted in " + std::to_string(prompt_len) +
                           " tokens, which leaves no room for a completion.",
                       what, "context_length_exceeded");
  const int64_t room = ctx - static_cast<int64_t>(prompt_len);
  if (!spec.max_tokens) return static_cast<int32_t>(spec.chat ? room : std::min<int64_t>(16, room));
  if (*spec.max_tokens > room)
    throw ApiException(400,
                       "This model's maximum context length is " + std::to_string(ctx) +
                           " tokens. However, you requested " +
                           std::to_string(static_cast<int64_t>(prompt_len) + *spec.max_tokens) + " tokens (" +
                           std::to_string(prompt_len) + " in the " + what + ", " +
                           std::to_string(*spec.max_tokens) +
                           " in the completion). Please reduce the length of the " + what + " or completion.",
                       "max_tokens", "context_length_exceeded");
  return *spec.max_tokens;
}

void check_model(const std::string& requested, const std::string& served) {
  if (requested.empty() || requested == served) return;
  throw ApiException(404, "The model '" + requested + "' does not exist. This server serves '" + served + "'.",
                     "model", "model_not_found");
}

TokenizeSpec parse_tokenize_request(const json& body) {
  Fields f(body);
  TokenizeSpec s;
  if (auto m = f.string("model")) s.model = *m;
  if (auto a = f.boolean("add_special_tokens")) s.add_special_tokens = *a;
  const json* msgs = f.get("messages");
  const json* prompt = f.get("prompt");
  if (msgs && prompt) bad("prompt", "Give either 'prompt' or 'messages', not both.");
  if (msgs) {
    s.chat = true;
    s.messages = parse_messages(*msgs);
  } else if (prompt) {
    if (!prompt->is_string()) wrong_type("prompt", "a string", *prompt);
    s.prompt = prompt->get<std::string>();
  } else {
    bad("prompt", "'prompt' or 'messages' is required.", "missing_required_parameter");
  }
  return s;
}

std::vector<int32_t> parse_detokenize_request(const json& body, const ModelLimits& lim, std::string* model) {
  Fields f(body);
  if (auto m = f.string("model"); m && model) *model = *m;
  const json* t = f.get("tokens");
  if (!t) bad("tokens", "'tokens' is required.", "missing_required_parameter");
  if (!t->is_array()) wrong_type("tokens", "an array of token ids", *t);
  return token_list(*t, "tokens", lim);
}

}  // namespace ms
