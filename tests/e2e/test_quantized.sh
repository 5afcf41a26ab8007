#!/usr/bin/env bash
# Quantized inference end-to-end: llama.cpp GGUF files and load-time quantization.
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
# $2 (optional): only the tests whose names match this pattern.
MOESERVE_BIN="$1" exec node --test --test-reporter=spec ${2:+--test-name-pattern="$2"} "$here/quantized.test.mjs"
