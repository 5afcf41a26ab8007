// ai_query.cpp — libmoeserve_sqlite.so, a SQLite loadable extension that
// queries a running moeserve server (or any OpenAI-compatible one) from SQL,
// with Databricks' ai_query signature (docs/BATCH.md):
//
//   ai_query(endpoint, request [, options_json])      scalar: the answer text
//   SELECT * FROM ai_query_batch(endpoint, requests_json_array [, options_json])
//       table: idx, request, response, error — every request sent concurrently
//   ai_query_config(name [, value])                   'url' | 'api_key' | 'concurrency' | 'timeout'
//
// endpoint: the model name. request: a prompt (sent as one user message to
// /v1/chat/completions), or a JSON object with "messages" (chat) or "prompt"
// (/v1/completions). options: {"modelParameters": {max_tokens, temperature,
// ...}, "responseFormat": "json_object" | {...}, "failOnError": true}. With
// failOnError true (default) an error aborts the statement with its message;
// false: the value is {"response": ..., "error": ...} (JSON text).
// URL and key: ai_query_config, else $MOESERVE_URL / $MOESERVE_API_KEY, else
// http://127.0.0.1:8080 and no key. HTTP with libcurl (curl multi for the batch).
#include <sqlite3ext.h>
SQLITE_EXTENSION_INIT1

#include <curl/curl.h>

#include <cstdlib>
#include <cstring>
#include <mutex>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

