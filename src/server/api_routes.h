// api_routes.h — the HTTP API: one function from a complete request to a
// complete response, or to a GenerationJob for the connection to drive.
//
//   GET  /health                200 ready | 503 loading or stopping
//   GET  /metrics               Prometheus text
//   GET  /v1/models[/{id}]
//   POST /v1/chat/completions, /v1/completions   (-> GenerationJob)
//   POST /tokenize, /detokenize (vLLM-style; also under /v1/)
//   GET  /, /playground[/*]     the playground page (static_routes.h; unless --no-playground)
//   GET  /v1/usage/me, /admin/v1/...   with governance (--state; admin_routes.h)
//   /v1/files, /v1/batches      the Batch API, when on (batch_routes.h)
//
// With governance, the key check is the Governor's (401/503), the model is
// checked against the key's grants (403), and chat/completions are admitted
// against the rate limits (429) before a job exists; every generation that
// got past authentication leaves one usage row.
// Order of checks: route (404), method (405), API key (401, all but /health
// and /metrics), readiness (503), then the body. Every failure carries the
// OpenAI error object. Runs on an I/O thread; does not block.
#pragma once
#include <chrono>
#include <memory>
#include <optional>
#include <string>

#include "server/api_context.h"
#include "server/generation_job.h"
#include "server/http_types.h"

namespace ms {

namespace gov {
struct KeyRecord;
}

struct RouteResult {
  HttpResp resp;                       // the answer when there is no job
  std::shared_ptr<GenerationJob> job;  // a generation to start and stream
  std::string id;                      // request id for the log ("" if none)
};

RouteResult route_request(ApiContext& ctx, const HttpReq& req, std::chrono::steady_clock::time_point arrival);

// For a body the route would stream to disk (a file upload): the answer
// that refuses the caller's key before any of the body is read (401/403, as
// route_request would give it), or nullopt.
std::optional<HttpResp> refuse_before_body(const ApiContext& ctx, const std::string& authorization);

// A Batch API line (server/batch_executor.h): POST `url` with `body` as
// `key` (null: no governance), with no connection: the job (or, refused, the
// response) of an online request, run at Priority::Batch, never streamed,
// not charged to the rate limits, its usage row marked usage_context "batch".
// `line_ref` (BATCH-LINE): the request id is cmpl-/chatcmpl- + it, so the
// line has one usage row however often it runs.
RouteResult batch_line_job(ApiContext& ctx, const std::string& url, const std::string& body,
                           const gov::KeyRecord* key, const std::string& line_ref);

// A response carrying an OpenAI error body (and Retry-After for 429/503).
HttpResp error_response(const ApiError& e);

}  // namespace ms
