// Must NOT compile: kernels sit below model (tests/layering/layering.cmake).
#include "model/mixtral.h"
int layering_probe_kernels_model() { return 0; }
