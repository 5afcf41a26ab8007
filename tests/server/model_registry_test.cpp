// ModelRegistry with a fake loader: states, autoload, failed loads, the
// memory budget's LRU eviction (pinned and busy models stay, shared weights
// count once); and the traffic splitter's route choice.
#include "server/model_registry.h"

#include <gtest/gtest.h>

#include <atomic>
#include <chrono>
#include <map>
#include <stdexcept>

#include "server/traffic_split.h"

namespace ms {
namespace {

using namespace std::chrono_literals;

struct Fake {
  std::atomic<int> loads{0};
  std::map<std::string, bool> fail;
  ModelRegistry::Loader loader() {
    return [this](const std::string& name) -> std::shared_ptr<ModelInstance> {
      ++loads;
      if (fail.count(name) && fail[name]) throw std::runtime_error("cannot open weights of " + name);
      auto inst = std::make_shared<ModelInstance>();
      inst->backend.max_context = 128;
      return inst;
    };
  }
};

ModelEntry entry(const std::string& name, int64_t bytes, bool autoload = true, bool pinned = false,
                 const std::string& key = "") {
  ModelEntry e;
  e.name = name;
  e.autoload = autoload;
  e.pinned = pinned;
  e.weights_key = key.empty() ? name : key;
  e.weights_bytes = bytes;
  return e;
}

ModelState state(const ModelRegistry& r, const std::string& n) { return r.status(n)->state; }

TEST(ModelRegistry, StatesAutoloadAndUnknown) {
  Fake f;
  ModelRegistry reg({}, f.loader());
  reg.add_model(entry("a", 10));
  reg.add_model(entry("b", 10, /*autoload=*/false));
  EXPECT_EQ(reg.default_name(), "a");
  EXPECT_EQ(reg.acquire("zzz").kind, ModelRegistry::Resolution::Unknown);
  EXPECT_TRUE(reg.candidates("zzz", "").empty());
  EXPECT_EQ(state(reg, "a"), ModelState::Unloaded);
  // An autoload model: the first request starts the load and is told to retry.
  EXPECT_EQ(reg.acquire("a").kind, ModelRegistry::Resolution::Loading);
  reg.wait_loaded("a", 5s);
  EXPECT_EQ(state(reg, "a"), ModelState::Loaded);
  ModelRegistry::Resolution ok = reg.acquire("a");
  ASSERT_EQ(ok.kind, ModelRegistry::Resolution::Ok);
  EXPECT_EQ(ok.model->limits().max_context, 128);
  // Not autoload: stays unloaded until loaded explicitly.
  EXPECT_EQ(reg.acquire("b").kind, ModelRegistry::Resolution::Unloaded);
  EXPECT_EQ(state(reg, "b"), ModelState::Unloaded);
  reg.load_now("b");
  EXPECT_EQ(reg.acquire("b").kind, ModelRegistry::Resolution::Ok);
  std::string why;
  EXPECT_TRUE(reg.unload("b", why));
  EXPECT_EQ(state(reg, "b"), ModelState::Unloaded);
  EXPECT_FALSE(reg.unload("nope", why));
  EXPECT_EQ(f.loads.load(), 2);
}

TEST(ModelRegistry, FailedLoadLeavesOthersServing) {
  Fake f;
  f.fail["bad"] = true;
  ModelRegistry reg({}, f.loader());
  reg.add_model(entry("good", 10));
  reg.add_model(entry("bad", 10));
  reg.load_now("good");
  EXPECT_THROW(reg.load_now("bad"), std::exception);
  auto s = reg.status("bad");
  EXPECT_EQ(s->state, ModelState::Failed);
  EXPECT_NE(s->error.find("cannot open weights of bad"), std::string::npos);
  EXPECT_EQ(reg.acquire("good").kind, ModelRegistry::Resolution::Ok);
  // A retry after the cause is fixed succeeds.
  f.fail["bad"] = false;
  reg.load_async("bad");
  reg.wait_loaded("bad", 5s);
  EXPECT_EQ(state(reg, "bad"), ModelState::Loaded);
}

TEST(ModelRegistry, BudgetEvictsLeastRecentlyUsedUnpinnedIdle) {
  Fake f;
  ModelRegistry::Options o;
  o.memory_budget_bytes = 250;
  ModelRegistry reg(o, f.loader());
  reg.add_model(entry("pin", 100, true, /*pinned=*/true));
  reg.add_model(entry("x", 100));
  reg.add_model(entry("y", 100));
  reg.add_model(entry("z", 100));
  reg.load_now("pin");
  reg.load_now("x");
  EXPECT_EQ(reg.used_bytes(), 200);
  // y does not fit beside pin and x: x (the only unpinned one) goes.
  reg.load_now("y");
  EXPECT_EQ(state(reg, "x"), ModelState::Unloaded);
  EXPECT_EQ(state(reg, "pin"), ModelState::Loaded);
  EXPECT_EQ(state(reg, "y"), ModelState::Loaded);
  // A model with a request in flight is not evicted: z cannot be loaded.
  std::shared_ptr<ServedModel> busy = reg.acquire("y").model;
  EXPECT_THROW(reg.load_now("z"), std::exception);
  EXPECT_EQ(state(reg, "z"), ModelState::Failed);
  EXPECT_NE(reg.status("z")->error.find("memory budget"), std::string::npos);
  EXPECT_EQ(state(reg, "y"), ModelState::Loaded);
  busy.reset();
  reg.load_now("z");
  EXPECT_EQ(state(reg, "y"), ModelState::Unloaded);
  EXPECT_LE(reg.used_bytes(), 250);
}

TEST(ModelRegistry, LruOrderFollowsUse) {
  Fake f;
  ModelRegistry::Options o;
  o.memory_budget_bytes = 200;
  ModelRegistry reg(o, f.loader());
  for (const char* n : {"a", "b", "c"}) reg.add_model(entry(n, 100));
  reg.load_now("a");
  reg.load_now("b");
  std::this_thread::sleep_for(2ms);
  (void)reg.acquire("a");  // a used after b: b is the least recently used
  reg.load_now("c");
  EXPECT_EQ(state(reg, "a"), ModelState::Loaded);
  EXPECT_EQ(state(reg, "b"), ModelState::Unloaded);
}

TEST(ModelRegistry, SharedWeightsCountOnce) {
  Fake f;
  ModelRegistry::Options o;
  o.memory_budget_bytes = 150;
  ModelRegistry reg(o, f.loader());
  ModelEntry a = entry("a", 100, true, false, "file.gguf"), b = entry("b", 100, true, false, "file.gguf");
  a.other_bytes = b.other_bytes = 20;
  reg.add_model(a);
  reg.add_model(b);
  reg.load_now("a");
  reg.load_now("b");
  EXPECT_EQ(state(reg, "a"), ModelState::Loaded);
  EXPECT_EQ(reg.used_bytes(), 140);
}

TEST(ModelRegistry, CandidatesWithFallback) {
  Fake f;
  ModelRegistry reg({}, f.loader());
  ModelEntry a = entry("a", 1);
  a.fallback = {"b"};
  reg.add_model(a);
  reg.add_model(entry("b", 1));
  reg.add_endpoint({"ep", {{"a", 100}, {"b", 0}}, {"b"}, false});
  EXPECT_EQ(reg.candidates("", ""), (std::vector<std::string>{"a", "b"}));
  EXPECT_EQ(reg.candidates("ep", ""), (std::vector<std::string>{"a", "b"}));
  EXPECT_EQ(reg.candidates("b", ""), (std::vector<std::string>{"b"}));
  EXPECT_TRUE(reg.known("ep"));
  EXPECT_FALSE(reg.is_model("ep"));
}

TEST(TrafficSplit, DrawsCoverTheWeightsExactly) {
  EndpointSpec e{"ep", {{"a", 90}, {"b", 10}}, {}, false};
  int a = 0;
  for (uint64_t d = 0; d < 1000; ++d) a += route_for_draw(e, d) == 0;
  EXPECT_EQ(a, 900);
  EndpointSpec z{"ep", {{"a", 0}, {"b", 100}}, {}, false};
  for (uint64_t d = 0; d < 100; ++d) EXPECT_EQ(route_for_draw(z, d), 1u);
}

TEST(TrafficSplit, RandomSplitWithinThreePoints) {
  EndpointSpec e{"ep", {{"a", 90}, {"b", 10}}, {}, false};
  int a = 0;
  for (int i = 0; i < 1000; ++i) a += choose_route(e, "") == 0;
  EXPECT_GE(a, 870);
  EXPECT_LE(a, 930);
}

TEST(TrafficSplit, StickyKeysKeepTheirRouteAndStillSplit) {
  EndpointSpec e{"ep", {{"a", 90}, {"b", 10}}, {}, true};
  int a = 0;
  for (int k = 0; k < 1000; ++k) {
    const std::string key = "key-" + std::to_string(k);
    const size_t r = choose_route(e, key);
    for (int rep = 0; rep < 3; ++rep) ASSERT_EQ(choose_route(e, key), r);
    a += r == 0;
  }
  EXPECT_GE(a, 870);
  EXPECT_LE(a, 930);
  EXPECT_EQ(endpoint_candidates(EndpointSpec{"ep", {{"a", 100}}, {"c", "a"}, false}, ""),
            (std::vector<std::string>{"a", "c"}));
}

}  // namespace
}  // namespace ms
