// traffic_split.h — served endpoints that split traffic between models.
//
// An endpoint is a name clients send as "model"; it names weighted routes
// (integer percentages summing to 100) and fallback models tried, in order,
// when the chosen model cannot take the request (unloaded and not autoload,
// loading, or answering 429/503). With `sticky`, a caller's key always lands
// on the same route (a hash of endpoint and key), else each request draws.
#pragma once
#include <cstdint>
#include <string>
#include <vector>

namespace ms {

struct RouteWeight {
  std::string model;
  int weight = 0;  // percent; an endpoint's weights sum to 100
};

struct EndpointSpec {
  std::string name;
  std::vector<RouteWeight> routes;
  std::vector<std::string> fallback;
  bool sticky = false;
};

// The route index that `draw` (any 64-bit value; reduced modulo the total
// weight) selects: routes own consecutive slices of [0, total) in order.
size_t route_for_draw(const EndpointSpec& e, uint64_t draw);

// The route for one request: sticky endpoints hash (endpoint, sticky_key)
// when the key is not empty; otherwise a uniform random draw.
size_t choose_route(const EndpointSpec& e, const std::string& sticky_key);

// Models to try for one request, in order: the chosen route, then the
// endpoint's fallbacks (each once).
std::vector<std::string> endpoint_candidates(const EndpointSpec& e, const std::string& sticky_key);

}  // namespace ms
