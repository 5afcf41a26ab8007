// --device parsing and the availability check (kernels/device.h), and the
// expert-offload planner (kernels/placement.h): host-side, no GPU needed.
#include <gtest/gtest.h>

#include <functional>
#include <string>
#include <vector>

#include "core/error.h"
#include "kernels/device.h"
#include "kernels/placement.h"

namespace ms {
namespace {

std::string bad_input_message(const std::function<void()>& f) {
  try {
    f();
  } catch (const Error& e) {
    EXPECT_EQ(e.kind(), ErrorKind::BadInput);
    return e.what();
  }
  ADD_FAILURE() << "no error";
  return "";
}

TEST(Device, ParsesCpuCudaAndOrdinals) {
  EXPECT_FALSE(parse_device("cpu").is_cuda());
  EXPECT_TRUE(parse_device("cuda").is_cuda());
  EXPECT_EQ(parse_device("cuda").index, 0);
  EXPECT_EQ(parse_device("cuda:0").index, 0);
  EXPECT_EQ(parse_device("cuda:7").index, 7);
  EXPECT_EQ(parse_device("cuda:1023").index, 1023);
  EXPECT_EQ(device_name(parse_device("cuda")), "cuda:0");
  EXPECT_EQ(device_name(parse_device("cuda:3")), "cuda:3");
  EXPECT_EQ(device_name(parse_device("cpu")), "cpu");
}

TEST(Device, RefusesAnythingElseWithOneLine) {
  for (const char* s : {"", "CPU", "gpu", "cuda:", "cuda:-1", "cuda:1024", "cuda:99999", "cuda:1x", "cuda0",
                        "cuda:0:1", " cuda", "cpu:0", "cudax"}) {
    const std::string m = bad_input_message([&] { parse_device(s); });
    EXPECT_EQ(m, std::string("--device: unknown value '") + s + "' (expected cpu, cuda or cuda:N)");
  }
}

TEST(Device, AvailabilityMatchesTheBuildAndTheMachine) {
  EXPECT_NO_THROW(check_device_available(parse_device("cpu")));
  std::string why;
  const int n = cuda_device_count(&why);
  if (!cuda_built()) {
    EXPECT_EQ(n, -1);
    EXPECT_EQ(why, "built without CUDA");
    const std::string m = bad_input_message([] { check_device_available(parse_device("cuda:2")); });
    EXPECT_EQ(m, "--device cuda:2: this moeserve was built without CUDA (configure with -DMOESERVE_CUDA=ON)");
    int64_t f = 0, t = 0;
    EXPECT_FALSE(cuda_device_memory(0, &f, &t, &why));
    return;
  }
  // A CUDA build: no device (CI) or some.
  if (n <= 0) {
    const std::string m = bad_input_message([] { check_device_available(parse_device("cuda")); });
    EXPECT_NE(m.find("--device cuda:0: no"), std::string::npos) << m;
    return;
  }
  EXPECT_NO_THROW(check_device_available(parse_device("cuda:" + std::to_string(n - 1))));
  const std::string m = bad_input_message([&] { check_device_available(parse_device("cuda:" + std::to_string(n))); });
  EXPECT_NE(m.find("no such CUDA device (" + std::to_string(n) + " found"), std::string::npos) << m;
}

// ---- expert offload planner

ModelBytes model(std::vector<int64_t> experts, int64_t dense = 10, int64_t embed = 100, int64_t out = 50) {
  ModelBytes m;
  for (int64_t e : experts) m.layers.push_back({dense, e});
  m.embedding = embed;
  m.output = out;
  return m;
}
DeviceBudget budget(int64_t device, int64_t kv = 40, int64_t reserve = 20) { return {device, kv, reserve}; }

TEST(Placement, ParsesItsFlag) {
  EXPECT_EQ(parse_experts_on("cpu"), ExpertsOn::Cpu);
  EXPECT_EQ(parse_experts_on("gpu"), ExpertsOn::Gpu);
  EXPECT_EQ(parse_experts_on("auto"), ExpertsOn::Auto);
  EXPECT_EQ(bad_input_message([] { parse_experts_on("GPU"); }),
            "--experts-on: unknown value 'GPU' (expected cpu, gpu or auto)");
}

TEST(Placement, GpuPutsEverythingOnTheDeviceOrRefuses) {
  const ModelBytes m = model({300, 300, 300, 300});  // fixed: 4*10 + 100 + 50 + 40 + 20 = 250
  const Placement p = plan_placement(m, ExpertsOn::Gpu, budget(1450));
  EXPECT_EQ(p.layers_on_device(), 4);
  EXPECT_EQ(p.device_bytes, 1450);
  EXPECT_EQ(p.host_bytes, 0);
  const std::string e = bad_input_message([&] { plan_placement(m, ExpertsOn::Gpu, budget(1449)); });
  EXPECT_NE(e.find("--experts-on gpu: "), std::string::npos) << e;
  EXPECT_NE(e.find("--experts-on auto"), std::string::npos) << e;
}

TEST(Placement, CpuKeepsEveryExpertInHostMemory) {
  const ModelBytes m = model({300, 300, 300});
  const Placement p = plan_placement(m, ExpertsOn::Cpu, budget(1 << 30));
  EXPECT_EQ(p.layers_on_device(), 0);
  EXPECT_EQ(p.device_bytes, 3 * 10 + 100 + 50 + 40 + 20);
  EXPECT_EQ(p.host_bytes, 900);
  // Attention, embeddings, KV and reserve must fit even then.
  const std::string e = bad_input_message([&] { plan_placement(m, ExpertsOn::Cpu, budget(239)); });
  EXPECT_NE(e.find("attention weights, embeddings and KV cache need"), std::string::npos) << e;
  EXPECT_NO_THROW(plan_placement(m, ExpertsOn::Cpu, budget(240)));
}

TEST(Placement, AutoFillsAsManyLayersAsFitSmallestFirst) {
  // fixed = 5*10 + 100 + 50 + 40 + 20 = 260
  const ModelBytes m = model({300, 100, 300, 200, 100});
  struct Case {
    int64_t device;
    std::vector<uint8_t> on;
  } cases[] = {
      {259 + 1, {0, 0, 0, 0, 0}},     {260 + 99, {0, 0, 0, 0, 0}},    {260 + 100, {0, 1, 0, 0, 0}},
      {260 + 200, {0, 1, 0, 0, 1}},   {260 + 399, {0, 1, 0, 0, 1}},   {260 + 400, {0, 1, 0, 1, 1}},
      {260 + 700, {1, 1, 0, 1, 1}},   {260 + 999, {1, 1, 0, 1, 1}},   {260 + 1000, {1, 1, 1, 1, 1}},
      {int64_t(1) << 40, {1, 1, 1, 1, 1}},
  };
  for (const Case& c : cases) {
    const Placement p = plan_placement(m, ExpertsOn::Auto, budget(c.device));
    EXPECT_EQ(p.experts_on_device, c.on) << "device " << c.device;
    EXPECT_LE(p.device_bytes, c.device);
    EXPECT_EQ(p.device_bytes + p.host_bytes, 260 + 1000);
  }
}

TEST(Placement, TheUploadPlanFollowsRoleAndLayer) {
  const ModelBytes m = model({300, 100, 300});
  const Placement p = plan_placement(m, ExpertsOn::Auto, budget(250 - 10 + 100));  // fixed 240: layer 1 fits
  ASSERT_EQ(p.experts_on_device, (std::vector<uint8_t>{0, 1, 0}));
  WeightSpec s;
  for (WeightRole r : {WeightRole::Embedding, WeightRole::Attention, WeightRole::Router, WeightRole::Output}) {
    s.role = r;
    for (int64_t l : {-1, 0, 1, 2}) {
      s.layer = l;
      EXPECT_TRUE(p.on_device(s));
    }
  }
  s.role = WeightRole::Expert;
  s.layer = 0;
  EXPECT_FALSE(p.on_device(s));
  s.layer = 1;
  EXPECT_TRUE(p.on_device(s));
  s.layer = 2;
  EXPECT_FALSE(p.on_device(s));
  s.layer = 3;
  EXPECT_FALSE(p.on_device(s));
}

}  // namespace
}  // namespace ms
