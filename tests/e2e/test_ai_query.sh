#!/usr/bin/env bash
# ai_query in the sqlite3 shell (libmoeserve_sqlite.so) against `moeserve
# serve` on the bundled model: a 200-row table, failOnError true and false, a
# bad endpoint, a wrong key, the server down, and the 200 rows sent
# concurrently (ai_query_batch: many rows in the server at once, faster than
# 200 sequential ai_query calls), with the same greedy answers.
# Usage: test_ai_query.sh /path/to/moeserve
set -euo pipefail
BIN="$(realpath "${1:?usage: $0 /path/to/moeserve}")"
EXT="$(dirname "$BIN")/libmoeserve_sqlite.so"
command -v sqlite3 >/dev/null || { echo "the sqlite3 shell is required (scripts/install-deps.sh)" >&2; exit 1; }
[ -f "$EXT" ] || { echo "missing $EXT (built with the moeserve target)" >&2; exit 1; }
. "$(dirname "$0")/lib/serve.sh"
ms() { date +%s%3N; }

serve_start "$TMP/server.log" --api-key sekrit --max-batch 256
export MOESERVE_URL="http://127.0.0.1:$PORT" MOESERVE_API_KEY=sekrit
DB="$TMP/t.db"
q() { sqlite3 -bail "$DB" ".load ${EXT%.so}" "$@"; }
P='{"modelParameters":{"max_tokens":6,"temperature":0}}'

# The table: 200 rows.
sqlite3 "$DB" "CREATE TABLE verses (id INTEGER PRIMARY KEY, body TEXT);
  WITH RECURSIVE c(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM c WHERE x < 200)
  INSERT INTO verses SELECT x, 'And God said, let there be ' || x FROM c;"

# One row: the scalar's answer is the chat completion's content.
ONE="$(q "SELECT ai_query('tiny-mixtral-kjv', 'And God said', '$P');")"
REF="$(curl -sf -H 'Authorization: Bearer sekrit' -H 'Content-Type: application/json' \
  -d '{"model":"tiny-mixtral-kjv","messages":[{"role":"user","content":"And God said"}],"max_tokens":6,"temperature":0}' \
  "$MOESERVE_URL/v1/chat/completions")"
REF_TEXT="$(sqlite3 :memory: "SELECT json_extract('$(printf %s "$REF" | sed "s/'/''/g")', '\$.choices[0].message.content');")"
[ -n "$ONE" ] && [ "$ONE" = "$REF_TEXT" ] || fail "scalar ai_query '$ONE' != online '$REF_TEXT'"
echo "ok: ai_query = the online answer ('$ONE')"

# failOnError false: {"response": ..., "error": null}; a bad endpoint: {"response": null, "error": ...}.
R="$(q "SELECT json_extract(ai_query('tiny-mixtral-kjv', 'And God said', '{\"failOnError\":false,\"modelParameters\":{\"max_tokens\":6,\"temperature\":0}}'), '\$.response');")"
[ "$R" = "$ONE" ] || fail "failOnError false: response '$R'"
R="$(q "SELECT json_extract(v, '\$.response') IS NULL, json_extract(v, '\$.error') FROM (SELECT ai_query('no-such-model', 'x', '{\"failOnError\":false}') AS v);")"
case "$R" in "1|ai_query: HTTP 404: The model 'no-such-model' does not exist"*) ;; *) fail "bad endpoint, failOnError false: '$R'";; esac
echo "ok: failOnError false"

# failOnError true (default): the statement fails with the message (sqlite3 exits 1).
if OUT="$(q "SELECT ai_query('no-such-model', body) FROM verses;" 2>&1)"; then fail "bad endpoint did not fail: $OUT"; fi
grep -q "ai_query: HTTP 404: The model 'no-such-model' does not exist" <<<"$OUT" || fail "bad endpoint message: $OUT"
# Bad options are an error too.
if OUT="$(q "SELECT ai_query('tiny-mixtral-kjv', 'x', '{\"nope\":1}');" 2>&1)"; then fail "bad option accepted"; fi
grep -q "unknown option 'nope'" <<<"$OUT" || fail "bad option message: $OUT"
# A wrong key, set with ai_query_config: 401.
if OUT="$(q "SELECT ai_query_config('api_key', 'wrong'); SELECT ai_query('tiny-mixtral-kjv', 'x');" 2>&1)"; then fail "wrong key accepted"; fi
grep -q "ai_query: HTTP 401" <<<"$OUT" || fail "wrong key message: $OUT"
echo "ok: failOnError true, bad options, wrong key"

