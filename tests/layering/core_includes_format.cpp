// Must NOT compile: core is the bottom layer.
#include "format/model_desc.h"
int layering_probe_core_format() { return 0; }
