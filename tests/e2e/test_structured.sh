#!/usr/bin/env bash
# Structured outputs and tool calling through the official OpenAI SDK against
# `moeserve serve` on the bundled model. Usage: test_structured.sh /path/to/moeserve
set -euo pipefail
BIN="$(realpath "${1:?usage: $0 /path/to/moeserve}")"
HERE="$(cd "$(dirname "$0")" && pwd)"
command -v node >/dev/null || { echo "node is required" >&2; exit 1; }
if [ ! -d "$HERE/node_modules/openai" ] || [ ! -d "$HERE/node_modules/ajv-formats" ]; then
  (cd "$HERE" && npm ci --no-audit --no-fund --loglevel=error)
fi
cd "$HERE"
MOESERVE_BIN="$BIN" exec timeout 600 node --test --test-reporter=spec structured.test.mjs
