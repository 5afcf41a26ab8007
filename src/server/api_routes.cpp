// api_routes.cpp — request routing and the non-streaming endpoints (see api_routes.h).
#include "server/api_routes.h"

#include <algorithm>
#include <cmath>
#include <ctime>
#include <new>

#include <nlohmann/json.hpp>

#include "core/error.h"
#include "engine/engine.h"
#include "server/static_routes.h"
#include "governance/admin.h"
#include "governance/governor.h"
#include "server/admin_routes.h"
#include "server/model_routes.h"
#include "server/batch_routes.h"
#include "batch/batch_service.h"
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

enum class Route { None, Health, Livez, Metrics, Models, Model, Chat, Completions, Tokenize, Detokenize, Admin, AdminModels, UsageMe, Batch };

Route match(const std::string& path, std::string& model_id) {
  if (path == "/health") return Route::Health;
  if (path == "/livez") return Route::Livez;
  if (path == "/admin/v1/models" || path.rfind("/admin/v1/models/", 0) == 0) return Route::AdminModels;
  if (path.rfind("/admin/v1/", 0) == 0) return Route::Admin;
  if (path == "/v1/usage/me") return Route::UsageMe;
  if (is_batch_path(path)) return Route::Batch;
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

// The "model" a request body names ("" when absent or not a string; the
// schema parsers report a wrong type).
std::string peek_model(const json& body) {
  if (!body.is_object()) return "";
  auto it = body.find("model");
  return it != body.end() && it->is_string() ? it->get<std::string>() : std::string();
}

ApiException unknown_model(const ModelRegistry& reg, const std::string& name) {
  std::string served;
  for (const std::string& n : reg.names()) served += (served.empty() ? "'" : ", '") + n + "'";
  return ApiException(404, "The model '" + name + "' does not exist. This server serves " + served + ".", "model",
                      "model_not_found");
}

ApiError unavailable(const ModelRegistry::Resolution& r) {
  return ApiError{503, r.message, "service_unavailable_error", "model",
                  r.kind == ModelRegistry::Resolution::Loading ? "model_loading" : "model_not_loaded"};
}

// The loaded model for a request naming `name` (tokenize, detokenize): the
// first of its candidates that is loaded; 404 unknown, 503 none loaded.
std::shared_ptr<ServedModel> need_model(ApiContext& ctx, const std::string& name) {
  ModelRegistry& reg = ctx.models();
  std::vector<std::string> cands = reg.candidates(name, "");
  if (cands.empty()) throw unknown_model(reg, name);
  std::optional<ApiError> err;
  for (const std::string& c : cands) {
    ModelRegistry::Resolution r = reg.acquire(c);
    if (r.kind == ModelRegistry::Resolution::Ok) return r.model;
    if (!err) err = unavailable(r);
  }
  throw ApiException(*err);
}

// A governance refusal as an OpenAI error (Retry-After from the verdict).
HttpResp gov_error(const gov::Verdict& v) {
  HttpResp r = error_response({v.status, v.message, error_type_for_status(v.status), "", v.code});
  if (v.status == 429 || v.status == 503) {
    for (auto& [k, val] : r.headers)
      if (k == "Retry-After") val = std::to_string(std::max<int64_t>(1, static_cast<int64_t>(std::ceil(v.retry_after_s))));
  }
  return r;
}

// The caller's key (*key: its record under governance, else left null), or
// the 401/403 that refuses it.
std::optional<HttpResp> authenticate(const ApiContext& ctx, const std::string& authorization,
                                     std::shared_ptr<const gov::KeyRecord>* key) {
  if (gov::Governor* g = ctx.opts.governance) {
    gov::Auth a = g->authenticate(authorization);
    if (!a.verdict) return gov_error(a.verdict);
    *key = a.key;
    return std::nullopt;
  }
  if (authorized(ctx, authorization)) return std::nullopt;
  return error_response({401,
                         authorization.empty() ? "Missing API key: send 'Authorization: Bearer <key>'."
                                               : "Incorrect API key provided.",
                         "invalid_request_error", "", "invalid_api_key"});
}

// What generation() learned before it failed, for the usage row of a refusal.
struct GenInfo {
  std::string id, model;
  bool stream = false;
};

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

RouteResult generation(ApiContext& ctx, const HttpReq& req, bool chat, std::chrono::steady_clock::time_point arrival,
                       const gov::KeyRecord* key, GenInfo& info, bool batch_line = false) {
  ModelRegistry& reg = ctx.models();
  json body = parse_json_body(req.body);
  const std::string requested = peek_model(body);
  info.model = requested.empty() ? reg.default_name() : requested;
  gov::Governor* g = ctx.opts.governance;
  if (g && key) {
    gov::Verdict v = g->permit(*key, info.model);
    if (!v) {
      g->count_refusal("permission");
      throw ApiException(ApiError{v.status, v.message, error_type_for_status(v.status), "model", v.code});
    }
  }
  // The chosen model, then its fallbacks: the next one is tried when a model
  // is not loaded, its queue is full, or the key's limits refuse it (429/503).
  const std::vector<std::string> cands = reg.candidates(requested, key ? key->id : std::string());
  if (cands.empty()) throw unknown_model(reg, requested);
  std::optional<ApiError> last_error;
  RouteResult refused;  // the last governance refusal, with its headers
  bool have_refused = false;
  for (size_t ci = 0; ci < cands.size(); ++ci) {
    const std::string& name = cands[ci];
    const bool last = ci + 1 == cands.size();
    ModelRegistry::Resolution res = reg.acquire(name);
    if (res.kind != ModelRegistry::Resolution::Ok) {
      last_error = unavailable(res);
      continue;
    }
    std::shared_ptr<ServedModel> model = res.model;
    const ServerBackend& be = model->backend();
    const ModelLimits lim = model->limits();
    GenerationSpec spec = chat ? parse_chat_request(body, lim) : parse_completion_request(body, lim);
    if (batch_line) spec.stream = false;  // a batch line's answer is one response body
    info.model = name;
    info.stream = spec.stream;
    if (!last && be.max_queue > 0 && be.engine->stats().waiting >= be.max_queue) {
      last_error = ApiError{429, "The model '" + name + "' is busy: its request queue is full. Retry later.",
                            error_type_for_status(429), "", "queue_full"};
      continue;
    }
    restore_schema_order(req.body, spec);
    if (!be.tokenizer) {  // a model without a tokenizer takes token ids only
      bool text = chat;
      for (const PromptInput& p : spec.prompts) text = text || p.is_text;
      if (text)
        throw ApiException(400, "The model '" + name + "' has no tokenizer: send the prompt as token ids to /v1/completions.",
                           chat ? "messages" : "prompt", "invalid_value");
    }
    const Tokenizer* tok = be.tokenizer;  // null: token-id prompts only (checked above)
    // Compiled (or found in the cache) before anything is submitted: a bad schema is a 400.
    std::function<std::shared_ptr<TokenConstraint>()> make_constraint;
    if (spec.structured.constrained()) {
      if (!model->structured()) throw ApiException(503, "The model is loading; retry shortly.", "", "model_loading");
      make_constraint = model->structured()->constraint_for(spec);
    }

    std::vector<std::vector<int32_t>> prompts;
    if (chat) {
      prompts.push_back(encode_chat_request(*tok, spec));
    } else {
      for (const PromptInput& p : spec.prompts)
        prompts.push_back(p.is_text ? encode_text(*tok, p.text, true, "prompt") : p.tokens);
    }
    std::vector<int32_t> max_tokens;
    for (const auto& p : prompts) max_tokens.push_back(resolve_max_tokens(spec, p.size(), lim));

    ResponseMeta meta{info.id, static_cast<int64_t>(std::time(nullptr)), name};
    RouteResult rr;
    rr.id = meta.id;
    gov::Ticket ticket;
    gov::Headers headers;
    Priority priority = Priority::Standard;
    if (g && key && batch_line) {
      ticket.key_id = key->id;  // not charged to the rate limits; usage recorded
      ticket.model = name;
    } else if (g && key) {
      // TPM reservation: every prompt once, plus max_tokens for each of its n choices.
      int64_t reserve = 0;
      for (size_t p = 0; p < prompts.size(); ++p) {
        int64_t mt = max_tokens[p];
        if (!spec.max_tokens && g->options().default_reservation > 0)
          mt = std::min<int64_t>(mt, g->options().default_reservation);
        reserve += static_cast<int64_t>(prompts[p].size()) + int64_t{spec.n} * mt;
      }
      gov::Verdict v = g->admit(*key, name, reserve, ticket, headers);
      if (!v) {
        rr.resp = gov_error(v);
        for (auto& h : headers) rr.resp.headers.push_back(std::move(h));
        if (!last && (v.status == 429 || v.status == 503)) {
          refused = std::move(rr);
          have_refused = true;
          continue;
        }
        return rr;
      }
      // Provisioned throughput: within the key's reservation -> the Provisioned class.
      if (g->provisioned(*key, name, reserve, ticket)) {
        priority = Priority::Provisioned;
        headers.emplace_back("x-moeserve-priority", priority_name(priority));
      }
    }
    const std::string request_body = ticket.log_payload ? req.body : std::string();
    rr.job = std::make_shared<GenerationJob>(ctx, std::move(model), std::move(spec), std::move(prompts),
                                             std::move(max_tokens), std::move(meta), arrival);
    if (make_constraint) rr.job->set_constraint(std::move(make_constraint));
    rr.job->set_priority(priority);
    if (g && key) rr.job->attach_governance(std::move(ticket), std::move(headers), request_body);
    if (batch_line) {
      rr.job->set_priority(Priority::Batch);
      rr.job->set_usage_context("batch");
    }
    return rr;
  }
  if (last_error) throw ApiException(*last_error);
  if (have_refused) return refused;
  throw ApiException(503, "No model could take the request.", "", "model_not_loaded");
}

// generation() with its exceptions turned into error responses.
RouteResult generation_guarded(ApiContext& ctx, const HttpReq& req, bool chat, std::chrono::steady_clock::time_point arrival,
                               const gov::KeyRecord* key, GenInfo& info, bool batch_line = false) {
  RouteResult rr;
  try {
    return generation(ctx, req, chat, arrival, key, info, batch_line);
  } catch (const ApiException& e) {
    rr.resp = error_response(e.error());
  } catch (const Error& e) {
    int status = e.kind() == ErrorKind::BadInput || e.kind() == ErrorKind::Unsupported ? 400 : 500;
    rr.resp = error_response({status, e.what(), error_type_for_status(status), "", ""});
  } catch (const std::bad_alloc&) {
    rr.resp = error_response({500, "Out of memory.", "server_error", "", ""});
  }
  return rr;
}

HttpResp tokenize(ApiContext& ctx, const HttpReq& req) {
  json body = parse_json_body(req.body);
  TokenizeSpec spec = parse_tokenize_request(body);
  std::shared_ptr<ServedModel> model = need_model(ctx, spec.model);
  if (!model->backend().tokenizer) throw ApiException(400, "The model has no tokenizer.", "model", "invalid_value");
  const Tokenizer& tok = *model->backend().tokenizer;
  std::vector<int32_t> ids = spec.chat ? encode_messages(tok, spec.messages)
                                       : encode_text(tok, spec.prompt, spec.add_special_tokens, "prompt");
  return json_response(
      json{{"tokens", ids}, {"count", ids.size()}, {"max_model_len", model->backend().max_context}});
}

HttpResp detokenize(ApiContext& ctx, const HttpReq& req) {
  json body = parse_json_body(req.body);
  std::string model;
  std::shared_ptr<ServedModel> m = need_model(ctx, peek_model(body));
  if (!m->backend().tokenizer) throw ApiException(400, "The model has no tokenizer.", "model", "invalid_value");
  std::vector<int32_t> ids = parse_detokenize_request(body, m->limits(), &model);
  return json_response(json{{"prompt", m->backend().tokenizer->decode(ids)}});
}

HttpResp health(const ApiContext& ctx) {
  if (ctx.stopping()) return error_response({503, "The server is shutting down.", "service_unavailable_error", "", "shutting_down"});
  if (!ctx.ready()) return error_response({503, "The model is loading.", "service_unavailable_error", "", "model_loading"});
  return json_response(json{{"status", "ok"}});
}

HttpResp metrics(ApiContext& ctx) {
  HttpResp r;
  r.content_type = "text/plain; version=0.0.4; charset=utf-8";
  if (ctx.opts.models) {  // several models: each one's series labelled model="NAME"
    std::vector<ModelMetricsView> views;
    if (ctx.ready())
      for (const auto& sm : ctx.models().loaded())
        views.push_back({sm->name(), sm->backend().engine->stats(), sm->backend().num_layers, sm->backend().num_experts});
    r.body = ctx.metrics.render_models(views, ctx.ready() && !ctx.stopping());
    if (ctx.opts.governance) r.body += ctx.opts.governance->render_metrics();
    return r;
  }
  std::shared_ptr<ServedModel> m = ctx.ready() ? ctx.models().any_loaded() : nullptr;
  if (m) {
    EngineStats st = m->backend().engine->stats();
    r.body = ctx.metrics.render(&st, m->backend().num_layers, m->backend().num_experts, !ctx.stopping());
  } else {
    r.body = ctx.metrics.render(nullptr, 0, 0, false);
  }
  if (ctx.opts.governance) r.body += ctx.opts.governance->render_metrics();
  return r;
}

}  // namespace

