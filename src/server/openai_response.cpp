// openai_response.cpp — response bodies and SSE chunks (see openai_response.h).
#include "server/openai_response.h"

#include <random>

#include "server/expert_load_json.h"

namespace ms {

using json = nlohmann::json;

std::string dump_json(const json& j) { return j.dump(-1, ' ', false, json::error_handler_t::replace); }

json error_json(const ApiError& e) {
  json err = {{"message", e.message},
              {"type", e.type},
              {"param", e.param.empty() ? json(nullptr) : json(e.param)},
              {"code", e.code.empty() ? json(nullptr) : json(e.code)}};
  return json{{"error", std::move(err)}};
}

std::string new_request_id(std::string_view prefix) {
  thread_local std::mt19937_64 rng{std::random_device{}()};
  static const char* hex = "0123456789abcdef";
  std::string id(prefix);
  uint64_t a = rng(), b = rng();
  for (int i = 0; i < 16; ++i) id += hex[(a >> (4 * i)) & 15];
  for (int i = 0; i < 8; ++i) id += hex[(b >> (4 * i)) & 15];
  return id;
}

json usage_json(int64_t prompt_tokens, int64_t completion_tokens, int64_t cached_tokens) {
  return json{{"prompt_tokens", prompt_tokens},
              {"completion_tokens", completion_tokens},
              {"total_tokens", prompt_tokens + completion_tokens},
              {"prompt_tokens_details", {{"cached_tokens", cached_tokens}}}};
}

json model_json(const std::string& name, int64_t created, int64_t max_model_len) {
  return json{{"id", name},
              {"object", "model"},
              {"created", created},
              {"owned_by", "moeserve"},
              {"root", name},
              {"parent", nullptr},
              {"max_model_len", max_model_len}};
}

const char* finish_reason_string(FinishReason r) {
  switch (r) {
    case FinishReason::Stop: return "stop";
    case FinishReason::Length: return "length";
    case FinishReason::Cancelled: return "cancelled";
    case FinishReason::Error: return "error";
    default: return nullptr;
  }
}

ResponseBuilder::ResponseBuilder(const GenerationSpec& spec, ResponseMeta meta, std::vector<int64_t> prompt_lens,
                                 TokenBytesFn token_bytes)
    : chat_(spec.chat),
      stream_(spec.stream),
      include_usage_(spec.include_usage),
      want_logprobs_(spec.want_logprobs),
      token_ids_(spec.return_tokens_as_token_ids),
      want_expert_load_(spec.return_expert_load),
      n_(spec.n),
      meta_(std::move(meta)),
      prompt_lens_(std::move(prompt_lens)),
      token_bytes_(std::move(token_bytes)),
      choices_(spec.num_choices()) {
  if (chat_ && spec.structured.tools_active()) {
    tools_ = spec.structured.tools;
    tools_forced_ = spec.structured.forced_tool_call();
    for (Choice& c : choices_) c.tool = tools_forced_ ? ToolState::Calls : ToolState::Pending;
  }
}

std::string ResponseBuilder::tool_filter(Choice& ch, const StreamEvent& ev) {
  if (ch.tool == ToolState::Off || ch.tool == ToolState::Text) return ev.text;
  if (ev.token >= 0 && ev.token == tool_calls_token_ && ch.tool == ToolState::Pending &&
      ch.text.find_first_not_of(" \t\r\n") == std::string::npos) {
    ch.tool = ToolState::Calls;
    ch.marker_token = true;
  }
  if (ch.tool == ToolState::Calls) return {};
  // Pending: hold while the text (after leading whitespace) is a prefix of the marker.
  const std::string marker = kToolCallsMarker;
  const size_t b = ch.text.find_first_not_of(" \t\r\n");
  const std::string t = b == std::string::npos ? std::string() : ch.text.substr(b);
  if (t.size() >= marker.size() && t.compare(0, marker.size(), marker) == 0) {
    ch.tool = ToolState::Calls;
    return {};
  }
  if (marker.compare(0, t.size(), t) == 0 && ev.finish == FinishReason::None) return {};
  ch.tool = ToolState::Text;
  std::string out = ch.text.substr(ch.streamed);
  return out;
}

json ResponseBuilder::tool_calls_json(const std::vector<ToolCallOut>& calls, bool with_index) const {
  json a = json::array();
  for (size_t k = 0; k < calls.size(); ++k) {
    json c = {{"id", calls[k].id},
              {"type", "function"},
              {"function", {{"name", calls[k].name}, {"arguments", calls[k].arguments}}}};
    if (with_index) c["index"] = k;
    a.push_back(std::move(c));
  }
  return a;
}

std::string ResponseBuilder::content_delta(size_t idx, const std::string& text, const TokenEntry* entry) const {
  json c = chunk_base();
  json choice;
  if (chat_) {
    choice = {{"index", idx}, {"delta", {{"content", text}}}};
    choice["logprobs"] = entry ? chat_logprobs({*entry}) : json(nullptr);
  } else {
    choice = {{"index", idx}, {"text", text}};
    choice["logprobs"] = entry ? completion_logprobs({*entry}) : json(nullptr);
  }
  choice["finish_reason"] = nullptr;
  c["choices"] = json::array({std::move(choice)});
  return sse(c);
}

std::string ResponseBuilder::token_string(int32_t id) const {
  if (token_ids_) return "token_id:" + std::to_string(id);
  return token_bytes_ ? token_bytes_(id) : std::string();
}

static json byte_array(const std::string& s) {
  json a = json::array();
  for (unsigned char c : s) a.push_back(static_cast<int>(c));
  return a;
}

json ResponseBuilder::chat_logprob_entry(const TokenEntry& t) const {
  std::string s = token_string(t.token);
  json top = json::array();
  for (const auto& alt : t.top) {
    std::string as = token_string(alt.token);
    top.push_back({{"token", as}, {"logprob", alt.logprob}, {"bytes", byte_array(as)}});
  }
  return json{{"token", s}, {"logprob", t.logprob}, {"bytes", byte_array(s)}, {"top_logprobs", std::move(top)}};
}

json ResponseBuilder::chat_logprobs(const std::vector<TokenEntry>& entries) const {
  json content = json::array();
  for (const auto& t : entries) content.push_back(chat_logprob_entry(t));
  return json{{"content", std::move(content)}, {"refusal", nullptr}};
}

json ResponseBuilder::completion_logprobs(const std::vector<TokenEntry>& entries) const {
  json tokens = json::array(), lps = json::array(), tops = json::array(), offs = json::array();
  for (const auto& t : entries) {
    tokens.push_back(token_string(t.token));
    lps.push_back(t.logprob);
    json top = json::object();
    for (const auto& alt : t.top) top[token_string(alt.token)] = alt.logprob;
    tops.push_back(std::move(top));
    offs.push_back(t.text_offset);
  }
  return json{{"tokens", std::move(tokens)},
              {"token_logprobs", std::move(lps)},
              {"top_logprobs", std::move(tops)},
              {"text_offset", std::move(offs)}};
}

json ResponseBuilder::chunk_base() const {
  json j = {{"id", meta_.id},
            {"object", chat_ ? "chat.completion.chunk" : "text_completion"},
            {"created", meta_.created},
            {"model", meta_.model}};
  if (include_usage_) j["usage"] = nullptr;
  return j;
}

std::string ResponseBuilder::sse(const json& j) const { return "data: " + dump_json(j) + "\n\n"; }

std::string ResponseBuilder::stream_start() const {
  if (!stream_ || !chat_) return {};
  std::string out;
  for (size_t i = 0; i < choices_.size(); ++i) {
    json c = chunk_base();
    c["choices"] = json::array({json{{"index", i},
                                     {"delta", {{"role", "assistant"}, {"content", ""}}},
                                     {"logprobs", nullptr},
                                     {"finish_reason", nullptr}}});
    out += sse(c);
  }
  return out;
}

std::string ResponseBuilder::on_event(size_t idx, const StreamEvent& ev) {
  if (idx >= choices_.size()) return {};
  Choice& ch = choices_[idx];
  if (ch.finish != FinishReason::None) return {};  // nothing after the end
  std::string out;
  const size_t offset = ch.text.size();
  TokenEntry entry{ev.token, ev.logprob, ev.top_logprobs, offset};
  const bool has_token = ev.token >= 0;
  if (has_token) ch.completion_tokens++;
  if (has_token && want_logprobs_) ch.logprobs.push_back(entry);
  ch.text += ev.text;
  const std::string content = tool_filter(ch, ev);
  const bool per_token = ch.tool == ToolState::Off || ch.tool == ToolState::Text;

  if (stream_ && (!content.empty() || (has_token && want_logprobs_ && per_token))) {
    out += content_delta(idx, content, (has_token && want_logprobs_ && per_token) ? &entry : nullptr);
    ch.streamed += content.size();
  }

  if (ev.finish != FinishReason::None && ch.tool == ToolState::Calls) {
    // Parse the buffered calls; text that is not a list of calls is content.
    std::optional<std::vector<ToolCallOut>> calls;
    if (ev.finish == FinishReason::Stop) calls = parse_tool_calls(ch.text, ch.marker_token, tools_);
    if (calls) {
      ch.calls = std::move(*calls);
      if (stream_) {
        json c = chunk_base();
        c["choices"] = json::array({json{{"index", idx},
                                         {"delta", {{"tool_calls", tool_calls_json(ch.calls, true)}}},
                                         {"logprobs", nullptr},
                                         {"finish_reason", nullptr}}});
        out += sse(c);
      }
    } else {
      ch.tool = ToolState::Text;
      if (stream_ && ch.text.size() > ch.streamed) {
        out += content_delta(idx, ch.text.substr(ch.streamed), nullptr);
        ch.streamed = ch.text.size();
      }
    }
  }

  if (ev.finish != FinishReason::None) {
    ch.finish = ev.finish;
    // The engine's count is authoritative (it includes a final token, if any).
    if (ev.completion_tokens > 0) ch.completion_tokens = ev.completion_tokens;
    ch.cached_tokens = ev.cached_tokens;
    ch.expert_load = ev.expert_load;
    finished_++;
    if (ev.finish == FinishReason::Error || ev.finish == FinishReason::Cancelled) {
      if (!failed_) failure_ = ev.finish == FinishReason::Error
                                   ? (ev.error.empty() ? std::string("generation failed") : ev.error)
                                   : std::string("request cancelled");
      failed_ = true;
      return out;
    }
    if (stream_) {
      json c = chunk_base();
      json choice = {{"index", idx}};
      if (chat_)
        choice["delta"] = json::object();
      else
        choice["text"] = "";
      choice["logprobs"] = nullptr;
      choice["finish_reason"] = ch.calls.empty() ? finish_reason_string(ev.finish) : "tool_calls";
      c["choices"] = json::array({std::move(choice)});
      out += sse(c);
    }
  }
  return out;
}

int64_t ResponseBuilder::prompt_tokens() const {
  int64_t s = 0;
  for (int64_t l : prompt_lens_) s += l;
  return s;
}

int64_t ResponseBuilder::completion_tokens() const {
  int64_t s = 0;
  for (const auto& c : choices_) s += c.completion_tokens;
  return s;
}

int64_t ResponseBuilder::cached_tokens() const {
  // Per prompt, the cache hits of its first choice (the others share its prompt).
  int64_t s = 0;
  for (size_t i = 0; i < choices_.size(); i += static_cast<size_t>(n_)) s += choices_[i].cached_tokens;
  return s;
}

json ResponseBuilder::expert_load() const {
  std::vector<std::shared_ptr<const ExpertLoad>> loads;
  for (const auto& c : choices_) loads.push_back(c.expert_load);
  return expert_load_json(loads);
}

std::string ResponseBuilder::stream_end() const {
  std::string out;
  // The last chunk before [DONE] carries the usage and/or the expert load.
  if (include_usage_ || want_expert_load_) {
    json c = chunk_base();
    c["choices"] = json::array();
    if (include_usage_) c["usage"] = usage_json(prompt_tokens(), completion_tokens(), cached_tokens());
    if (want_expert_load_) c["expert_load"] = expert_load();
    out += sse(c);
  }
  out += "data: [DONE]\n\n";
  return out;
}

std::string ResponseBuilder::stream_error(const ApiError& e) {
  return "data: " + dump_json(error_json(e)) + "\n\ndata: [DONE]\n\n";
}

json ResponseBuilder::response() const {
  json choices = json::array();
  for (size_t i = 0; i < choices_.size(); ++i) {
    const Choice& ch = choices_[i];
    const char* fr = finish_reason_string(ch.finish);
    json c = {{"index", i}};
    if (chat_ && !ch.calls.empty()) {
      c["message"] = {{"role", "assistant"}, {"content", nullptr}, {"tool_calls", tool_calls_json(ch.calls, false)}};
      c["logprobs"] = want_logprobs_ ? chat_logprobs(ch.logprobs) : json(nullptr);
      fr = "tool_calls";
    } else if (chat_) {
      c["message"] = {{"role", "assistant"}, {"content", ch.text}};
      c["logprobs"] = want_logprobs_ ? chat_logprobs(ch.logprobs) : json(nullptr);
    } else {
      c["text"] = ch.text;
      c["logprobs"] = want_logprobs_ ? completion_logprobs(ch.logprobs) : json(nullptr);
    }
    c["finish_reason"] = fr ? json(fr) : json(nullptr);
    choices.push_back(std::move(c));
  }
  json r = {{"id", meta_.id},
            {"object", chat_ ? "chat.completion" : "text_completion"},
            {"created", meta_.created},
            {"model", meta_.model},
            {"choices", std::move(choices)},
            {"usage", usage_json(prompt_tokens(), completion_tokens(), cached_tokens())}};
  if (want_expert_load_) r["expert_load"] = expert_load();
  return r;
}

}  // namespace ms
