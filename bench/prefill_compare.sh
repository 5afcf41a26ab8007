#!/usr/bin/env bash
# Prefill side by side: moeserve against ik_llama.cpp's llama-bench (run-time
# repacking, -rtr 1) and mainline llama.cpp's llama-bench on the same GGUF
# files, interleaved run by run (file by file, tool by tool, ROUNDS times) so
# that all see the same machine; medians per tool, file and prompt length,
# and moeserve's ratio to each. moeserve also reports its first prefill
# after load ("cold") and the fraction of the probed int8 peak.
# Usage: bench/prefill_compare.sh MOESERVE IK_LLAMA_BENCH|- LLAMA_BENCH|- FILE...
# Environment: THREADS (2), LENGTHS (128,512), ROUNDS (3); IK_ARGS (-rtr 1) and
# LLAMA_ARGS (none): extra llama-bench flags, e.g. IK_ARGS="-rtr 1 -fa 0" for an
# ik_llama.cpp built without its flash-attention kernels.
# Not a test: timings, no assertions.
set -euo pipefail
MS="$1"; IK="$2"; LL="$3"; shift 3
THREADS="${THREADS:-2}"; LENGTHS="${LENGTHS:-128,512}"; ROUNDS="${ROUNDS:-3}"
OUT="$(mktemp /tmp/ms-prefill-XXXXXX.tsv)"
echo "machine: $(nproc) CPUs, load average $(cut -d' ' -f1-3 /proc/loadavg); threads $THREADS; rounds $ROUNDS; $(date -u)"
for r in $(seq "$ROUNDS"); do
  for f in "$@"; do
    name="$(basename "$f")"
    j="$("$MS" bench -m "$f" --threads "$THREADS" --prompt "$LENGTHS" --batch none --reps 1 2>/dev/null | tail -1)"
    python3 -c '
import json, sys
j = json.loads(sys.argv[1]); r, f = sys.argv[2], sys.argv[3]
for L, v in j["prefill_tok_s"].items():
    print(f"{r}\t{f}\tmoeserve\t{L}\t{v:.2f}")
    fr = j.get("prefill_int8_fraction", {})
    if L in fr: print(f"{r}\t{f}\tmoeserve_int8_fraction\t{L}\t{fr[L]:.3f}")
for L, v in j["prefill_cold_tok_s"].items(): print(f"{r}\t{f}\tmoeserve_cold\t{L}\t{v:.2f}")
peak = j.get("int8_peak_gmacs")
if peak: print(f"{r}\t{f}\tint8_peak_gmacs\t-\t{peak:.1f}")
' "$j" "$r" "$name" | tee -a "$OUT"
    for tool in ik llama; do
      bin="$IK"; read -r -a extra <<< "${IK_ARGS:--rtr 1}"
      [ "$tool" = llama ] && { bin="$LL"; read -r -a extra <<< "${LLAMA_ARGS:-}"; }
      [ "$bin" = - ] && continue
      [ -x "$bin" ] || { echo "skipping $tool: $bin is not an executable" >&2; continue; }
      "$bin" -m "$f" -t "$THREADS" -p "$LENGTHS" -n 0 -r 1 "${extra[@]}" -o json 2>/dev/null | python3 -c '
import json, sys
r, f, tool = sys.argv[1:4]
for row in json.load(sys.stdin):
    if row.get("n_gen", 0) == 0 and row.get("n_prompt", 0) > 0:
        n, ts = row["n_prompt"], row["avg_ts"]
        print(f"{r}\t{f}\t{tool}\t{n}\t{ts:.2f}")
' "$r" "$name" "$tool" | tee -a "$OUT"
    done
  done
done
python3 - "$OUT" <<'PY'
import statistics, sys, collections
v = collections.defaultdict(list)
for line in open(sys.argv[1]):
    r, f, tool, L, x = line.rstrip("\n").split("\t")
    v[(f, tool, L)].append(float(x))
med = {k: statistics.median(x) for k, x in v.items()}
print("\nmedians (tok/s unless named):")
for (f, tool, L), m in sorted(med.items()):
    print(f"  {f:28s} {tool:24s} {L:>5s} {m:9.2f}   (runs: {', '.join(f'{x:.1f}' for x in v[(f, tool, L)])})")
print("\nmoeserve / other (medians):")
for (f, tool, L), m in sorted(med.items()):
    if tool in ("ik", "llama") and (f, "moeserve", L) in med:
        print(f"  {f:28s} {L:>5s} vs {tool:6s}: {med[(f, 'moeserve', L)] / m:.2f}x")
PY
rm -f "$OUT"