RouteResult batch_line_job(ApiContext& ctx, const std::string& url, const std::string& body,
                           const gov::KeyRecord* key, const std::string& line_ref) {
  const auto arrival = std::chrono::steady_clock::now();
  const bool chat = url == "/v1/chat/completions";
  HttpReq req;
  req.method = "POST";
  req.target = url;
  req.body = body;
  GenInfo info;
  info.id = (chat ? "chatcmpl-" : "cmpl-") + line_ref;
  RouteResult res = generation_guarded(ctx, req, chat, arrival, key, info, true);
  res.id = info.id;
  gov::Governor* g = ctx.opts.governance;
  if (g && key && !res.job) {  // refused before it ran: still one usage row
    gov::UsageRow row;
    row.request_id = info.id;
    row.ts_ms = gov::now_ms();
    row.key_id = key->id;
    row.model = info.model;
    row.status = res.resp.status;
    row.usage_context = "batch";
    row.duration_ms = std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - arrival).count();
    g->record(std::move(row));
  }
  return res;
}

std::optional<HttpResp> refuse_before_body(const ApiContext& ctx, const std::string& authorization) {
  std::shared_ptr<const gov::KeyRecord> key;
  try {
    return authenticate(ctx, authorization, &key);
  } catch (const std::exception&) {
    return std::nullopt;  // the route answers (the store is unavailable: 503)
  }
}

