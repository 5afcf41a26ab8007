#!/usr/bin/env bash
# Two models busy at once vs one alone, in one multi-model server sharing its
# compute threads: aggregate tok/s of both (each driven by its own loadgen at
# the same concurrency) against one model alone (the other idle). The target
# is an aggregate within 10% of the one-model figure: sharing the pool costs
# nothing beyond taking turns, and no model gets more threads than the pool.
# Usage: bench/serve/multi_model.sh [BIN] [CONCURRENCY] [REQUESTS] [MAX_TOKENS] [THREADS] [ROUNDS]
set -euo pipefail
ROOT="$(cd "$(dirname "$0")/../.." && pwd)"
BIN="$(realpath "${1:-$ROOT/build/tools/moeserve}")"
CONC="${2:-8}"
REQS="${3:-32}"
MAXTOK="${4:-32}"
THREADS="${5:-2}"
ROUNDS="${6:-2}"
TMP="$(mktemp -d /tmp/ms-multibench-XXXXXX)"
SRV=""
cleanup() { [ -n "$SRV" ] && kill "$SRV" 2>/dev/null; wait 2>/dev/null || true; rm -rf "$TMP"; }
trap cleanup EXIT

# Two served models over two copies of the bundled model's weights (no shared
# mapping, so each is a model of its own).
cp -r "$ROOT/models/tiny-mixtral-kjv" "$TMP/kjv-copy"
"$BIN" serve --host 127.0.0.1 --port 0 --threads "$THREADS" --max-batch 64 --kv-cache-mb 256 \
  -m a="$ROOT/models/tiny-mixtral-kjv" -m b="$TMP/kjv-copy" 2>"$TMP/log" &
SRV=$!
for _ in $(seq 1 600); do
  grep -q "ready:" "$TMP/log" && break
  kill -0 "$SRV" 2>/dev/null || { cat "$TMP/log"; exit 1; }
  sleep 0.1
done
URL="$(grep -o 'http://127.0.0.1:[0-9]*' "$TMP/log" | head -1)"
echo "server: $URL, threads $THREADS (shared), 2 models; concurrency $CONC per model, $REQS requests, $MAXTOK tokens each"

cpu() {  # the server's CPU time so far, in clock ticks (utime + stime)
  awk '{print $14 + $15}' "/proc/$SRV/stat"
}
TICK="$(getconf CLK_TCK)"

load() {  # model -> tok/s
  node "$ROOT/bench/serve/loadgen.mjs" --url "$URL" --model "$1" --concurrency "$CONC" --requests "$REQS" \
    --max-tokens "$MAXTOK" --json | node -e 'let s="";process.stdin.on("data",d=>s+=d).on("end",()=>console.log(JSON.parse(s).levels[0].tokens_per_s.toFixed(1)))'
}
# Server CPU milliseconds per generated token over a phase that generated $1 tokens.
cpu_per_tok() { node -e "console.log((($3 - $2) * 1000 / $TICK / $1).toFixed(3))"; }
load a >/dev/null; load b >/dev/null  # warm-up
TOK=$((REQS * MAXTOK))
for r in $(seq 1 "$ROUNDS"); do
  c0="$(cpu)"
  alone_a="$(load a)"
  alone_b="$(load b)"
  c1="$(cpu)"
  load a >"$TMP/a" & pa=$!
  load b >"$TMP/b" & pb=$!
  wait "$pa" "$pb"
  c2="$(cpu)"
  both_a="$(cat "$TMP/a")"; both_b="$(cat "$TMP/b")"
  cpu_alone="$(cpu_per_tok $((2 * TOK)) "$c0" "$c1")"
  cpu_both="$(cpu_per_tok $((2 * TOK)) "$c1" "$c2")"
  node -e "const [aa,ab,ba,bb,ca,cb]=process.argv.slice(1).map(Number);const alone=(aa+ab)/2,agg=ba+bb;
console.log('round $r: one alone '+alone.toFixed(1)+' tok/s (a '+aa+', b '+ab+'); both at once '+agg.toFixed(1)+
' tok/s (a '+ba+' + b '+bb+'); aggregate / alone = '+(agg/alone).toFixed(3)+
'; server CPU per token: alone '+ca+' ms, both '+cb+' ms (ratio '+(cb/ca).toFixed(3)+')')" \
    "$alone_a" "$alone_b" "$both_a" "$both_b" "$cpu_alone" "$cpu_both"
done
echo "compute threads while both ran: $(ls /proc/$SRV/task | wc -l) threads in the process (pool $THREADS + engine, I/O, main)"
