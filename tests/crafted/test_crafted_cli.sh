#!/usr/bin/env bash
# Crafted GGUF files through the real binary: `generate`, `logits`,
# `perplexity`, `bench` and `serve` each exit 2 with one line
# "moeserve: error: FILE: ..." naming the bad field, within a time limit, and
# `serve` never reports ready. The valid tiny model runs.
set -uo pipefail
bin="$1"; make_crafted="$2"
dir="$(mktemp -d)"; trap 'rm -rf "$dir"' EXIT
"$make_crafted" "$dir" || { echo "make_crafted failed"; exit 1; }
fail=0; n=0
check() {  # name expect-part command...
  local name="$1" part="$2"; shift 2
  n=$((n + 1))
  timeout 60 "$@" >"$dir/out" 2>"$dir/err"; local rc=$?
  local lines; lines=$(wc -l <"$dir/err")
  if [ "$rc" -ne 2 ] || [ "$lines" -ne 1 ] || ! grep -q "^moeserve: error: .*$part" "$dir/err" || grep -q "listening\|ready" "$dir/out"; then
    echo "FAIL $name: rc=$rc (want 2), stderr lines=$lines:"; head -c 600 "$dir/err"; echo
    fail=$((fail + 1))
  fi
}
echo "hello" >"$dir/text.txt"
for f in "$dir"/bad-*.gguf; do
  name=$(basename "$f" .gguf); part=$(cat "$dir/$name.expect")
  check "$name generate" "$part" "$bin" generate -m "$f" --ids 1,2,3 -n 2
  check "$name logits" "$part" "$bin" logits -m "$f" --ids 1,2 --out "$dir/l.f32"
  check "$name perplexity" "$part" "$bin" perplexity -m "$f" -f "$dir/text.txt" --ctx 8
  check "$name bench" "$part" "$bin" bench -m "$f" --prompt 4 --gen 2 --batch 1 --reps 1
  check "$name serve" "$part" "$bin" serve -m "$f" --host 127.0.0.1 --port 0
done
# Invalid UTF-8 in text flags: one clear line, exit 2.
check "stop not UTF-8" "--stop: .*not valid UTF-8" "$bin" generate -m "$dir/ok.gguf" --ids 1,2 --stop $'a\xff'
check "prompt not UTF-8" "-p: .*not valid UTF-8" "$bin" generate -m "$dir/ok.gguf" -p $'\xc3('
# The valid base model runs (token ids only: it has no tokenizer).
n=$((n + 1))
if ! timeout 60 "$bin" generate -m "$dir/ok.gguf" --ids 1,2,3 -n 4 --ignore-eos --json >"$dir/out" 2>"$dir/err"; then
  echo "FAIL ok.gguf generate:"; cat "$dir/err"; fail=$((fail + 1))
fi
echo "$((n - fail)) passed, $fail failed"
[ "$fail" -eq 0 ]
