// model_registry.cpp — served models, their states and the memory budget (see model_registry.h).
#include "server/model_registry.h"

#include <algorithm>
#include <cstdio>
#include <ctime>
#include <set>

#include "core/error.h"
#include "server/structured_request.h"
#include "tokenizer/tokenizer.h"

namespace ms {

const char* model_state_name(ModelState s) {
  switch (s) {
    case ModelState::Unloaded: return "unloaded";
    case ModelState::Loading: return "loading";
    case ModelState::Loaded: return "loaded";
    case ModelState::Failed: return "failed";
  }
  return "unloaded";
}

ServedModel::ServedModel(std::string name, std::shared_ptr<ModelInstance> inst, size_t grammar_cache, size_t mask_cache)
    : name_(std::move(name)), inst_(std::move(inst)) {
  if (inst_->backend.tokenizer)
    structured_ = std::make_unique<StructuredRuntime>(*inst_->backend.tokenizer, grammar_cache, mask_cache);
}

ServedModel::~ServedModel() = default;

ModelLimits ServedModel::limits() const {
  ModelLimits l;
  l.vocab_size = backend().tokenizer ? backend().tokenizer->vocab_size() : backend().vocab_size;
  l.max_context = backend().max_context;
  return l;
}

namespace {
int64_t unix_now() { return static_cast<int64_t>(std::time(nullptr)); }
std::string mib(int64_t b) { return std::to_string((b + (1 << 20) - 1) >> 20) + " MiB"; }
}  // namespace

ModelRegistry::ModelRegistry(Options o, Loader loader) : opts_(o), loader_(std::move(loader)) {}

ModelRegistry::~ModelRegistry() { shutdown(); }

void ModelRegistry::add_model(ModelEntry e) {
  std::lock_guard<std::mutex> lk(mu_);
  auto en = std::make_unique<Entry>();
  en->decl = std::move(e);
  entries_.push_back(std::move(en));
}

void ModelRegistry::add_static(const std::string& name, const ServerBackend& b) {
  auto inst = std::make_shared<ModelInstance>();
  inst->backend = b;
  auto en = std::make_unique<Entry>();
  en->decl.name = name;
  en->decl.pinned = true;
  en->decl.autoload = false;
  en->is_static = true;
  en->state = ModelState::Loaded;
  en->created = unix_now();
  en->served = std::make_shared<ServedModel>(name, std::move(inst), opts_.grammar_cache, opts_.grammar_mask_cache);
  std::lock_guard<std::mutex> lk(mu_);
  entries_.push_back(std::move(en));
}

void ModelRegistry::add_endpoint(EndpointSpec e) {
  std::lock_guard<std::mutex> lk(mu_);
  endpoints_.push_back(std::move(e));
}

ModelRegistry::Entry* ModelRegistry::find(const std::string& name) {
  for (auto& e : entries_)
    if (e->decl.name == name) return e.get();
  return nullptr;
}
const ModelRegistry::Entry* ModelRegistry::find(const std::string& name) const {
  for (const auto& e : entries_)
    if (e->decl.name == name) return e.get();
  return nullptr;
}

std::string ModelRegistry::default_name() const {
  std::lock_guard<std::mutex> lk(mu_);
  if (!entries_.empty()) return entries_.front()->decl.name;
  return endpoints_.empty() ? std::string() : endpoints_.front().name;
}

bool ModelRegistry::is_model(const std::string& name) const {
  std::lock_guard<std::mutex> lk(mu_);
  return find(name) != nullptr;
}

bool ModelRegistry::known(const std::string& name) const {
  std::lock_guard<std::mutex> lk(mu_);
  if (find(name)) return true;
  for (const auto& ep : endpoints_)
    if (ep.name == name) return true;
  return false;
}

std::vector<std::string> ModelRegistry::names() const {
  std::lock_guard<std::mutex> lk(mu_);
  std::vector<std::string> out;
  for (const auto& e : entries_) out.push_back(e->decl.name);
  for (const auto& ep : endpoints_) out.push_back(ep.name);
  return out;
}

std::vector<std::string> ModelRegistry::candidates(const std::string& name_in, const std::string& sticky_key) const {
  std::lock_guard<std::mutex> lk(mu_);
  std::string name = name_in;
  if (name.empty()) {
    if (!entries_.empty()) name = entries_.front()->decl.name;
    else if (!endpoints_.empty()) name = endpoints_.front().name;
  }
  for (const auto& ep : endpoints_)
    if (ep.name == name) return endpoint_candidates(ep, sticky_key);
  const Entry* e = find(name);
  if (!e) return {};
  std::vector<std::string> out{name};
  for (const auto& f : e->decl.fallback)
    if (std::find(out.begin(), out.end(), f) == out.end()) out.push_back(f);
  return out;
}

ModelRegistry::Resolution ModelRegistry::acquire(const std::string& name) {
  Resolution r;
  bool start = false;
  {
    std::lock_guard<std::mutex> lk(mu_);
    Entry* e = find(name);
    if (!e) {
      r.kind = Resolution::Unknown;
      r.message = "The model '" + name + "' does not exist.";
      return r;
    }
    switch (e->state) {
      case ModelState::Loaded:
        e->last_used = std::chrono::steady_clock::now();
        r.kind = Resolution::Ok;
        r.model = e->served;
        return r;
      case ModelState::Loading:
        r.kind = Resolution::Loading;
        r.message = "The model '" + name + "' is loading; retry shortly.";
        return r;
      case ModelState::Unloaded:
      case ModelState::Failed:
        if (!e->decl.autoload || shutting_down_) {
          r.kind = e->state == ModelState::Failed ? Resolution::Failed : Resolution::Unloaded;
          r.message = e->state == ModelState::Failed
                          ? "The model '" + name + "' failed to load: " + e->error
                          : "The model '" + name + "' is not loaded (load it with POST /admin/v1/models/" + name + "/load).";
          return r;
        }
        e->state = ModelState::Loading;
        e->error.clear();
        start = true;
        r.kind = Resolution::Loading;
        r.message = "The model '" + name + "' is being loaded; retry shortly.";
        break;
    }
  }
  if (start) start_thread(name);
  return r;
}

std::shared_ptr<ServedModel> ModelRegistry::any_loaded() const {
  std::lock_guard<std::mutex> lk(mu_);
  for (const auto& e : entries_)
    if (e->state == ModelState::Loaded) return e->served;
  return nullptr;
}

std::vector<std::shared_ptr<ServedModel>> ModelRegistry::loaded() const {
  std::lock_guard<std::mutex> lk(mu_);
  std::vector<std::shared_ptr<ServedModel>> out;
  for (const auto& e : entries_)
    if (e->state == ModelState::Loaded && e->served) out.push_back(e->served);
  return out;
}

int64_t ModelRegistry::footprint(const Entry* plus, const Entry* minus) const {
  std::set<std::string> keys;
  int64_t total = 0;
  for (const auto& e : entries_) {
    const bool counted = e.get() == plus || (e.get() != minus && !e->is_static &&
                                             (e->state == ModelState::Loaded || e->state == ModelState::Loading));
    if (!counted || e->is_static) continue;
    total += e->decl.other_bytes;
    const std::string& k = e->decl.weights_key.empty() ? e->decl.name : e->decl.weights_key;
    if (keys.insert(k).second) total += e->decl.weights_bytes;
  }
  return total;
}

int64_t ModelRegistry::used_bytes() const {
  std::lock_guard<std::mutex> lk(mu_);
  return footprint(nullptr, nullptr);
}

bool ModelRegistry::begin_load(Entry& e, std::vector<std::shared_ptr<ServedModel>>& evicted) {
  e.state = ModelState::Loading;
  e.error.clear();
  const int64_t budget = opts_.memory_budget_bytes;
  if (budget <= 0) return true;
  while (footprint(&e, nullptr) > budget) {
    Entry* victim = nullptr;
    for (auto& c : entries_) {
      Entry* x = c.get();
      if (x == &e || x->is_static || x->decl.pinned || x->state != ModelState::Loaded) continue;
      if (x->served.use_count() > 1) continue;  // requests in flight
      if (!victim || x->last_used < victim->last_used) victim = x;
    }
    if (!victim) {
      e.state = ModelState::Failed;
      e.error = "the memory budget (--models-memory-mb, " + mib(budget) + ") cannot hold it: it needs " +
                mib(footprint(&e, nullptr) - footprint(nullptr, &e)) + " and " + mib(footprint(nullptr, &e)) +
                " are held by pinned or busy models";
      return false;
    }
    std::fprintf(stderr, "moeserve: unloading '%s' (least recently used) to make room for '%s'\n",
                 victim->decl.name.c_str(), e.decl.name.c_str());
    evicted.push_back(std::move(victim->served));
    victim->served.reset();
    victim->state = ModelState::Unloaded;
  }
  return true;
}

void ModelRegistry::run_load(const std::string& name) {
  std::vector<std::shared_ptr<ServedModel>> evicted;
  {
    std::lock_guard<std::mutex> lk(mu_);
    Entry* e = find(name);
    if (!e) return;
    if (!begin_load(*e, evicted)) {
      std::fprintf(stderr, "moeserve: cannot load '%s': %s\n", name.c_str(), e->error.c_str());
      cv_.notify_all();
      return;
    }
  }
  for (auto& m : evicted)
    if (m && m->backend().engine) m->backend().engine->stop();  // nothing in flight: none held it
  evicted.clear();
  std::shared_ptr<ModelInstance> inst;
  std::string error;
  try {
    inst = loader_(name);
    if (!inst) error = "the loader returned nothing";
  } catch (const std::exception& ex) {
    error = ex.what();
  }
  std::shared_ptr<ServedModel> served;
  if (inst) {
    try {
      served = std::make_shared<ServedModel>(name, std::move(inst), opts_.grammar_cache, opts_.grammar_mask_cache);
    } catch (const std::exception& ex) {
      error = ex.what();
    }
  }
  std::lock_guard<std::mutex> lk(mu_);
  Entry* e = find(name);
  if (served && !shutting_down_) {
    e->served = std::move(served);
    e->state = ModelState::Loaded;
    e->created = unix_now();
    e->last_used = std::chrono::steady_clock::now();
    std::fprintf(stderr, "moeserve: loaded '%s'\n", name.c_str());
  } else {
    e->state = served ? ModelState::Unloaded : ModelState::Failed;
    e->error = served ? std::string() : error;
    if (!served) std::fprintf(stderr, "moeserve: cannot load '%s': %s\n", name.c_str(), error.c_str());
  }
  cv_.notify_all();
}

void ModelRegistry::start_thread(const std::string& name) {
  std::vector<LoadThread> finished;
  {
    std::lock_guard<std::mutex> lk(mu_);
    for (auto it = threads_.begin(); it != threads_.end();) {
      if (it->done->load()) {
        finished.push_back(std::move(*it));
        it = threads_.erase(it);
      } else {
        ++it;
      }
    }
    auto done = std::make_shared<std::atomic<bool>>(false);
    threads_.push_back({std::thread([this, name, done] {
                          run_load(name);
                          done->store(true);
                        }),
                        done});
  }
  for (auto& t : finished) t.thread.join();
}

std::optional<ModelStatus> ModelRegistry::load_async(const std::string& name) {
  {
    std::lock_guard<std::mutex> lk(mu_);
    Entry* e = find(name);
    if (!e) return std::nullopt;
    if (e->state == ModelState::Loaded || e->state == ModelState::Loading || shutting_down_) return status_of(*e);
    e->state = ModelState::Loading;
    e->error.clear();
  }
  start_thread(name);
  return status(name);
}

void ModelRegistry::load_now(const std::string& name) {
  {
    std::lock_guard<std::mutex> lk(mu_);
    Entry* e = find(name);
    if (!e) bad_input("unknown model '" + name + "'");
    if (e->state == ModelState::Loaded) return;
    e->state = ModelState::Loading;
  }
  run_load(name);
  std::lock_guard<std::mutex> lk(mu_);
  const Entry* e = find(name);
  if (e->state != ModelState::Loaded) bad_input("model '" + name + "': " + e->error);
}

void ModelRegistry::wait_loaded(const std::string& name, std::chrono::milliseconds timeout) {
  std::unique_lock<std::mutex> lk(mu_);
  cv_.wait_for(lk, timeout, [&] {
    const Entry* e = find(name);
    return !e || e->state != ModelState::Loading;
  });
}

bool ModelRegistry::unload(const std::string& name, std::string& why) {
  std::shared_ptr<ServedModel> gone;
  {
    std::lock_guard<std::mutex> lk(mu_);
    Entry* e = find(name);
    if (!e) {
      why = "The model '" + name + "' does not exist.";
      return false;
    }
    if (e->is_static) {
      why = "The model '" + name + "' cannot be unloaded (it was not declared with a loader).";
      return false;
    }
    if (e->state == ModelState::Loading) {
      why = "The model '" + name + "' is loading; unload it once it is loaded.";
      return false;
    }
    gone = std::move(e->served);
    e->served.reset();
    e->state = ModelState::Unloaded;
    e->error.clear();
  }
  // Its in-flight requests end now (503); the memory goes with the last holder.
  if (gone && gone->backend().engine) gone->backend().engine->stop();
  gone.reset();
  std::fprintf(stderr, "moeserve: unloaded '%s'\n", name.c_str());
  return true;
}

ModelStatus ModelRegistry::status_of(const Entry& e) const {
  ModelStatus s;
  s.name = e.decl.name;
  s.state = e.state;
  s.error = e.error;
  s.autoload = e.decl.autoload;
  s.pinned = e.decl.pinned;
  s.created = e.created;
  s.max_context = e.served ? e.served->backend().max_context : 0;
  s.memory_bytes = e.is_static ? 0 : e.decl.weights_bytes + e.decl.other_bytes;
  return s;
}

std::vector<ModelStatus> ModelRegistry::list() const {
  std::lock_guard<std::mutex> lk(mu_);
  std::vector<ModelStatus> out;
  for (const auto& e : entries_) out.push_back(status_of(*e));
  for (const auto& ep : endpoints_) {
    ModelStatus s;
    s.name = ep.name;
    s.endpoint = true;
    // An endpoint is as loaded as the best of its routes and fallbacks.
    s.state = ModelState::Unloaded;
    auto consider = [&](const std::string& m) {
      const Entry* e = find(m);
      if (!e) return;
      if (e->state == ModelState::Loaded) s.state = ModelState::Loaded;
      else if (e->state == ModelState::Loading && s.state != ModelState::Loaded) s.state = ModelState::Loading;
      if (e->served) s.max_context = std::max(s.max_context, e->served->backend().max_context);
      s.created = std::max(s.created, e->created);
    };
    for (const auto& r : ep.routes) consider(r.model);
    for (const auto& f : ep.fallback) consider(f);
    out.push_back(s);
  }
  return out;
}

std::optional<ModelStatus> ModelRegistry::status(const std::string& name) const {
  for (ModelStatus& s : list())
    if (s.name == name) return s;
  return std::nullopt;
}

void ModelRegistry::shutdown() {
  std::vector<LoadThread> threads;
  {
    std::lock_guard<std::mutex> lk(mu_);
    shutting_down_ = true;
  }
  // Load threads may start more threads only before shutting_down_ was set.
  for (;;) {
    {
      std::lock_guard<std::mutex> lk(mu_);
      threads.swap(threads_);
    }
    if (threads.empty()) break;
    for (auto& t : threads) t.thread.join();
    threads.clear();
  }
  std::vector<std::shared_ptr<ServedModel>> all;
  {
    std::lock_guard<std::mutex> lk(mu_);
    for (auto& e : entries_) {
      if (e->served && !e->is_static) {
        all.push_back(std::move(e->served));
        e->served.reset();
        e->state = ModelState::Unloaded;
      }
    }
  }
  for (auto& m : all)
    if (m->backend().engine) m->backend().engine->stop();
}

}  // namespace ms
