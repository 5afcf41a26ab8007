#!/usr/bin/env bash
# with_pg.sh CMD ARGS... — runs CMD with MOESERVE_TEST_PG_URL set to a fresh
# PostgreSQL (see pg.sh), which is stopped and removed afterwards.
set -euo pipefail
. "$(dirname "$0")/pg.sh"
trap pg_stop EXIT
pg_start
MOESERVE_TEST_PG_URL="$PG_URL" "$@"
