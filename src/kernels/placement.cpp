// placement.cpp — the expert-offload planner (placement.h).
#include "kernels/placement.h"

#include <algorithm>
#include <numeric>

#include "core/error.h"

namespace ms {

ExpertsOn parse_experts_on(const std::string& s) {
  if (s == "cpu") return ExpertsOn::Cpu;
  if (s == "gpu") return ExpertsOn::Gpu;
  if (s == "auto") return ExpertsOn::Auto;
  bad_input("--experts-on: unknown value '" + s + "' (expected cpu, gpu or auto)");
}

const char* experts_on_name(ExpertsOn e) {
  return e == ExpertsOn::Cpu ? "cpu" : e == ExpertsOn::Gpu ? "gpu" : "auto";
}

int64_t Placement::layers_on_device() const {
  return std::count(experts_on_device.begin(), experts_on_device.end(), uint8_t(1));
}

bool Placement::on_device(const WeightSpec& spec) const {
  if (spec.role != WeightRole::Expert) return true;
  if (spec.layer < 0 || size_t(spec.layer) >= experts_on_device.size()) return false;
  return experts_on_device[size_t(spec.layer)] != 0;
}

namespace {
std::string mib(int64_t b) { return std::to_string((b + (1 << 20) - 1) >> 20) + " MiB"; }
}  // namespace

Placement plan_placement(const ModelBytes& model, ExpertsOn mode, const DeviceBudget& budget) {
  Placement p;
  const size_t L = model.layers.size();
  p.experts_on_device.assign(L, 0);
  int64_t fixed = model.embedding + model.output + budget.kv_bytes + budget.reserve_bytes;
  int64_t experts = 0;
  for (const LayerBytes& l : model.layers) {
    fixed += l.dense;
    experts += l.experts;
  }
  if (mode == ExpertsOn::Gpu) {
    if (fixed + experts > budget.device_bytes)
      bad_input("--experts-on gpu: the model and KV cache need " + mib(fixed + experts) + " of GPU memory, " +
                mib(budget.device_bytes) + " available (try --experts-on auto)");
    p.experts_on_device.assign(L, 1);
    p.device_bytes = fixed + experts;
    return p;
  }
  if (fixed > budget.device_bytes)
    bad_input(std::string("--experts-on ") + experts_on_name(mode) + ": attention weights, embeddings and KV cache need " +
              mib(fixed) + " of GPU memory, " + mib(budget.device_bytes) + " available (lower --kv-cache-mb)");
  p.device_bytes = fixed;
  p.host_bytes = experts;
  if (mode == ExpertsOn::Auto) {
    std::vector<size_t> order(L);
    std::iota(order.begin(), order.end(), size_t(0));
    std::stable_sort(order.begin(), order.end(),
                     [&](size_t a, size_t b) { return model.layers[a].experts < model.layers[b].experts; });
    for (size_t i : order) {
      const int64_t e = model.layers[i].experts;
      if (p.device_bytes + e > budget.device_bytes) break;
      p.experts_on_device[i] = 1;
      p.device_bytes += e;
      p.host_bytes -= e;
    }
  }
  return p;
}

}  // namespace ms
