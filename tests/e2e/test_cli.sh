#!/usr/bin/env bash
# CLI end-to-end: reference agreement through the binary, perplexity, bad input.
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
MOESERVE_BIN="$1" exec node --test --test-reporter=spec "$here/cli.test.mjs"
