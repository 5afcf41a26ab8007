// api_routes.cpp — request routing and the non-streaming endpoints (see api_routes.h).
#include "server/api_routes.h"

#include <ctime>
#include <new>

#include <nlohmann/json.hpp>

#include "core/error.h"
#include "engine/engine.h"
#include "server/static_routes.h"
#include "tokenizer/chat.h"
#include "tokenizer/tokenizer.h"

namespace ms {

using json = nlohmann::json;

HttpResp error_response(const ApiError& e) {
  HttpResp r;
  r.status = e.status;
  r.body = dump_json(error_json(e));
  if (e.status == 429 || e.status == 503) r.headers.emplace_back("Retry-After", "1");
  return r;
}

namespace {

HttpResp json_response(const json& j, int status = 200) {
  HttpResp r;
  r.status = status;
  r.body = dump_json(j);
  return r;
}

enum class Route { None, Health, Metrics, Models, Model, Chat, Completions, Tokenize, Detokenize };

Route match(const std::string& path, std::string& model_id) {
  if (path == "/health") return Route::Health;
  if (path == "/metrics") return Route::Metrics;
  if (path == "/v1/models") return Route::Models;
  if (path.rfind("/v1/models/", 0) == 0 && path.size() > 11) {
    model_id = path.substr(11);
    return Route::Model;
  }
  if (path == "/v1/chat/completions") return Route::Chat;
  if (path == "/v1/completions") return Route::Completions;
  if (path == "/tokenize" || path == "/v1/tokenize") return Route::Tokenize;
  if (path == "/detokenize" || path == "/v1/detokenize") return Route::Detokenize;
  return Route::None;
}

bool is_post(Route r) {
  return r == Route::Chat || r == Route::Completions || r == Route::Tokenize || r == Route::Detokenize;
}

bool authorized(const ApiContext& ctx, const std::string& header) {
  const std::string& key = ctx.opts.api_key;
  if (key.empty()) return true;
  const std::string prefix = "Bearer ";
  if (header.size() != prefix.size() + key.size() || header.compare(0, prefix.size(), prefix) != 0) return false;
  unsigned diff = 0;  // constant time in the key
  for (size_t i = 0; i < key.size(); ++i) diff |= static_cast<unsigned char>(header[prefix.size() + i] ^ key[i]);
  return diff == 0;
}

const std::string& served_name(const ApiContext& ctx) { return ctx.opts.served_model_name; }

std::vector<int32_t> encode_messages(const Tokenizer& tok, const std::vector<ChatMessage>& msgs) {
  try {
    return encode_chat(tok, msgs);
  } catch (const Error& e) {
    throw ApiException(400, e.what(), "messages", "invalid_messages");
  }
}

std::vector<int32_t> encode_text(const Tokenizer& tok, const std::string& text, bool bos, const char* param) {
  std::vector<int32_t> ids;
  if (bos) ids.push_back(tok.bos_id());
  try {
    std::vector<int32_t> t = tok.encode(text);
    ids.insert(ids.end(), t.begin(), t.end());
  } catch (const Error& e) {
    throw ApiException(400, e.what(), param, "invalid_value");
  }
  return ids;
}

RouteResult generation(ApiContext& ctx, const HttpReq& req, bool chat, std::chrono::steady_clock::time_point arrival) {
  const ModelLimits lim = ctx.limits();
  json body = parse_json_body(req.body);
  GenerationSpec spec = chat ? parse_chat_request(body, lim) : parse_completion_request(body, lim);
  check_model(spec.model, served_name(ctx));
  restore_schema_order(req.body, spec);
  const Tokenizer& tok = *ctx.backend().tokenizer;
  // Compiled (or found in the cache) before anything is submitted: a bad schema is a 400.
  std::function<std::shared_ptr<TokenConstraint>()> make_constraint;
  if (spec.structured.constrained()) {
    if (!ctx.structured()) throw ApiException(503, "The model is loading; retry shortly.", "", "model_loading");
    make_constraint = ctx.structured()->constraint_for(spec);
  }

  std::vector<std::vector<int32_t>> prompts;
  if (chat) {
    prompts.push_back(encode_chat_request(tok, spec));
  } else {
    for (const PromptInput& p : spec.prompts)
      prompts.push_back(p.is_text ? encode_text(tok, p.text, true, "prompt") : p.tokens);
  }
  std::vector<int32_t> max_tokens;
  for (const auto& p : prompts) max_tokens.push_back(resolve_max_tokens(spec, p.size(), lim));

  ResponseMeta meta{new_request_id(chat ? "chatcmpl-" : "cmpl-"), static_cast<int64_t>(std::time(nullptr)),
                    served_name(ctx)};
  RouteResult rr;
  rr.id = meta.id;
  rr.job = std::make_shared<GenerationJob>(ctx, std::move(spec), std::move(prompts), std::move(max_tokens),
                                           std::move(meta), arrival);
  if (make_constraint) rr.job->set_constraint(std::move(make_constraint));
  return rr;
}

HttpResp tokenize(ApiContext& ctx, const HttpReq& req) {
  json body = parse_json_body(req.body);
  TokenizeSpec spec = parse_tokenize_request(body);
  check_model(spec.model, served_name(ctx));
  const Tokenizer& tok = *ctx.backend().tokenizer;
  std::vector<int32_t> ids = spec.chat ? encode_messages(tok, spec.messages)
                                       : encode_text(tok, spec.prompt, spec.add_special_tokens, "prompt");
  return json_response(
      json{{"tokens", ids}, {"count", ids.size()}, {"max_model_len", ctx.backend().max_context}});
}

HttpResp detokenize(ApiContext& ctx, const HttpReq& req) {
  json body = parse_json_body(req.body);
  std::string model;
  std::vector<int32_t> ids = parse_detokenize_request(body, ctx.limits(), &model);
  check_model(model, served_name(ctx));
  return json_response(json{{"prompt", ctx.backend().tokenizer->decode(ids)}});
}

HttpResp health(const ApiContext& ctx) {
  if (ctx.stopping()) return error_response({503, "The server is shutting down.", "service_unavailable_error", "", "shutting_down"});
  if (!ctx.ready()) return error_response({503, "The model is loading.", "service_unavailable_error", "", "model_loading"});
  return json_response(json{{"status", "ok"}});
}

HttpResp metrics(ApiContext& ctx) {
  HttpResp r;
  r.content_type = "text/plain; version=0.0.4; charset=utf-8";
  if (ctx.ready()) {
    EngineStats st = ctx.backend().engine->stats();
    r.body = ctx.metrics.render(&st, ctx.backend().num_layers, ctx.backend().num_experts, !ctx.stopping());
  } else {
    r.body = ctx.metrics.render(nullptr, 0, 0, false);
  }
  return r;
}

}  // namespace

RouteResult route_request(ApiContext& ctx, const HttpReq& req, std::chrono::steady_clock::time_point arrival) {
  RouteResult rr;
  try {
    std::string path = req.target.substr(0, req.target.find('?'));
    std::string model_id;
    Route route = match(path, model_id);
    if (route == Route::None) {
      if (auto page = playground_response(ctx, req)) {
        rr.resp = std::move(*page);
        return rr;
      }
      rr.resp = error_response({404, "Unknown route: " + req.method + " " + path + ".", "not_found_error", "", "unknown_route"});
      return rr;
    }
    const bool want_post = is_post(route);
    const bool ok_method = want_post ? req.method == "POST" : (req.method == "GET" || req.method == "HEAD");
    if (!ok_method) {
      rr.resp = error_response({405, "Method " + req.method + " is not allowed on " + path + "; use " +
                                         (want_post ? "POST" : "GET") + ".",
                                "invalid_request_error", "", "method_not_allowed"});
      rr.resp.headers.emplace_back("Allow", want_post ? "POST" : "GET, HEAD");
      return rr;
    }
    if (route == Route::Health) {
      rr.resp = health(ctx);
      return rr;
    }
    if (route == Route::Metrics) {
      rr.resp = metrics(ctx);
      return rr;
    }
    if (!authorized(ctx, req.authorization)) {
      rr.resp = error_response({401,
                                req.authorization.empty() ? "Missing API key: send 'Authorization: Bearer <key>'."
                                                          : "Incorrect API key provided.",
                                "invalid_request_error", "", "invalid_api_key"});
      return rr;
    }
    if (ctx.stopping()) {
      rr.resp = error_response({503, "The server is shutting down.", "service_unavailable_error", "", "shutting_down"});
      return rr;
    }
    if (!ctx.ready()) {
      rr.resp = error_response({503, "The model is loading; retry shortly.", "service_unavailable_error", "", "model_loading"});
      return rr;
    }
    switch (route) {
      case Route::Models:
        rr.resp = json_response(json{{"object", "list"},
                                     {"data", json::array({model_json(served_name(ctx), ctx.started_unix,
                                                                      ctx.backend().max_context)})}});
        break;
      case Route::Model:
        check_model(model_id, served_name(ctx));
        rr.resp = json_response(model_json(served_name(ctx), ctx.started_unix, ctx.backend().max_context));
        break;
      case Route::Chat: return generation(ctx, req, true, arrival);
      case Route::Completions: return generation(ctx, req, false, arrival);
      case Route::Tokenize: rr.resp = tokenize(ctx, req); break;
      case Route::Detokenize: rr.resp = detokenize(ctx, req); break;
      default: break;
    }
  } catch (const ApiException& e) {
    rr.job.reset();
    rr.resp = error_response(e.error());
  } catch (const Error& e) {
    rr.job.reset();
    int status = e.kind() == ErrorKind::BadInput || e.kind() == ErrorKind::Unsupported ? 400 : 500;
    rr.resp = error_response({status, e.what(), error_type_for_status(status), "", ""});
  } catch (const std::bad_alloc&) {
    rr.job.reset();
    rr.resp = error_response({500, "Out of memory.", "server_error", "", ""});
  } catch (const std::exception& e) {
    rr.job.reset();
    rr.resp = error_response({500, std::string("Internal error: ") + e.what(), "server_error", "", ""});
  }
  return rr;
}

}  // namespace ms
