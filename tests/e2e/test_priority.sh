#!/usr/bin/env bash
# Provisioned throughput and priority classes end to end (priority.test.mjs).
# Usage: test_priority.sh /path/to/moeserve
set -euo pipefail
BIN="$(realpath "${1:?usage: $0 /path/to/moeserve}")"
HERE="$(cd "$(dirname "$0")" && pwd)"
command -v node >/dev/null || { echo "node is required" >&2; exit 1; }
cd "$HERE"
MOESERVE_BIN="$BIN" timeout 300 node --test --test-reporter=spec priority.test.mjs
