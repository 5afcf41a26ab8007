#!/usr/bin/env bash
# `moeserve batch` offline on the bundled model: output and error files in the
# Batch API's line format, the summary line and the progress bar (on a
# terminal), kill -9 mid-run then --resume (every custom_id exactly once),
# and bad input (exit 2, one line). Usage: test_batch_cli.sh /path/to/moeserve
set -euo pipefail
BIN="$(realpath "${1:?usage: $0 /path/to/moeserve}")"
TMP="$(mktemp -d)"
PID=""
cleanup() {
  if [ -n "$PID" ]; then kill -9 "$PID" 2>/dev/null || true; wait "$PID" 2>/dev/null || true; fi
  rm -rf "$TMP"
}
trap cleanup EXIT
fail() { echo "FAIL: $*" >&2; exit 1; }
cd "$TMP"

line() {  # custom_id, max_tokens
  printf '{"custom_id":"%s","method":"POST","url":"/v1/chat/completions","body":{"messages":[{"role":"user","content":"Verse %s"}],"max_tokens":%s,"temperature":0}}\n' "$1" "$1" "$2"
}
for i in $(seq 1 12); do line "c$i" 8; done > in.jsonl
printf '{"custom_id":"p1","method":"POST","url":"/v1/completions","body":{"prompt":"And God said","max_tokens":8,"temperature":0}}\n' >> in.jsonl
printf '{"custom_id":"bad","method":"POST","url":"/v1/embeddings","body":{}}\n' >> in.jsonl

"$BIN" batch -i in.jsonl -o out.jsonl --errors err.jsonl 2>log.txt || { cat log.txt >&2; fail "batch failed"; }
[ "$(wc -l < out.jsonl)" = 13 ] || fail "expected 13 output lines, got $(wc -l < out.jsonl)"
[ "$(wc -l < err.jsonl)" = 1 ] || fail "expected 1 error line"
grep -q '"custom_id":"bad".*"code":"mismatched_endpoint"' err.jsonl || fail "error line: $(cat err.jsonl)"
grep -q '"custom_id":"p1".*"object":"text_completion"' out.jsonl || fail "completions line missing"
grep -q '"status_code":200' out.jsonl || fail "no status_code 200"
grep -q "moeserve batch: 14 lines: 13 ok, 1 failed" log.txt || fail "summary line: $(cat log.txt)"
! grep -q $'\r\[' log.txt || fail "progress bar written to a non-terminal"
# Greedy: a second run gives the same answers.
"$BIN" batch -i in.jsonl -o out2.jsonl 2>/dev/null
extract() { sed -E 's/.*"custom_id":"([^"]*)".*"(content|text)":"([^"]*)".*/\1 \3/' "$1" | sort; }
[ "$(extract out.jsonl)" = "$(extract <(grep -v '"bad"' out2.jsonl))" ] || fail "a second run differs"
[ "$(wc -l < out2.jsonl)" = 14 ] || fail "without --errors, failed lines go to the output file"
echo "ok: output and error files, summary"

# The progress bar on a terminal (script(1) gives one).
if command -v script >/dev/null; then
  script -qec "'$BIN' batch -i in.jsonl -o tty.jsonl" /dev/null > tty.txt 2>&1 || true
  grep -q "14/14 lines" tty.txt || fail "no progress bar on a terminal: $(cat tty.txt)"
  grep -q "tok/s  ETA" tty.txt || fail "progress bar without tok/s and ETA"
  echo "ok: progress bar"
fi

# Refuses to overwrite; bad input is one line, exit 2.
set +e
"$BIN" batch -i in.jsonl -o out.jsonl 2>e1.txt; RC1=$?
printf 'not json\n' > bad.jsonl
"$BIN" batch -i bad.jsonl -o x.jsonl 2>e2.txt; RC2=$?
"$BIN" batch -i missing.jsonl -o y.jsonl 2>e3.txt; RC3=$?
set -e
[ $RC1 = 2 ] && grep -q "exists and is not empty: pass --resume" e1.txt || fail "overwrite: rc $RC1 $(cat e1.txt)"
[ $RC2 = 2 ] && grep -q "not a JSONL file (line 1 is not valid JSON)" e2.txt || fail "bad input: rc $RC2 $(cat e2.txt)"
[ $RC3 = 2 ] && [ "$(wc -l < e3.txt)" = 1 ] || fail "missing input: rc $RC3 $(cat e3.txt)"
echo "ok: bad input"

# kill -9 mid-run, then --resume: every custom_id exactly once. (300 lines:
# a fast host runs a window of 4 in ~10 ms, and the poll below is 50 ms.)
N=300
for i in $(seq 1 $N); do line "k$i" 32; done > big.jsonl
"$BIN" batch -i big.jsonl -o big.out --window 4 --max-batch 4 2>/dev/null &
PID=$!
for _ in $(seq 1 600); do
  [ -f big.out ] && [ "$(wc -l < big.out)" -ge 6 ] && break
  sleep 0.05
done
kill -9 "$PID"; wait "$PID" 2>/dev/null || true; PID=""
BEFORE="$(wc -l < big.out)"
[ "$BEFORE" -ge 6 ] && [ "$BEFORE" -lt $N ] || fail "killed at $BEFORE lines, not mid-run"
printf '{"custom_id":"torn",' >> big.out   # a line cut by the crash
"$BIN" batch -i big.jsonl -o big.out --resume 2>resume.txt || { cat resume.txt >&2; fail "resume failed"; }
grep -q "already done" resume.txt || fail "resume summary: $(cat resume.txt)"
IDS="$(sed -E 's/.*"custom_id":"([^"]*)".*/\1/' big.out | sort)"
[ "$IDS" = "$(seq 1 $N | sed 's/^/k/' | sort)" ] || fail "after --resume the custom_ids are not each exactly once"
echo "ok: kill -9 at $BEFORE/$N lines, --resume completes"
echo "PASS"
