#!/usr/bin/env bash
# Builds the libFuzzer targets (clang, ASan + UBSan) into build-asan and runs
# them on their seed corpora (tests/fuzz/corpus/TARGET).
#   scripts/fuzz.sh                 every target, 30 s each (the CI smoke)
#   scripts/fuzz.sh gguf 600        one target (gguf|safetensors|requests|tokenizer), 600 s
# New inputs found go to build-asan/corpus/TARGET (the committed seeds stay
# as they are); a crash leaves build-asan/crash-* and a non-zero exit. Keep a
# fixed crash as a regression seed: copy it into tests/fuzz/corpus/TARGET.
set -euo pipefail
cd "$(dirname "$0")/.."
command -v clang++ >/dev/null || { echo "fuzz.sh: clang++ not found (Debian: clang libclang-rt-14-dev)" >&2; exit 2; }
# The same build as `scripts/test.sh --sanitize` (build-asan): clang, -O1,
# ASan + UBSan + libFuzzer coverage, warnings as errors (CI's clang -Werror
# check, at no extra build); --configure only configures it.
cmake -S . -B build-asan -DCMAKE_BUILD_TYPE=Sanitize -DCMAKE_CXX_FLAGS_SANITIZE="-O1 -gline-tables-only" \
  -DCMAKE_CXX_COMPILER=clang++ -DMOESERVE_FUZZ=ON -DMOESERVE_BUILD_BENCH=OFF -DMOESERVE_WERROR=ON >/dev/null
[ "${1:-}" = "--configure" ] && exit 0
targets=(gguf safetensors requests tokenizer)
[ $# -ge 1 ] && [ -n "$1" ] && targets=("$1")
secs="${2:-30}"
cmake --build build-asan -j"$(nproc)" --target "${targets[@]/#/fuzz_}"
export ASAN_OPTIONS="detect_leaks=1:abort_on_error=1:${ASAN_OPTIONS:-}"
export UBSAN_OPTIONS="print_stacktrace=1:halt_on_error=1:${UBSAN_OPTIONS:-}"
status=0
for t in "${targets[@]}"; do
  mkdir -p "build-asan/corpus/$t"
  echo "== fuzz_$t: ${secs}s"
  if ! (cd build-asan && "./tests/fuzz/fuzz_$t" -max_total_time="$secs" -timeout=10 -rss_limit_mb=2048 \
        -max_len=1048576 -print_final_stats=1 "corpus/$t" "../tests/fuzz/corpus/$t" 2>&1 | tail -n 20); then
    echo "fuzz_$t: FAILED (see build-asan/crash-* or the report above)"
    status=1
  fi
done
exit $status
