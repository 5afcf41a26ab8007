// argmax.h — the greedy token of a row of logits: the lowest index of its
// largest value, NaN never chosen, 0 when every value is NaN or -inf. One
// definition for the sampler (engine) and the backends that compute it with
// the logits (kernels), so that both give the same token.
#pragma once
#include <cstdint>

namespace ms {

// Block maxima first (a loop the compiler vectorises), then a scan of the
// first block holding the overall maximum: no copy of the row, no branch per
// element.
int32_t greedy_argmax(const float* x, int64_t n);

// The largest value of x[0, n), NaN skipped; -inf when there is none.
float max_value(const float* x, int64_t n);

}  // namespace ms
