# Sourced by e2e shell tests: a temp dir, a server on a free loopback port,
# and the cleanup of both.
#   sourcing it sets TMP (removed at exit, with SERVER_PID killed if set) and fail()
#   serve_start LOG ARGS...   runs "$BIN" serve --host 127.0.0.1 --port 0 ARGS... (stderr to LOG)
# and waits (bounded: 60 s) until /health answers. Sets SERVER_PID and PORT;
# on failure prints the log and exits 1.
TMP="$(mktemp -d)"
SERVER_PID=""
cleanup() {
  if [ -n "$SERVER_PID" ]; then kill "$SERVER_PID" 2>/dev/null || true; wait "$SERVER_PID" 2>/dev/null || true; fi
  rm -rf "$TMP"
}
trap cleanup EXIT
fail() { echo "FAIL: $*" >&2; exit 1; }

serve_start() {
  local log="$1"; shift
  "$BIN" serve --host 127.0.0.1 --port 0 "$@" 2>"$log" &
  SERVER_PID=$!
  PORT=""
  for _ in $(seq 1 600); do
    PORT="$(grep -o 'listening on http://127.0.0.1:[0-9]*' "$log" | head -1 | sed 's/.*://')" || true
    [ -n "$PORT" ] && curl -sf "http://127.0.0.1:$PORT/health" >/dev/null 2>&1 && return 0
    kill -0 "$SERVER_PID" 2>/dev/null || { cat "$log" >&2; echo "FAIL: server exited" >&2; exit 1; }
    sleep 0.1
  done
  echo "FAIL: server did not start" >&2
  exit 1
}
