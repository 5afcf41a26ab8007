// model_registry.h — the models one server serves: names, states, loading,
// unloading, the memory budget (LRU eviction) and split endpoints.
//
// The server does not know how a model is built: a Loader (given by the
// composition root, tools/model_host.h) turns a declared name into a started
// engine wrapped in a ModelInstance; dropping the last reference to the
// instance stops the engine and frees its memory (weights when no other
// served name maps the same file).
//
// States: unloaded -> loading -> loaded, or -> failed (with the loader's
// one-line error; a later load may retry). Loads run on their own threads,
// so no I/O thread waits for one. A request for an unloaded `autoload` model
// starts its load and is answered 503 + Retry-After until it is loaded.
//
// Memory budget (--models-memory-mb): each declared model carries an
// estimate (weights, counted once per distinct weights key, plus its KV
// cache). A load that would exceed the budget first unloads the least
// recently used loaded model that is not pinned and has no request in
// flight, as often as needed; if that is not enough the load fails.
//
// Requests hold a shared_ptr<ServedModel>: a model unloaded while requests
// run is stopped (its in-flight requests end with 503), and its memory is
// released once the last of them lets go.
#pragma once
#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <thread>
#include <vector>

#include "server/openai_schema.h"
#include "server/server_options.h"
#include "server/traffic_split.h"

namespace ms {

class StructuredRuntime;

// A loaded, started model as a loader hands it over. Its destructor stops
// the engine and releases what only it holds.
struct ModelInstance {
  virtual ~ModelInstance() = default;
  ServerBackend backend;
};

// A model declared to the registry.
struct ModelEntry {
  std::string name;
  bool autoload = true;          // a request for it while unloaded loads it
  bool pinned = false;           // never evicted for the memory budget
  bool preload = true;           // loaded at start-up
  std::string weights_key;       // equal keys share one mapping of the weights
  int64_t weights_bytes = 0;     // estimate, counted once per weights_key
  int64_t other_bytes = 0;       // KV cache and the like, per model
  std::vector<std::string> fallback;  // tried in order when this one cannot answer
};

enum class ModelState { Unloaded, Loading, Loaded, Failed };
const char* model_state_name(ModelState s);

// A model in use. Valid while held, even after an unload.
class ServedModel {
 public:
  ServedModel(std::string name, std::shared_ptr<ModelInstance> inst, size_t grammar_cache, size_t mask_cache);
  ~ServedModel();
  const std::string& name() const { return name_; }
  const ServerBackend& backend() const { return inst_->backend; }
  ModelLimits limits() const;
  StructuredRuntime* structured() const { return structured_.get(); }

 private:
  std::string name_;
  std::shared_ptr<ModelInstance> inst_;
  std::unique_ptr<StructuredRuntime> structured_;
};

struct ModelStatus {
  std::string name;
  ModelState state = ModelState::Unloaded;
  std::string error;             // why the last load failed (state failed)
  bool endpoint = false;         // a split endpoint, not a model
  bool autoload = false, pinned = false;
  int64_t created = 0;           // unix time of the last load (or of start-up)
  int64_t max_context = 0;       // when loaded
  int64_t memory_bytes = 0;      // the estimate the budget counts
};

class ModelRegistry {
 public:
  using Loader = std::function<std::shared_ptr<ModelInstance>(const std::string& name)>;
  struct Options {
    int64_t memory_budget_bytes = 0;  // 0: no budget
    size_t grammar_cache = 64;
    size_t grammar_mask_cache = 1024;
  };

  ModelRegistry(Options o, Loader loader);
  ~ModelRegistry();  // shutdown()
  ModelRegistry(const ModelRegistry&) = delete;
  ModelRegistry& operator=(const ModelRegistry&) = delete;

  // Declaration (before serving). The first model added is the default one
  // (requests without "model").
  void add_model(ModelEntry e);
  // An already-running backend: always loaded, never unloaded (the
  // single-model server and tests).
  void add_static(const std::string& name, const ServerBackend& b);
  void add_endpoint(EndpointSpec e);

  std::string default_name() const;
  bool is_model(const std::string& name) const;
  bool known(const std::string& name) const;  // model or endpoint
  std::vector<std::string> names() const;      // models then endpoints, declaration order

  // The models to try for a request naming `name` ("" = the default): an
  // endpoint's chosen route then its fallbacks, or the model then its
  // fallbacks. Empty when the name is unknown.
  std::vector<std::string> candidates(const std::string& name, const std::string& sticky_key) const;

  struct Resolution {
    enum Kind { Ok, Unknown, Loading, Unloaded, Failed } kind = Unknown;
    std::shared_ptr<ServedModel> model;
    std::string message;  // for everything but Ok
  };
  // The model if loaded (marking it used now). An unloaded or failed
  // autoload model starts loading (kind Loading).
  Resolution acquire(const std::string& name);
  // Any loaded model (metrics), or null.
  std::shared_ptr<ServedModel> any_loaded() const;
  // Every loaded model, in declaration order (metrics; not marked used).
  std::vector<std::shared_ptr<ServedModel>> loaded() const;

  // Starts a load in the background; returns the state after starting it
  // (loaded if it already was). Unknown name: nullopt.
  std::optional<ModelStatus> load_async(const std::string& name);
  // Loads on the calling thread; throws the loader's (or the budget's) error.
  void load_now(const std::string& name);
  // Waits (bounded) until the model is no longer loading.
  void wait_loaded(const std::string& name, std::chrono::milliseconds timeout);
  // Unloads; false with a reason when the name is unknown or static.
  bool unload(const std::string& name, std::string& why);

  std::vector<ModelStatus> list() const;
  std::optional<ModelStatus> status(const std::string& name) const;
  int64_t used_bytes() const;

  // Waits for loads in progress, then unloads every model.
  void shutdown();

 private:
  struct Entry {
    ModelEntry decl;
    bool is_static = false;
    ModelState state = ModelState::Unloaded;
    std::string error;
    std::shared_ptr<ServedModel> served;
    std::chrono::steady_clock::time_point last_used{};
    int64_t created = 0;
  };
  Entry* find(const std::string& name);
  const Entry* find(const std::string& name) const;
  ModelStatus status_of(const Entry& e) const;
  // Bytes the loaded/loading models take, with `plus` counted too and `minus` left out.
  int64_t footprint(const Entry* plus, const Entry* minus) const;
  // Under mu_: marks e loading and makes room; the evicted models are moved
  // to `evicted` (destroyed by the caller, outside the lock). False (and
  // state failed) when the budget cannot be met.
  bool begin_load(Entry& e, std::vector<std::shared_ptr<ServedModel>>& evicted);
  void run_load(const std::string& name);  // loader call + publish
  void start_thread(const std::string& name);

  const Options opts_;
  const Loader loader_;
  mutable std::mutex mu_;
  std::condition_variable cv_;  // a load finished
  std::vector<std::unique_ptr<Entry>> entries_;
  std::vector<EndpointSpec> endpoints_;
  struct LoadThread {
    std::thread thread;
    std::shared_ptr<std::atomic<bool>> done;
  };
  std::vector<LoadThread> threads_;  // finished ones are joined when the next starts
  bool shutting_down_ = false;
};

}  // namespace ms
