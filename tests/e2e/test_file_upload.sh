#!/usr/bin/env bash
# POST /v1/files streams to disk: a 24 MiB JSONL upload (over --max-body-mb,
# within --max-file-mb) succeeds byte for byte while the server's peak RSS
# grows by far less than the file; a chunked upload over --max-file-mb is cut
# off mid-stream with 413 file_too_large; malformed multipart is 400; no part
# file is left behind; downloading the file and running a batch over a
# 24 MiB input keep the peak RSS as flat; an upload with a wrong key gets its
# 401 before its body. Usage: test_file_upload.sh /path/to/moeserve
set -euo pipefail
BIN="$(realpath "${1:?usage: $0 /path/to/moeserve}")"
. "$(dirname "$0")/lib/serve.sh"
hwm_kb() { awk '/^VmHWM:/ {print $2}' "/proc/$SERVER_PID/status"; }

serve_start "$TMP/server.log" --data-dir "$TMP/data" --max-body-mb 1 --max-file-mb 32 --batch-window 4
URL="http://127.0.0.1:$PORT/v1/files"

# 24 MiB of JSONL lines (~250 bytes each).
PAD="$(printf 'x%.0s' $(seq 1 160))"
awk -v pad="$PAD" 'BEGIN { for (i = 0; i < 100000; i++)
  printf "{\"custom_id\":\"r%d\",\"method\":\"POST\",\"url\":\"/v1/completions\",\"body\":{\"prompt\":\"%s\"}}\n", i, pad }' >"$TMP/big.jsonl"
SIZE=$(stat -c %s "$TMP/big.jsonl")
[ "$SIZE" -gt $((20 << 20)) ] || fail "test file only $SIZE bytes"

