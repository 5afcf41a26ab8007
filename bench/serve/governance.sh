#!/usr/bin/env bash
# Governance overhead: the server on the bundled model at concurrency 64 with
# governance off, on SQLite, and on PostgreSQL (a throw-away server from
# tests/e2e/lib/pg.sh), each with a key under default/model limits high enough
# never to refuse (so every request runs the whole admission path: auth,
# permission, token buckets, and on PostgreSQL the shared counters).
# Reports tok/s, TTFT p99 (client) and the server's admission latency
# (moeserve_admission_seconds: mean, and p99 as a bucket upper bound) and how
# long finished responses waited for their usage rows to commit
# (moeserve_governance_commit_wait_seconds).
# Usage: bench/serve/governance.sh [BIN] [REQUESTS] [MAX_TOKENS] [ROUNDS]
set -euo pipefail
ROOT="$(cd "$(dirname "$0")/../.." && pwd)"
BIN="$(realpath "${1:-$ROOT/build/tools/moeserve}")"
REQS="${2:-512}"
MAXTOK="${3:-32}"
ROUNDS="${4:-2}"
TMP="$(mktemp -d /tmp/ms-govbench-XXXXXX)"
. "$ROOT/tests/e2e/lib/pg.sh"
SRV=""
cleanup() { [ -n "$SRV" ] && kill "$SRV" 2>/dev/null; wait 2>/dev/null || true; pg_stop; rm -rf "$TMP"; }
trap cleanup EXIT
pg_start

run() {  # name, extra serve args..., then key
  local name="$1" state="$2" key=""
  local args=(serve --host 127.0.0.1 --port 0 --max-batch 64)
  if [ -n "$state" ]; then
    key="$("$BIN" keys create --state "$state" --name bench | node -e 'let s="";process.stdin.on("data",d=>s+=d).on("end",()=>console.log(JSON.parse(s).key))')"
    "$BIN" limits set --state "$state" --default --qpm 1000000 --tpm 1000000000 >/dev/null
    "$BIN" limits set --state "$state" --model tiny-mixtral-kjv --qpm 1000000 --tpm 1000000000 >/dev/null
    args+=(--state "$state")
  fi
  "$BIN" "${args[@]}" 2>"$TMP/$name.log" &
  SRV=$!
  local port=""
  for _ in $(seq 600); do
    port="$(grep -o 'listening on http://127.0.0.1:[0-9]*' "$TMP/$name.log" | grep -o '[0-9]*$' || true)"
    [ -n "$port" ] && curl -sf "http://127.0.0.1:$port/health" >/dev/null && break
    sleep 0.1
  done
  node "$ROOT/bench/serve/loadgen.mjs" --url "http://127.0.0.1:$port" --concurrency 64 --requests "$REQS" \
    --max-tokens "$MAXTOK" ${key:+--api-key "$key"} --json > "$TMP/$name.json"
  curl -sf "http://127.0.0.1:$port/metrics" > "$TMP/$name.metrics"
  kill "$SRV"; wait "$SRV" 2>/dev/null || true; SRV=""
  node -e '
    const fs = require("fs");
    const [name, j, m] = process.argv.slice(1);
    const r = JSON.parse(fs.readFileSync(j, "utf8")).levels[0];
    const t = fs.readFileSync(m, "utf8");
    const num = (re) => Number((re.exec(t) || [0, NaN])[1]);
    const sum = num(/^moeserve_admission_seconds_sum (\S+)/m), cnt = num(/^moeserve_admission_seconds_count (\S+)/m);
    const cws = num(/^moeserve_governance_commit_wait_seconds_sum (\S+)/m), cw = num(/^moeserve_governance_commit_wait_seconds_count (\S+)/m);
    let cwp99 = NaN;
    for (const b of t.matchAll(/^moeserve_governance_commit_wait_seconds_bucket\{le="([^"]+)"\} (\d+)/gm))
      if (Number.isNaN(cwp99) && Number(b[2]) >= 0.99 * cw) cwp99 = Number(b[1]);
    let p99 = NaN;
    for (const b of t.matchAll(/^moeserve_admission_seconds_bucket\{le="([^"]+)"\} (\d+)/gm))
      if (Number.isNaN(p99) && Number(b[2]) >= 0.99 * cnt) p99 = Number(b[1]);
    console.log(`${name.padEnd(10)} tok/s ${r.tokens_per_s.toFixed(1).padStart(7)}  TTFT p99 ${r.ttft_p99_ms.toFixed(1).padStart(7)} ms  ` +
      `e2e p99 ${r.e2e_p99_ms.toFixed(0).padStart(6)} ms  admission mean ${(1e3 * sum / cnt).toFixed(3)} ms, p99 <= ${(1e3 * p99).toFixed(3)} ms` +
      (cw > 0 ? `  commit wait mean ${(1e3 * cws / cw).toFixed(3)} ms, p99 <= ${(1e3 * cwp99).toFixed(1)} ms` : ""));
  ' "$name" "$TMP/$name.json" "$TMP/$name.metrics"
}

echo "concurrency 64, $REQS requests x $MAXTOK tokens per configuration, $ROUNDS rounds (interleaved)"
for r in $(seq "$ROUNDS"); do
  rm -f "$TMP/state.db"*
  run off ""
  run sqlite "$TMP/state.db"
  run postgresql "$PG_URL"
done
