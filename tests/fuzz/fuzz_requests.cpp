// (c) OpenAI request bodies -> native structs -> response JSON. The first
// byte picks the endpoint (chat, completions, tokenize, detokenize); the
// rest is the HTTP body. Parsed generation requests are then answered by a
// ResponseBuilder fed synthetic engine events for every choice, streamed
// and not, with logprobs when asked, and the response serialised.
#include <cstddef>
#include <cstdint>
#include <nlohmann/json.hpp>

#include "core/error.h"
#include "fuzz_util.h"
#include "server/openai_response.h"
#include "server/openai_schema.h"
#include "tokenizer/chat.h"

namespace {

const ms::Tokenizer& tok() {
  static auto t = ms::Tokenizer::from_file(std::string(MOESERVE_SOURCE_DIR) + "/models/tiny-mixtral-kjv/tokenizer.model");
  return *t;
}

void answer(const ms::GenerationSpec& spec, uint8_t salt) {
  std::vector<int64_t> lens;
  size_t longest = 0;
  if (spec.chat) {
    const auto ids = ms::encode_chat(tok(), spec.messages);
    lens.push_back(int64_t(ids.size()));
    longest = ids.size();
  } else {
    for (const auto& p : spec.prompts) {
      const size_t n = p.is_text ? tok().encode(p.text).size() + 1 : p.tokens.size();
      lens.push_back(int64_t(n));
      longest = std::max(longest, n);
    }
  }
  if (lens.empty()) return;
  ms::ModelLimits lim;
  (void)ms::resolve_max_tokens(spec, longest, lim);
  ms::ResponseBuilder rb(spec, {"id-1", 1700000000, "m"}, lens,
                         [](int32_t id) { return tok().token_bytes(id); });
  std::string sse = rb.stream_start();
  for (size_t c = 0; c < rb.num_choices(); ++c) {
    for (int k = 0; k < 2; ++k) {
      ms::StreamEvent ev;
      ev.token = int32_t((salt * 131 + c * 7 + k) % 32000);
      ev.text = tok().token_bytes(ev.token);
      ev.logprob = -0.5f;
      for (int t = 0; t < spec.top_logprobs; ++t) ev.top_logprobs.push_back({int32_t(t), -1.0f - float(t)});
      ev.completion_tokens = k + 1;
      sse += rb.on_event(c, ev);
    }
    ms::StreamEvent end;
    end.finish = (salt & 1) ? ms::FinishReason::Stop : ms::FinishReason::Length;
    end.prompt_tokens = int32_t(lens[std::min(c, lens.size() - 1)]);
    end.completion_tokens = 2;
    sse += rb.on_event(c, end);
  }
  sse += rb.stream_end();
  // As the server serialises (openai_response.cpp): a logprob token that is
  // a lone byte piece is not UTF-8; its "bytes" array carries it exactly.
  const std::string body = rb.response().dump(-1, ' ', false, nlohmann::json::error_handler_t::replace);
  ms::fuzz::check(!body.empty(), "empty response");
  // Everything produced is valid JSON per SSE line.
  ms::fuzz::check(nlohmann::json::accept(body), "response is not JSON");
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  if (size < 1) return 0;
  const uint8_t which = data[0] % 4;
  const std::string_view body(reinterpret_cast<const char*>(data) + 1, size - 1);
  ms::ModelLimits lim;
  try {
    const nlohmann::json j = ms::parse_json_body(body);
    switch (which) {
      case 0: answer(ms::parse_chat_request(j, lim), data[0]); break;
      case 1: answer(ms::parse_completion_request(j, lim), data[0]); break;
      case 2: {
        const ms::TokenizeSpec t = ms::parse_tokenize_request(j);
        (void)(t.chat ? ms::encode_chat(tok(), t.messages) : tok().encode(t.prompt));
        break;
      }
      default: (void)tok().decode(ms::parse_detokenize_request(j, lim)); break;
    }
  } catch (const ms::ApiException&) {
  } catch (const ms::Error&) {
  }
  return 0;
}