# 200 rows, one at a time (scalar), then all at once (ai_query_batch): the
# same answers; the batch keeps many rows in each decode step where the
# scalar calls keep one, and it takes under a quarter of the time (the
# issue's bound). 24 tokens a row, so a row costs decode steps, which
# concurrent rows share, not only a round trip and a short prefill. Both are
# timed warm (the scalar path ran above; one untimed ai_query_batch pays the
# server's first wide step: KV pages, buffers) and undisturbed: how many rows
# shared a step is read from the server's counters after each run (generated
# tokens / steps), not sampled while it runs. The two timings are a ratio
# taken in one run; a round over the bound is measured again, up to 5 rounds
# (this VM's speed moves within seconds), and every round is printed. A
# round passes when its own ratio is under the bound, or the fastest batch
# so far against the fastest sequential run so far is.
# The quarter is what the AVX-512 kernels reach (the lm_head gives token-only
# rows their greedy token without writing logits: docs/BATCH.md); a CPU
# without them (or MOESERVE_ISA capping them) is held to under half.
# The kernel set is the binary's own choice (the CPU's best, capped by
# MOESERVE_ISA), as `moeserve bench` reports it for the bundled model.
# The batch is bound by the lm_head's 512-bit FMAs, which AMD's Zen 4
# (family 25 with AVX-512) issues at half the rate of the Intel cores the
# quarter was measured on (one a cycle a core: bench_kernels Int8Ports;
# docs/BATCH.md): there, as on AVX2, the bound is under half.
KERNELS="$("$BIN" bench --prompt 8 --batch none --reps 1 --threads 1 2>/dev/null | tail -1 | grep -o '"kernels":"[a-z0-9]*"' | cut -d'"' -f4)"
[ -n "$KERNELS" ] || fail "moeserve bench did not report its kernel set"
ZEN4=0
grep -q '^vendor_id.*AuthenticAMD' /proc/cpuinfo && grep -Eq '^cpu family[[:space:]]*: 25$' /proc/cpuinfo && ZEN4=1
if [ "$KERNELS" = avx512 ] && [ "$ZEN4" = 0 ]; then DEN=4; BOUND="a quarter"
else DEN=2; BOUND="half"; echo "kernels $KERNELS$([ "$ZEN4" = 1 ] && echo ' on Zen 4 (half-rate 512-bit FMAs)'): the bound is under half"; fi
P="${P200:-{\"modelParameters\":{\"max_tokens\":24,\"temperature\":0,\"ignore_eos\":true}}}"
counters() { curl -sf "$MOESERVE_URL/metrics" | awk '/^moeserve_generation_tokens_total /{g = $2} /^moeserve_engine_steps_total /{s = $2} END {print g + 0, s + 0}'; }
rows_per_step() { awk -v a="$1" -v b="$2" 'BEGIN {split(a, x, " "); split(b, y, " "); printf "%.1f", (y[1] - x[1]) / (y[2] - x[2])}'; }
BATCH_SQL="CREATE TABLE bat AS SELECT b.idx + 1 AS id, b.response AS r, b.error AS e FROM ai_query_batch('tiny-mixtral-kjv',
     (SELECT json_group_array(body) FROM (SELECT body FROM verses ORDER BY id)), '$P') AS b;"