RouteResult route_request(ApiContext& ctx, const HttpReq& req, std::chrono::steady_clock::time_point arrival) {
  RouteResult rr;
  const auto t_route = std::chrono::steady_clock::now();  // admission latency (generation routes)
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
    const bool ok_method = route == Route::Admin || route == Route::AdminModels || route == Route::Batch ||
                           (want_post ? req.method == "POST" : (req.method == "GET" || req.method == "HEAD"));
    if (!ok_method) {
      rr.resp = error_response({405, "Method " + req.method + " is not allowed on " + path + "; use " +
                                         (want_post ? "POST" : "GET") + ".",
                                "invalid_request_error", "", "method_not_allowed"});
      rr.resp.headers.emplace_back("Allow", want_post ? "POST" : "GET, HEAD");
      return rr;
    }
    gov::Governor* g = ctx.opts.governance;
    if (route == Route::Livez) {  // liveness: the process serves (loading and draining included); never a key
      rr.resp = json_response(json{{"status", "alive"}});
      return rr;
    }
    const bool open_route = (route == Route::Health || route == Route::Metrics) && !ctx.opts.metrics_require_key;
    std::shared_ptr<const gov::KeyRecord> key;
    if (!open_route) {
      if (auto refused = authenticate(ctx, req.authorization, &key)) {
        rr.resp = std::move(*refused);
        return rr;
      }
    }
    if (route == Route::Health) {
      rr.resp = health(ctx);
      return rr;
    }
    if (route == Route::Metrics) {
      rr.resp = metrics(ctx);
      return rr;
    }
    if (route == Route::AdminModels) {
      // The operator: role 'manage' with governance, the --api-key holder without.
      if (g && key->role != "manage") {
        g->count_refusal("permission");
        rr.resp = error_response({403, "The admin API needs a key with role 'manage'.", error_type_for_status(403), "",
                                  "permission_denied"});
      } else if (!g && ctx.opts.api_key.empty()) {
        rr.resp = error_response({404, "Unknown route: " + req.method + " " + path +
                                           " (the admin API needs --state or --api-key).",
                                  "not_found_error", "", "unknown_route"});
      } else {
        rr.resp = models_admin_request(ctx.models(), req, path);
      }
      return rr;
    }
    if ((route == Route::Admin || route == Route::UsageMe) && !g) {
      rr.resp = error_response({404, "Unknown route: " + req.method + " " + path + " (governance is off: start the server with --state).",
                                "not_found_error", "", "unknown_route"});
      return rr;
    }
    if (route == Route::Admin) {
      if (key->role != "manage") {
        g->count_refusal("permission");
        rr.resp = error_response({403, "The admin API needs a key with role 'manage'.", error_type_for_status(403), "",
                                  "permission_denied"});
        return rr;
      }
      rr.resp = admin_request(*g, req, path);
      return rr;
    }
    if (route == Route::Batch) {
      if (!ctx.opts.batches) {
        rr.resp = error_response({404, "Unknown route: " + req.method + " " + path +
                                           " (the Batch API is off: start the server with --data-dir or a --state file).",
                                  "not_found_error", "", "unknown_route"});
        return rr;
      }
      rr.resp = batch_request(*ctx.opts.batches, req, path, key ? key->id : std::string());
      return rr;
    }
    if (route == Route::UsageMe) {
      try {
        rr.resp.body = g->usage_me_json(key->id);
      } catch (const std::exception& e) {
        rr.resp = error_response({503, std::string("The governance state store is unavailable: ") + e.what(),
                                  "service_unavailable_error", "", "state_unavailable"});
      }
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
    if (route == Route::Chat || route == Route::Completions) {
      GenInfo info;
      info.id = new_request_id(route == Route::Chat ? "chatcmpl-" : "cmpl-");
      RouteResult res = generation_guarded(ctx, req, route == Route::Chat, arrival, key.get(), info);
      if (g && key && !res.job) {  // refused before it ran: still one usage row
        gov::UsageRow row;
        row.request_id = info.id;
        row.ts_ms = gov::now_ms();
        row.key_id = key->id;
        row.model = info.model;
        row.status = res.resp.status;
        row.stream = info.stream;
        row.duration_ms = std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - arrival).count();
        g->record(std::move(row));
        res.id = info.id;
      }
      ctx.metrics.admission.observe(
          std::chrono::duration<double>(std::chrono::steady_clock::now() - t_route).count());
      return res;
    }
    switch (route) {
      case Route::Models:
        rr.resp = json_response(
            models_list_json(ctx.models(), [&key](const std::string& n) { return !key || key->allows_model(n); }));
        break;
      case Route::Model:
        if (key && !key->allows_model(model_id)) {
          g->count_refusal("permission");
          throw ApiException(ApiError{403, "This API key may not use model '" + model_id + "'.",
                                      error_type_for_status(403), "model", "permission_denied"});
        }
        if (std::optional<ModelStatus> st = ctx.models().status(model_id)) rr.resp = json_response(model_status_json(*st));
        else throw unknown_model(ctx.models(), model_id);
        break;
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
