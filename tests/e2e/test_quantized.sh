#!/usr/bin/env bash
# Quantized inference end-to-end: llama.cpp GGUF files and load-time quantization.
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
MOESERVE_BIN="$1" exec node --test --test-reporter=spec "$here/quantized.test.mjs"