q "SELECT ai_query_config('concurrency', 256);" "$BATCH_SQL" "DROP TABLE bat;"
MIN_SEQ=0; MIN_BAT=0
for ROUND in 1 2 3 4 5; do
  q "DROP TABLE IF EXISTS seq; DROP TABLE IF EXISTS bat;"
  C0="$(counters)"; T0=$(ms)
  q "CREATE TABLE seq AS SELECT id, ai_query('tiny-mixtral-kjv', body, '$P') AS r FROM verses;"
  T1=$(ms); C1="$(counters)"; T1B=$(ms)
  q "SELECT ai_query_config('concurrency', 256);" "$BATCH_SQL"
  T2=$(ms); C2="$(counters)"
  SEQ_MS=$((T1 - T0)); BAT_MS=$((T2 - T1B))
  { [ "$MIN_SEQ" = 0 ] || [ "$SEQ_MS" -lt "$MIN_SEQ" ]; } && MIN_SEQ=$SEQ_MS
  { [ "$MIN_BAT" = 0 ] || [ "$BAT_MS" -lt "$MIN_BAT" ]; } && MIN_BAT=$BAT_MS
  PER_SEQ="$(rows_per_step "$C0" "$C1")"; PER_BAT="$(rows_per_step "$C1" "$C2")"
  N="$(sqlite3 "$DB" "SELECT COUNT(*), SUM(r IS NOT NULL AND r != ''), SUM(e IS NULL) FROM bat;")"
  [ "$N" = "200|200|200" ] || fail "ai_query_batch rows: $N"
  DIFF="$(sqlite3 "$DB" "SELECT COUNT(*) FROM seq JOIN bat USING (id) WHERE seq.r IS NOT bat.r;")"
  [ "$DIFF" = 0 ] || fail "$DIFF rows differ between sequential and batched greedy answers"
  echo "round $ROUND: 200 rows x 24 tokens: sequential ai_query ${SEQ_MS} ms (${PER_SEQ} rows per step), " \
       "ai_query_batch ${BAT_MS} ms (${PER_BAT} rows per step): $(awk -v a="$BAT_MS" -v b="$SEQ_MS" 'BEGIN{printf "%.2f", a / b}')x the time"
  awk -v r="$PER_SEQ" 'BEGIN {exit !(r <= 1.0)}' || fail "the scalar calls shared steps ($PER_SEQ rows per step)"
  awk -v r="$PER_BAT" 'BEGIN {exit !(r >= 16)}' || fail "ai_query_batch kept only $PER_BAT rows per step"
  [ $((DEN * BAT_MS)) -lt "$SEQ_MS" ] && break
  [ $((DEN * MIN_BAT)) -lt "$MIN_SEQ" ] && { echo "fastest of each: ai_query_batch ${MIN_BAT} ms, sequential ${MIN_SEQ} ms"; break; }
  [ "$ROUND" = 5 ] && fail "ai_query_batch took ${MIN_BAT} ms at best, not under $BOUND of the ${MIN_SEQ} ms (best) of one row at a time, in 5 rounds"
done
# failOnError false in the batch: per-row errors, the statement goes on.
R="$(q "SELECT COUNT(*), SUM(response IS NULL), MIN(error) FROM ai_query_batch('no-such-model', '[\"a\",\"b\"]', '{\"failOnError\":false}');")"
case "$R" in "2|2|ai_query: HTTP 404"*) ;; *) fail "ai_query_batch failOnError false: '$R'";; esac
echo "ok: ai_query_batch"

# The server down: a clear error, and {"error": ...} with failOnError false.
kill "$SERVER_PID"; wait "$SERVER_PID" 2>/dev/null || true; SERVER_PID=""
if OUT="$(q "SELECT ai_query('tiny-mixtral-kjv', 'x');" 2>&1)"; then fail "server down did not fail"; fi
grep -q "ai_query: cannot reach http://127.0.0.1:$PORT" <<<"$OUT" || fail "server down message: $OUT"
R="$(q "SELECT json_extract(ai_query('tiny-mixtral-kjv', 'x', '{\"failOnError\":false}'), '\$.error');")"
grep -q "cannot reach" <<<"$R" || fail "server down, failOnError false: '$R'"
echo "ok: server down"
echo "PASS"
