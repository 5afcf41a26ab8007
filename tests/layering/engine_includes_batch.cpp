// Must compile (the control: the probes fail for the include alone).
#include "engine/engine.h"
#include "model/batch.h"
int layering_probe_engine_batch() { return 0; }
