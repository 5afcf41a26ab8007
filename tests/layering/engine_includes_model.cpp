// Must NOT compile: the engine sees only model/batch.h of the model layer.
#include "model/mixtral.h"
int layering_probe_engine_model() { return 0; }
