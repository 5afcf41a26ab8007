// placement.h — expert offload (`--experts-on cpu|gpu|auto`): which layers'
// expert weights a GPU holds and which stay in host memory, run there by the
// CPU kernels (llama.cpp's --cpu-moe), so a quantized Mixtral 8x7B serves on a
// card smaller than the model. Attention, router, embeddings and the KV cache
// always go to the device; the experts of a layer go together.
//
// Host-side and pure: the planner sees byte counts, not weights. A device
// backend asks on_device() for each matrix prepare_weight gets (WeightSpec's
// role and layer): that is its upload plan.
#pragma once
#include <cstdint>
#include <string>
#include <vector>

#include "kernels/backend.h"

namespace ms {

enum class ExpertsOn { Cpu, Gpu, Auto };
// "cpu" | "gpu" | "auto". Error(BadInput) naming --experts-on otherwise.
ExpertsOn parse_experts_on(const std::string& s);
const char* experts_on_name(ExpertsOn e);

// A layer's weights in their run type: `dense` = attention and router,
// `experts` = all its experts (or its dense FFN).
struct LayerBytes {
  int64_t dense = 0;
  int64_t experts = 0;
};
struct ModelBytes {
  std::vector<LayerBytes> layers;
  int64_t embedding = 0;
  int64_t output = 0;  // 0 when tied to the embedding
};

struct DeviceBudget {
  int64_t device_bytes = 0;   // memory the device gives us (free memory, or a flag's cap)
  int64_t kv_bytes = 0;       // the KV cache
  int64_t reserve_bytes = 0;  // activations, workspace, the runtime's own
};

struct Placement {
  std::vector<uint8_t> experts_on_device;  // per layer: 1 = its experts on the device
  int64_t device_bytes = 0;  // on the device: weights placed there + KV + reserve
  int64_t host_bytes = 0;    // expert weights left in host memory
  int64_t layers_on_device() const;
  // Whether the matrix prepare_weight describes by `spec` goes to the device.
  bool on_device(const WeightSpec& spec) const;
};

// The placement for `mode`: Gpu = every expert on the device, Cpu = none,
// Auto = as many layers' experts as fit (smallest first, then lowest layer,
// which maximises their number). Error(BadInput) with one line when the
// device cannot hold what must go there (everything for gpu; attention,
// embeddings, KV and reserve for cpu and auto).
Placement plan_placement(const ModelBytes& model, ExpertsOn mode, const DeviceBudget& budget);

}  // namespace ms
