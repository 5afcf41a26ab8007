#!/usr/bin/env bash
# Quick start (a): install dependencies, build, serve the bundled model on 127.0.0.1:8080.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/install-deps.sh
scripts/build.sh
exec build/tools/moeserve serve "$@"
