#!/usr/bin/env bash
# Several models in one server: routing, states, load/unload, the memory
# budget, traffic splitting and fallback, config errors.
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
MOESERVE_BIN="$1" exec node --test --test-reporter=spec ${2:+--test-name-pattern="$2"} "$here/models.test.mjs"
