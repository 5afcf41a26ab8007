#!/usr/bin/env bash
# Two replicas behind nginx sharing one PostgreSQL (replicas.test.mjs).
# Starts PostgreSQL (lib/pg.sh: initdb + pg_ctl, temp dir, free loopback
# port); the test starts nginx itself (own conf, pid and logs in a temp dir).
# Usage: test_replicas.sh /path/to/moeserve
set -euo pipefail
BIN="$(realpath "${1:?usage: $0 /path/to/moeserve}")"
HERE="$(cd "$(dirname "$0")" && pwd)"
command -v node >/dev/null || { echo "node is required" >&2; exit 1; }
NGINX_BIN="${NGINX_BIN:-$(command -v nginx || echo /usr/sbin/nginx)}"
[ -x "$NGINX_BIN" ] || { echo "nginx is required (apt-get install nginx; scripts/install-deps.sh)" >&2; exit 1; }
export NGINX_BIN
. "$HERE/lib/pg.sh"
trap pg_stop EXIT
pg_start
cd "$HERE"
MOESERVE_BIN="$BIN" timeout 240 node --test --test-reporter=spec replicas.test.mjs
