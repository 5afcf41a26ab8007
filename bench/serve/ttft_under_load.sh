#!/usr/bin/env bash
# Time to first token of a 512-token prompt arriving while 16 streams decode
# (ttft_under_load.mjs), for each --max-step-tokens budget of moeserve, and
# optionally for llama.cpp's llama-server on the same file, runs interleaved.
# Usage: bench/serve/ttft_under_load.sh BIN MODEL [STEP_BUDGETS] [ROUNDS] [LLAMA_SERVER]
#   STEP_BUDGETS: comma-separated --max-step-tokens values (default 128,256,512)
#   LLAMA_SERVER: a llama-server binary; run with -np 17 (16 streams + the probe)
# Environment: THREADS (2), STREAMS (16), PROMPT (512), PROBES (8), STREAM_TOKENS (1024).
set -euo pipefail
ROOT="$(cd "$(dirname "$0")/../.." && pwd)"
BIN="$(realpath "$1")"; MODEL="$(realpath "$2")"
BUDGETS="${3:-128,256,512}"; ROUNDS="${4:-1}"; LLAMA="${5:-}"
THREADS="${THREADS:-2}"; STREAMS="${STREAMS:-16}"; PROMPT="${PROMPT:-512}"; PROBES="${PROBES:-8}"
STREAM_TOKENS="${STREAM_TOKENS:-1024}"
TMP="$(mktemp -d /tmp/ms-ttft-XXXXXX)"
SRV=""
cleanup() { [ -n "$SRV" ] && kill "$SRV" 2>/dev/null; wait 2>/dev/null || true; rm -rf "$TMP"; }
trap cleanup EXIT

wait_port() {  # log file, regex with the port last -> port on stdout (bounded: 10 minutes)
  local port=""
  for _ in $(seq 6000); do
    port="$(grep -Eo "$2" "$1" 2>/dev/null | grep -Eo '[0-9]+$' | head -1 || true)"
    [ -n "$port" ] && curl -sf "http://127.0.0.1:$port/health" >/dev/null && { echo "$port"; return; }
    kill -0 "$SRV" 2>/dev/null || { cat "$1" >&2; return 1; }
    sleep 0.1
  done
  return 1
}

probe() {  # label, port
  node "$ROOT/bench/serve/ttft_under_load.mjs" --url "http://127.0.0.1:$2" --streams "$STREAMS" \
    --prompt-tokens "$PROMPT" --probes "$PROBES" --stream-tokens "$STREAM_TOKENS" --label "$1"
}

run_moeserve() {  # budget
  "$BIN" serve -m "$MODEL" --host 127.0.0.1 --port 0 --threads "$THREADS" --max-batch 32 \
    --max-step-tokens "$1" 2>"$TMP/ms.log" &
  SRV=$!
  local port; port="$(wait_port "$TMP/ms.log" 'listening on http://127.0.0.1:[0-9]+')"
  probe "moeserve --max-step-tokens $1" "$port"
  kill "$SRV"; wait "$SRV" 2>/dev/null || true; SRV=""
}

run_llama() {
  local port; port="$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')"
  "$LLAMA" -m "$MODEL" --host 127.0.0.1 --port "$port" -t "$THREADS" -np $((STREAMS + 1)) \
    -c $(((STREAMS + 1) * (STREAM_TOKENS + PROMPT + 64))) >"$TMP/llama.log" 2>&1 &
  SRV=$!
  wait_port "$TMP/llama.log" "127.0.0.1:$port" >/dev/null
  probe "llama-server -np $((STREAMS + 1))" "$port"
  kill "$SRV"; wait "$SRV" 2>/dev/null || true; SRV=""
}

for r in $(seq "$ROUNDS"); do
  for b in ${BUDGETS//,/ }; do run_moeserve "$b"; done
  [ -n "$LLAMA" ] && run_llama
done