namespace {

using json = nlohmann::json;

struct Config {
  std::string url, api_key;
  long concurrency = 64;
  long timeout_s = 600;
};

std::mutex g_mu;
Config g_cfg;
bool g_cfg_init = false;

Config config() {
  std::lock_guard<std::mutex> lk(g_mu);
  if (!g_cfg_init) {
    g_cfg_init = true;
    const char* u = std::getenv("MOESERVE_URL");
    const char* k = std::getenv("MOESERVE_API_KEY");
    g_cfg.url = u && *u ? u : "http://127.0.0.1:8080";
    g_cfg.api_key = k ? k : "";
  }
  return g_cfg;
}

// A prepared call: the URL path and the body; `error` when it cannot be built.
struct Call {
  std::string path, body, error;
  bool chat = true;
};

struct Options {
  json params = json::object();
  json response_format;  // null: none
  bool fail_on_error = true;
  std::string error;
};

Options parse_options(const char* text) {
  Options o;
  if (!text) return o;
  json j = json::parse(text, nullptr, false);
  if (j.is_discarded() || !j.is_object()) {
    o.error = "ai_query: options must be a JSON object (modelParameters, responseFormat, failOnError)";
    return o;
  }
  for (auto& [k, v] : j.items()) {
    if (k == "modelParameters") {
      if (!v.is_object()) o.error = "ai_query: modelParameters must be a JSON object";
      else o.params = v;
    } else if (k == "responseFormat") {
      json rf = v;
      if (v.is_string()) {  // "json_object", "text", or a JSON object in a string
        json inner = json::parse(v.get<std::string>(), nullptr, false);
        rf = (!inner.is_discarded() && inner.is_object()) ? inner : json{{"type", v.get<std::string>()}};
      }
      if (!rf.is_object()) o.error = "ai_query: responseFormat must be a string or a JSON object";
      else if (!rf.contains("type")) o.response_format = json{{"type", "json_schema"}, {"json_schema", rf}};
      else o.response_format = rf;
    } else if (k == "failOnError") {
      if (!v.is_boolean()) o.error = "ai_query: failOnError must be true or false";
      else o.fail_on_error = v.get<bool>();
    } else {
      o.error = "ai_query: unknown option '" + k + "' (modelParameters, responseFormat, failOnError)";
    }
  }
  return o;
}

Call make_call(const std::string& endpoint, const std::string& request, const Options& o) {
  Call c;
  if (endpoint.empty()) {
    c.error = "ai_query: the endpoint (model name) is empty";
    return c;
  }
  json body = json::object();
  json r = request.empty() || request[0] != '{' ? json() : json::parse(request, nullptr, false);
  if (r.is_object() && (r.contains("messages") || r.contains("prompt"))) {
    body = r;
    c.chat = r.contains("messages");
  } else {
    body["messages"] = json::array({json{{"role", "user"}, {"content", request}}});
  }
  body["model"] = endpoint;
  for (auto& [k, v] : o.params.items()) body[k] = v;
  if (!o.response_format.is_null()) body["response_format"] = o.response_format;
  body["stream"] = false;
  c.path = c.chat ? "/v1/chat/completions" : "/v1/completions";
  c.body = body.dump(-1, ' ', false, json::error_handler_t::replace);
  return c;
}

struct Result {
  std::string response, error;
  bool ok = false;
};

// The answer text out of a response body, or the error it carries.
Result interpret(long status, const std::string& body, bool chat) {
  Result r;
  json j = json::parse(body, nullptr, false);
  if (status != 200) {
    std::string msg = "HTTP " + std::to_string(status);
    if (j.is_object() && j.contains("error") && j["error"].is_object() && j["error"].contains("message") &&
        j["error"]["message"].is_string())
      msg += ": " + j["error"]["message"].get<std::string>();
    r.error = "ai_query: " + msg;
    return r;
  }
  try {
    const json& c0 = j.at("choices").at(0);
    r.response = chat ? c0.at("message").at("content").get<std::string>() : c0.at("text").get<std::string>();
    r.ok = true;
  } catch (const std::exception&) {
    r.error = "ai_query: unexpected response from the server";
  }
  return r;
}

size_t on_data(char* p, size_t s, size_t n, void* ud) {
  static_cast<std::string*>(ud)->append(p, s * n);
  return s * n;
}

// Runs every call, at most cfg.concurrency at once (curl multi). Results in order.
std::vector<Result> run_all(const std::vector<Call>& calls, const Config& cfg) {
  std::vector<Result> out(calls.size());
  std::vector<std::string> bodies(calls.size());
  CURLM* multi = curl_multi_init();
  curl_multi_setopt(multi, CURLMOPT_MAX_TOTAL_CONNECTIONS, cfg.concurrency);
  curl_slist* headers = curl_slist_append(nullptr, "Content-Type: application/json");
  if (!cfg.api_key.empty()) headers = curl_slist_append(headers, ("Authorization: Bearer " + cfg.api_key).c_str());
  std::string base = cfg.url;
  while (!base.empty() && base.back() == '/') base.pop_back();
  if (base.size() >= 3 && base.compare(base.size() - 3, 3, "/v1") == 0) base.resize(base.size() - 3);
  std::vector<CURL*> easy(calls.size(), nullptr);
  size_t next = 0, running_n = 0;
  auto add = [&](size_t i) {
    CURL* e = curl_easy_init();
    easy[i] = e;
    curl_easy_setopt(e, CURLOPT_URL, (base + calls[i].path).c_str());
    curl_easy_setopt(e, CURLOPT_HTTPHEADER, headers);
    curl_easy_setopt(e, CURLOPT_POSTFIELDS, calls[i].body.c_str());
    curl_easy_setopt(e, CURLOPT_POSTFIELDSIZE, static_cast<long>(calls[i].body.size()));
    curl_easy_setopt(e, CURLOPT_WRITEFUNCTION, on_data);
    curl_easy_setopt(e, CURLOPT_WRITEDATA, &bodies[i]);
    curl_easy_setopt(e, CURLOPT_TIMEOUT, cfg.timeout_s);
    curl_easy_setopt(e, CURLOPT_CONNECTTIMEOUT, 10L);
    curl_easy_setopt(e, CURLOPT_NOSIGNAL, 1L);
    curl_easy_setopt(e, CURLOPT_PRIVATE, reinterpret_cast<char*>(i));
    curl_multi_add_handle(multi, e);
    ++running_n;
  };
  auto fill = [&] {
    while (next < calls.size() && running_n < static_cast<size_t>(cfg.concurrency)) {
      if (!calls[next].error.empty()) {
        out[next].error = calls[next].error;
        ++next;
        continue;
      }
      add(next++);
    }
  };
  fill();
  while (running_n > 0) {
    int still = 0;
    curl_multi_perform(multi, &still);
    int q = 0;
    while (CURLMsg* m = curl_multi_info_read(multi, &q)) {
      if (m->msg != CURLMSG_DONE) continue;
      char* priv = nullptr;
      curl_easy_getinfo(m->easy_handle, CURLINFO_PRIVATE, &priv);
      const size_t i = reinterpret_cast<size_t>(priv);
      if (m->data.result != CURLE_OK) {
        out[i].error = "ai_query: cannot reach " + base + ": " + curl_easy_strerror(m->data.result);
      } else {
        long status = 0;
        curl_easy_getinfo(m->easy_handle, CURLINFO_RESPONSE_CODE, &status);
        out[i] = interpret(status, bodies[i], calls[i].chat);
      }
      curl_multi_remove_handle(multi, m->easy_handle);
      curl_easy_cleanup(m->easy_handle);
      --running_n;
    }
    fill();
    if (running_n > 0) curl_multi_poll(multi, nullptr, 0, 100, nullptr);
  }
  curl_slist_free_all(headers);
  curl_multi_cleanup(multi);
  return out;
}

std::string as_text(sqlite3_value* v) {
  const unsigned char* t = sqlite3_value_text(v);
  return t ? std::string(reinterpret_cast<const char*>(t), sqlite3_value_bytes(v)) : std::string();
}

std::string result_json(const Result& r) {
  return json{{"response", r.ok ? json(r.response) : json(nullptr)}, {"error", r.ok ? json(nullptr) : json(r.error)}}
      .dump(-1, ' ', false, json::error_handler_t::replace);
}

// ---- scalar functions -------------------------------------------------------

void ai_query_fn(sqlite3_context* ctx, int argc, sqlite3_value** argv) {
  if (sqlite3_value_type(argv[0]) == SQLITE_NULL || sqlite3_value_type(argv[1]) == SQLITE_NULL) {
    sqlite3_result_null(ctx);
    return;
  }
  Options o = parse_options(argc > 2 ? reinterpret_cast<const char*>(sqlite3_value_text(argv[2])) : nullptr);
  if (!o.error.empty()) return sqlite3_result_error(ctx, o.error.c_str(), -1);
  Call c = make_call(as_text(argv[0]), as_text(argv[1]), o);
  Result r = run_all({c}, config())[0];
  if (!o.fail_on_error) {
    std::string s = result_json(r);
    return sqlite3_result_text(ctx, s.c_str(), static_cast<int>(s.size()), SQLITE_TRANSIENT);
  }
  if (!r.ok) return sqlite3_result_error(ctx, r.error.c_str(), -1);
  sqlite3_result_text(ctx, r.response.c_str(), static_cast<int>(r.response.size()), SQLITE_TRANSIENT);
}

void ai_query_config_fn(sqlite3_context* ctx, int argc, sqlite3_value** argv) {
  const std::string name = as_text(argv[0]);
  config();  // read the environment first
  std::lock_guard<std::mutex> lk(g_mu);
  if (argc > 1) {
    const std::string v = as_text(argv[1]);
    if (name == "url") g_cfg.url = v;
    else if (name == "api_key") g_cfg.api_key = v;
    else if (name == "concurrency" || name == "timeout") {
      long n = std::strtol(v.c_str(), nullptr, 10);
      if (n < 1 || n > (name == "concurrency" ? 1024 : 86400))
        return sqlite3_result_error(ctx, ("ai_query_config: bad " + name + " '" + v + "'").c_str(), -1);
      (name == "concurrency" ? g_cfg.concurrency : g_cfg.timeout_s) = n;
    } else {
      return sqlite3_result_error(ctx, ("ai_query_config: unknown setting '" + name + "' (url, api_key, concurrency, timeout)").c_str(), -1);
    }
  }
  std::string v = name == "url" ? g_cfg.url
                  : name == "api_key" ? (g_cfg.api_key.empty() ? "" : "(set)")
                  : name == "concurrency" ? std::to_string(g_cfg.concurrency)
                  : name == "timeout" ? std::to_string(g_cfg.timeout_s) : "";
  if (argc == 1 && v.empty() && name != "api_key")
    return sqlite3_result_error(ctx, ("ai_query_config: unknown setting '" + name + "'").c_str(), -1);
  sqlite3_result_text(ctx, v.c_str(), static_cast<int>(v.size()), SQLITE_TRANSIENT);
}

// ---- ai_query_batch: an eponymous table-valued function --------------------

enum Col { kIdx, kRequest, kResponse, kError, kArgEndpoint, kArgRequests, kArgOptions };

struct BatchVtab {
  sqlite3_vtab base;
};
struct BatchCursor {
  sqlite3_vtab_cursor base;
  std::vector<std::string> requests;
  std::vector<Result> results;
  size_t row = 0;
};

int b_connect(sqlite3* db, void*, int, const char* const*, sqlite3_vtab** out, char**) {
  int rc = sqlite3_declare_vtab(db,
                                "CREATE TABLE x(idx INTEGER, request TEXT, response TEXT, error TEXT, "
                                "endpoint HIDDEN, requests HIDDEN, options HIDDEN)");
  if (rc != SQLITE_OK) return rc;
  auto* v = static_cast<BatchVtab*>(sqlite3_malloc(sizeof(BatchVtab)));
  if (!v) return SQLITE_NOMEM;
  std::memset(v, 0, sizeof(*v));
  *out = &v->base;
  return SQLITE_OK;
}

int b_disconnect(sqlite3_vtab* v) {
  sqlite3_free(v);
  return SQLITE_OK;
}

int b_best_index(sqlite3_vtab*, sqlite3_index_info* info) {
  int pos[3] = {-1, -1, -1};
  for (int i = 0; i < info->nConstraint; ++i) {
    const auto& c = info->aConstraint[i];
    if (c.iColumn < kArgEndpoint || c.op != SQLITE_INDEX_CONSTRAINT_EQ) continue;
    if (!c.usable) return SQLITE_CONSTRAINT;
    pos[c.iColumn - kArgEndpoint] = i;
  }
  if (pos[0] < 0 || pos[1] < 0) return SQLITE_CONSTRAINT;  // endpoint and requests are required
  int argn = 1, mask = 0;
  for (int k = 0; k < 3; ++k) {
    if (pos[k] < 0) continue;
    info->aConstraintUsage[pos[k]].argvIndex = argn++;
    info->aConstraintUsage[pos[k]].omit = 1;
    mask |= 1 << k;
  }
  info->idxNum = mask;
  info->estimatedCost = 1000;
  return SQLITE_OK;
}

int b_open(sqlite3_vtab*, sqlite3_vtab_cursor** out) {
  auto* c = new (std::nothrow) BatchCursor();
  if (!c) return SQLITE_NOMEM;
  *out = &c->base;
  return SQLITE_OK;
}

int b_close(sqlite3_vtab_cursor* cur) {
  delete reinterpret_cast<BatchCursor*>(cur);
  return SQLITE_OK;
}

int set_error(sqlite3_vtab_cursor* cur, const std::string& msg) {
  sqlite3_free(cur->pVtab->zErrMsg);
  cur->pVtab->zErrMsg = sqlite3_mprintf("%s", msg.c_str());
  return SQLITE_ERROR;
}

int b_filter(sqlite3_vtab_cursor* cur, int idx_num, const char*, int argc, sqlite3_value** argv) {
  auto* c = reinterpret_cast<BatchCursor*>(cur);
  c->requests.clear();
  c->results.clear();
  c->row = 0;
  if (argc < 2) return set_error(cur, "ai_query_batch(endpoint, requests_json_array [, options])");
  const std::string endpoint = as_text(argv[0]);
  json arr = json::parse(as_text(argv[1]), nullptr, false);
  if (arr.is_discarded() || !arr.is_array())
    return set_error(cur, "ai_query_batch: requests must be a JSON array (e.g. json_group_array(prompt))");
  Options o = parse_options((idx_num & 4) && argc > 2 ? reinterpret_cast<const char*>(sqlite3_value_text(argv[2])) : nullptr);
  if (!o.error.empty()) return set_error(cur, o.error);
  std::vector<Call> calls;
  for (const json& r : arr) {
    std::string s = r.is_string() ? r.get<std::string>() : r.dump();
    calls.push_back(make_call(endpoint, s, o));
    c->requests.push_back(std::move(s));
  }
  c->results = run_all(calls, config());
  if (o.fail_on_error)
    for (const Result& r : c->results)
      if (!r.ok) return set_error(cur, r.error);
  return SQLITE_OK;
}

int b_next(sqlite3_vtab_cursor* cur) {
  reinterpret_cast<BatchCursor*>(cur)->row++;
  return SQLITE_OK;
}

int b_eof(sqlite3_vtab_cursor* cur) {
  auto* c = reinterpret_cast<BatchCursor*>(cur);
  return c->row >= c->results.size();
}

int b_column(sqlite3_vtab_cursor* cur, sqlite3_context* ctx, int col) {
  auto* c = reinterpret_cast<BatchCursor*>(cur);
  const Result& r = c->results[c->row];
  auto text = [&](const std::string& s) { sqlite3_result_text(ctx, s.c_str(), static_cast<int>(s.size()), SQLITE_TRANSIENT); };
  switch (col) {
    case kIdx: sqlite3_result_int64(ctx, static_cast<sqlite3_int64>(c->row)); break;
    case kRequest: text(c->requests[c->row]); break;
    case kResponse: r.ok ? text(r.response) : sqlite3_result_null(ctx); break;
    case kError: r.ok ? sqlite3_result_null(ctx) : text(r.error); break;
    default: sqlite3_result_null(ctx); break;
  }
  return SQLITE_OK;
}

int b_rowid(sqlite3_vtab_cursor* cur, sqlite3_int64* rowid) {
  *rowid = static_cast<sqlite3_int64>(reinterpret_cast<BatchCursor*>(cur)->row);
  return SQLITE_OK;
}

sqlite3_module g_batch_module = {
    0,          b_connect, b_connect, b_best_index, b_disconnect, b_disconnect, b_open, b_close, b_filter,
    b_next,     b_eof,     b_column,  b_rowid,      nullptr,      nullptr,      nullptr, nullptr, nullptr,
    nullptr,    nullptr,   nullptr,   nullptr,      nullptr,      nullptr};

int init(sqlite3* db, char** err, const sqlite3_api_routines* api) {
  SQLITE_EXTENSION_INIT2(api);
  static std::once_flag once;
  std::call_once(once, [] { curl_global_init(CURL_GLOBAL_DEFAULT); });
  const int flags = SQLITE_UTF8;
  int rc = sqlite3_create_function(db, "ai_query", 2, flags, nullptr, ai_query_fn, nullptr, nullptr);
  if (rc == SQLITE_OK) rc = sqlite3_create_function(db, "ai_query", 3, flags, nullptr, ai_query_fn, nullptr, nullptr);
  if (rc == SQLITE_OK)
    rc = sqlite3_create_function(db, "ai_query_config", 1, flags, nullptr, ai_query_config_fn, nullptr, nullptr);
  if (rc == SQLITE_OK)
    rc = sqlite3_create_function(db, "ai_query_config", 2, flags, nullptr, ai_query_config_fn, nullptr, nullptr);
  if (rc == SQLITE_OK) rc = sqlite3_create_module(db, "ai_query_batch", &g_batch_module, nullptr);
  if (rc != SQLITE_OK && err) *err = sqlite3_mprintf("moeserve_sqlite: cannot register the functions");
  return rc;
}

}  // namespace

// The entry point SQLite derives from "libmoeserve_sqlite.so" (letters only,
// "lib" dropped), and the explicit one.
extern "C" __attribute__((visibility("default"))) int sqlite3_moeservesqlite_init(sqlite3* db, char** err,
                                                                                  const sqlite3_api_routines* api) {
  return init(db, err, api);
}
extern "C" __attribute__((visibility("default"))) int sqlite3_moeserve_sqlite_init(sqlite3* db, char** err,
                                                                                   const sqlite3_api_routines* api) {
  return init(db, err, api);
}
