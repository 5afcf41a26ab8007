#!/usr/bin/env bash
# The Batch and Files APIs with the official OpenAI SDK against `moeserve serve`
# on the bundled model. Usage: test_batch.sh /path/to/moeserve
set -euo pipefail
BIN="$(realpath "${1:?usage: $0 /path/to/moeserve}")"
HERE="$(cd "$(dirname "$0")" && pwd)"
command -v node >/dev/null || { echo "node is required" >&2; exit 1; }
command -v sqlite3 >/dev/null || { echo "the sqlite3 shell is required (scripts/install-deps.sh)" >&2; exit 1; }
if [ ! -d "$HERE/node_modules/openai" ]; then
  (cd "$HERE" && npm ci --no-audit --no-fund --loglevel=error)
fi
cd "$HERE"
MOESERVE_BIN="$BIN" exec timeout 300 node --test --test-reporter=spec batch.test.mjs
