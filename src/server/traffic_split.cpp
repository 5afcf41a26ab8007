// traffic_split.cpp — route choice for split endpoints (see traffic_split.h).
#include "server/traffic_split.h"

#include <algorithm>
#include <random>

namespace ms {

size_t route_for_draw(const EndpointSpec& e, uint64_t draw) {
  uint64_t total = 0;
  for (const RouteWeight& r : e.routes) total += static_cast<uint64_t>(std::max(0, r.weight));
  if (e.routes.empty() || total == 0) return 0;
  uint64_t x = draw % total;
  for (size_t i = 0; i < e.routes.size(); ++i) {
    const uint64_t w = static_cast<uint64_t>(std::max(0, e.routes[i].weight));
    if (x < w) return i;
    x -= w;
  }
  return e.routes.size() - 1;
}

namespace {

uint64_t fnv1a(const std::string& s, uint64_t h = 1469598103934665603ull) {
  for (unsigned char c : s) {
    h ^= c;
    h *= 1099511628211ull;
  }
  return h;
}

// splitmix64 finaliser: spreads the FNV hash over all bits before the modulo.
uint64_t mix(uint64_t z) {
  z += 0x9e3779b97f4a7c15ull;
  z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
  z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
  return z ^ (z >> 31);
}

}  // namespace

size_t choose_route(const EndpointSpec& e, const std::string& sticky_key) {
  if (e.sticky && !sticky_key.empty()) return route_for_draw(e, mix(fnv1a(sticky_key, fnv1a(e.name + '\n'))));
  thread_local std::mt19937_64 rng{std::random_device{}()};
  return route_for_draw(e, rng());
}

std::vector<std::string> endpoint_candidates(const EndpointSpec& e, const std::string& sticky_key) {
  std::vector<std::string> out;
  auto add = [&out](const std::string& m) {
    if (std::find(out.begin(), out.end(), m) == out.end()) out.push_back(m);
  };
  if (!e.routes.empty()) add(e.routes[choose_route(e, sticky_key)].model);
  for (const std::string& f : e.fallback) add(f);
  return out;
}

}  // namespace ms
