#!/usr/bin/env bash
# Files API downloads: time to first byte and total time of
# GET /v1/files/{id}/content for one large file, with the Batch API's state
# on SQLite (the file in the files directory) and on PostgreSQL (the bytes in
# 1 MiB bytea chunks; a throw-away server from tests/e2e/lib/pg.sh), and the
# server's peak RSS growth over the downloads. Each download is compared with
# the upload byte for byte. Give several binaries to compare them in one run.
# Usage: bench/batch/download.sh [BIN...]   (MB=24 ROUNDS=3)
set -euo pipefail
ROOT="$(cd "$(dirname "$0")/../.." && pwd)"
BINS=("$@")
[ ${#BINS[@]} -gt 0 ] || BINS=("$ROOT/build/tools/moeserve")
MB="${MB:-24}"
ROUNDS="${ROUNDS:-3}"
# TMP, serve_start (a server on a free loopback port, waited for) and the
# cleanup of both; the PostgreSQL server is stopped too.
. "$ROOT/tests/e2e/lib/serve.sh"
. "$ROOT/tests/e2e/lib/pg.sh"
trap 'pg_stop; cleanup' EXIT
pg_start

# A valid batch input of about MB MiB: lines of 120 kB prompts.
node -e '
  const fs = require("fs");
  const [file, mb] = [process.argv[1], Number(process.argv[2])];
  const out = fs.openSync(file, "w");
  for (let i = 0, n = 0; n < mb * 1048576; ++i) {
    const l = JSON.stringify({ custom_id: `l${i}`, method: "POST", url: "/v1/completions",
      body: { prompt: "x".repeat(120000), max_tokens: 1 } }) + "\n";
    fs.writeSync(out, l);
    n += l.length;
  }
  fs.closeSync(out);' "$TMP/in.jsonl" "$MB"

json_field() {  # the field $1 of the JSON object on stdin
  node -e 'let s="";process.stdin.on("data",d=>s+=d).on("end",()=>console.log(JSON.parse(s)[process.argv[1]]))' "$1"
}

run() {  # label, state (BIN: the binary)
  local label="$1" state="$2"
  local key
  key="$("$BIN" keys create --state "$state" --name dl | json_field key)"
  serve_start "$TMP/server.log" --state "$state"
  local auth="Authorization: Bearer $key" url="http://127.0.0.1:$PORT/v1/files"
  local id
  id="$(curl -sf -H "$auth" "$url" -F purpose=batch -F file=@"$TMP/in.jsonl" | json_field id)"
  local hwm0 hwm1 times="" same=yes
  hwm0="$(awk '/VmHWM/ {print $2}' "/proc/$SERVER_PID/status")"
  for _ in $(seq "$ROUNDS"); do
    times+=" $(curl -sf -H "$auth" -o "$TMP/out.bin" -w '%{time_starttransfer}/%{time_total}' "$url/$id/content")"
    cmp -s "$TMP/out.bin" "$TMP/in.jsonl" || same=NO
  done
  hwm1="$(awk '/VmHWM/ {print $2}' "/proc/$SERVER_PID/status")"
  kill "$SERVER_PID"; wait "$SERVER_PID" 2>/dev/null || true; SERVER_PID=""
  printf '%-24s %-10s first byte / total (s):%s  peak RSS +%d MiB  byte-identical: %s\n' \
    "$(basename "$BIN")" "$label" "$times" $(((hwm1 - hwm0) / 1024)) "$same"
}

echo "download of a $(($(stat -c %s "$TMP/in.jsonl") / 1048576)) MiB file, $ROUNDS times"
for b in "${BINS[@]}"; do
  BIN="$(realpath "$b")"
  run sqlite "$TMP/state-$RANDOM.db"
  run postgresql "$PG_URL"
done
