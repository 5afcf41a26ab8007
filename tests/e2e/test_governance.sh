#!/usr/bin/env bash
# Governance end to end with the OpenAI SDK: once on SQLite, once on a real
# PostgreSQL started here (lib/pg.sh: initdb + pg_ctl in a temp dir, stopped
# at the end). Usage: test_governance.sh /path/to/moeserve
set -euo pipefail
BIN="$(realpath "${1:?usage: $0 /path/to/moeserve}")"
HERE="$(cd "$(dirname "$0")" && pwd)"
command -v node >/dev/null || { echo "node is required" >&2; exit 1; }
if [ ! -d "$HERE/node_modules/openai" ]; then
  (cd "$HERE" && npm ci --no-audit --no-fund --loglevel=error)
fi
cd "$HERE"
echo "== governance on SQLite"
MOESERVE_BIN="$BIN" GOV_BACKEND=sqlite timeout 600 node --test --test-reporter=spec governance.test.mjs
echo "== governance on PostgreSQL"
. "$HERE/lib/pg.sh"
trap pg_stop EXIT
pg_start
MOESERVE_BIN="$BIN" GOV_BACKEND=postgresql GOV_STATE="$PG_URL" timeout 600 node --test --test-reporter=spec governance.test.mjs
