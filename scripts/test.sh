#!/usr/bin/env bash
# Quick start (b): install dependencies, build, run the whole test suite.
#   scripts/test.sh [ctest args]   the suite (build/), including the
#                                  ISA-sensitive tests again under
#                                  MOESERVE_ISA=avx2 and scalar (label isa)
#   scripts/test.sh --sanitize     the unit, kernel and model tests built with
#                                  AddressSanitizer + UBSan (build-asan/)
set -euo pipefail
cd "$(dirname "$0")/.."
if [ "${1:-}" = "--sanitize" ]; then
  shift
  scripts/install-deps.sh
  cmake -S . -B build-asan -DCMAKE_BUILD_TYPE=Release -DMOESERVE_BUILD_BENCH=OFF -DMOESERVE_SANITIZE=ON >/dev/null
  suites=(core_tests engine_tests kernels_tests model_tests)
  cmake --build build-asan -j"$(nproc)" --target "${suites[@]}"
  export ASAN_OPTIONS="detect_leaks=1:abort_on_error=0:strict_string_checks=1"
  export UBSAN_OPTIONS="print_stacktrace=1:halt_on_error=1"
  for s in "${suites[@]}"; do
    echo "== $s (ASan+UBSan)"
    (cd build-asan/tests && ./"$s" --gtest_brief=1 "$@")
  done
  exit 0
fi
scripts/install-deps.sh
if [ -f tests/e2e/package.json ]; then
  (cd tests/e2e && npm ci --no-audit --no-fund --loglevel=error)
fi
scripts/build.sh
cd build
ctest --output-on-failure -j"$(nproc)" "$@"
