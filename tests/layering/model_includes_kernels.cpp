// Must compile (the control: a downward include through a linked layer).
#include "kernels/backend.h"
#include "model/mixtral.h"
int layering_probe_model_kernels() { return 0; }
