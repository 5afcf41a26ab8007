#!/usr/bin/env bash
# Quick start (b): install dependencies, build, run the whole test suite.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/install-deps.sh
if [ -f tests/e2e/package.json ]; then
  (cd tests/e2e && npm ci --no-audit --no-fund --loglevel=error)
fi
scripts/build.sh
cd build
ctest --output-on-failure -j"$(nproc)" "$@"