# A warm-up upload so that the baseline includes the upload path's own memory.
printf '{"a":1}\n' >"$TMP/small.jsonl"
curl -sf -F purpose=batch -F "file=@$TMP/small.jsonl" "$URL" >/dev/null || fail "small upload"
BEFORE=$(hwm_kb)
OUT="$(curl -s -w '\n%{http_code}' -F purpose=batch -F "file=@$TMP/big.jsonl" "$URL")"
[ "$(tail -1 <<<"$OUT")" = 200 ] || fail "big upload: $OUT"
ID="$(head -1 <<<"$OUT" | sed -n 's/.*"id": *"\([^"]*\)".*/\1/p')"
grep -q "\"bytes\": *$SIZE" <<<"$OUT" || fail "big upload bytes: $OUT"
GROWTH=$(( $(hwm_kb) - BEFORE ))
echo "24 MiB upload: peak RSS grew by ${GROWTH} KiB"
[ "$GROWTH" -lt $((SIZE / 1024 / 4)) ] || fail "peak RSS grew by ${GROWTH} KiB for a $((SIZE / 1024)) KiB upload"
echo "ok: a 24 MiB upload streamed to disk"
# And back: the content is sent as it is read from the file (a slow reader,
# 8 MiB/s, keeps the server writing for a while), not held in memory.
BEFORE=$(hwm_kb)
curl -sf --limit-rate 8M "$URL/$ID/content" | cmp - "$TMP/big.jsonl" || fail "the stored file differs from the upload"
GROWTH=$(( $(hwm_kb) - BEFORE ))
echo "24 MiB download: peak RSS grew by ${GROWTH} KiB"
[ "$GROWTH" -lt $((SIZE / 1024 / 4)) ] || fail "peak RSS grew by ${GROWTH} KiB for a $((SIZE / 1024)) KiB download"
echo "ok: a 24 MiB download streamed from disk"

# A batch over a 24 MiB input (200 lines of ~120 KiB: a long "user" field,
# one token each) runs without holding the file or its requests: the runner
# keeps each line's offset and reads a body back when the line is submitted
# (--batch-window 4: four in flight).
USERPAD="$(head -c $((120 << 10)) /dev/zero | tr '\0' 'u')"
awk -v pad="$USERPAD" 'BEGIN { for (i = 0; i < 200; i++)
  printf "{\"custom_id\":\"u%d\",\"method\":\"POST\",\"url\":\"/v1/completions\",\"body\":{\"prompt\":\"And God said\",\"max_tokens\":1,\"user\":\"%s\"}}\n", i, pad }' >"$TMP/wide.jsonl"
WSIZE=$(stat -c %s "$TMP/wide.jsonl")
FID="$(curl -sf -F purpose=batch -F "file=@$TMP/wide.jsonl" "$URL" | sed -n 's/.*"id": *"\([^"]*\)".*/\1/p')"
[ -n "$FID" ] || fail "wide upload"
BEFORE=$(hwm_kb)
BID="$(curl -sf -H 'Content-Type: application/json' \
  -d "{\"input_file_id\":\"$FID\",\"endpoint\":\"/v1/completions\",\"completion_window\":\"24h\"}" \
  "http://127.0.0.1:$PORT/v1/batches" | sed -n 's/.*"id": *"\([^"]*\)".*/\1/p')"
[ -n "$BID" ] || fail "batch create"
STATUS=""
for _ in $(seq 1 600); do  # bounded: 60 s
  STATUS="$(curl -sf "http://127.0.0.1:$PORT/v1/batches/$BID" | sed -n 's/.*"status": *"\([^"]*\)".*/\1/p')"
  case "$STATUS" in completed|failed|expired|cancelled) break;; esac
  sleep 0.1
done
[ "$STATUS" = completed ] || fail "the wide batch ended '$STATUS'"
curl -sf "http://127.0.0.1:$PORT/v1/batches/$BID" | grep -q '"completed": *200' || fail "the wide batch's counts"
GROWTH=$(( $(hwm_kb) - BEFORE ))
echo "batch over a $((WSIZE >> 20)) MiB input: peak RSS grew by ${GROWTH} KiB"
[ "$GROWTH" -lt $((WSIZE / 1024 / 4)) ] || fail "peak RSS grew by ${GROWTH} KiB for a batch over $((WSIZE / 1024)) KiB"
echo "ok: a batch reads its input as it runs"

# Over --max-file-mb without a Content-Length (chunked): cut off mid-stream.
head -c $((36 << 20)) /dev/zero | tr '\0' '\n' >"$TMP/huge.jsonl"
cat "$TMP/big.jsonl" >>"$TMP/huge.jsonl"
OUT="$(curl -s -w '\n%{http_code}' -H 'Transfer-Encoding: chunked' -F purpose=batch -F "file=@$TMP/huge.jsonl" "$URL")"
[ "$(tail -1 <<<"$OUT")" = 413 ] && grep -q '"code": *"file_too_large"' <<<"$OUT" || fail "oversized upload: $OUT"
# With a Content-Length over the limit: 413 before the body is read.
OUT="$(curl -s -w '\n%{http_code}' -F purpose=batch -F "file=@$TMP/huge.jsonl" "$URL")"
[ "$(tail -1 <<<"$OUT")" = 413 ] || fail "oversized upload with a length: $OUT"
echo "ok: oversized uploads are 413"

# Malformed multipart: 400, and the server goes on.
bad() {
  local code
  code="$(curl -s -o "$TMP/resp" -w '%{http_code}' -H "Content-Type: $1" --data-binary "$2" "$URL")"
  [ "$code" = 400 ] || fail "malformed multipart ($3): HTTP $code $(cat "$TMP/resp")"
}
bad 'multipart/form-data; boundary=XX' $'--XX\r\nContent-Disposition: form-data; name="file"; filename="a.jsonl"\r\n\r\n{"a":1}\n' "unterminated part"
bad 'multipart/form-data; boundary=XX' $'--XX garbage\r\n' "bad delimiter"
bad 'multipart/form-data' $'--XX\r\n\r\n--XX--' "no boundary"
bad 'application/json' '{"file":"x"}' "not multipart"
bad 'multipart/form-data; boundary=XX' $'--XX\r\nContent-Disposition: form-data; name="purpose"\r\n\r\nbatch\r\n--XX--\r\n' "no file part"
OUT="$(curl -s -F purpose=batch -F "file=@$TMP/small.jsonl" "$URL")"
grep -q '"object": *"file"' <<<"$OUT" || fail "upload after errors: $OUT"
echo "ok: malformed multipart is 400"

LEFT="$(find "$TMP/data" -name 'upload-*' | wc -l)"
[ "$LEFT" = 0 ] || fail "$LEFT part files left in the files directory"

# With a key: an upload's key is checked before its body is read. Headers
# announcing 24 MiB with a wrong key get their 401 at once, without one byte
# of the body sent (the body timeout is 30 s); with Expect: 100-continue the
# client is never asked for the body; nothing reaches the files directory.
kill "$SERVER_PID"; wait "$SERVER_PID" 2>/dev/null || true; SERVER_PID=""
serve_start "$TMP/server2.log" --data-dir "$TMP/data2" --api-key sekrit --max-file-mb 32
URL="http://127.0.0.1:$PORT/v1/files"
exec 3<>"/dev/tcp/127.0.0.1/$PORT"
printf 'POST /v1/files HTTP/1.1\r\nHost: 127.0.0.1\r\nAuthorization: Bearer wrong\r\nContent-Type: multipart/form-data; boundary=XX\r\nContent-Length: %d\r\n\r\n' $((24 << 20)) >&3
STATUS="$(timeout 5 head -1 <&3 | tr -d '\r')" || true
exec 3<&- 3>&-
[ "$STATUS" = "HTTP/1.1 401 Unauthorized" ] || fail "headers of an upload with a wrong key: '$STATUS' (want a 401 before the body)"
OUT="$(curl -s -w '\n%{http_code}' -H 'Expect: 100-continue' -H 'Authorization: Bearer wrong' -F purpose=batch -F "file=@$TMP/big.jsonl" "$URL")"
[ "$(tail -1 <<<"$OUT")" = 401 ] || fail "upload with a wrong key: $OUT"
OUT="$(curl -s -w '\n%{http_code}' -F purpose=batch -F "file=@$TMP/small.jsonl" "$URL")"
[ "$(tail -1 <<<"$OUT")" = 401 ] || fail "upload without a key: $OUT"
[ -z "$(find "$TMP/data2" -name 'upload-*' -o -name 'file-*' | head -1)" ] || fail "a refused upload left a file behind"
OUT="$(curl -s -w '\n%{http_code}' -H 'Authorization: Bearer sekrit' -F purpose=batch -F "file=@$TMP/small.jsonl" "$URL")"
[ "$(tail -1 <<<"$OUT")" = 200 ] || fail "upload with the key: $OUT"
echo "ok: an upload's key is checked before its body"
echo "PASS"
