#!/usr/bin/env bash
# Quick start (b): install dependencies, build, run the whole test suite.
#   scripts/test.sh [ctest args]   the suite (build/), including the
#                                  ISA-sensitive tests again under
#                                  MOESERVE_ISA=avx2 and scalar (label isa)
#   scripts/test.sh --sanitize     one clang build with AddressSanitizer + UBSan
#                                  and libFuzzer coverage (build-asan/): the
#                                  unit, kernel and model tests (the model
#                                  tests also under MOESERVE_ISA=scalar), then every fuzz
#                                  target for 30 s on its corpus (docs/SECURITY.md)
set -euo pipefail
cd "$(dirname "$0")/.."
if [ "${1:-}" = "--sanitize" ]; then
  shift
  scripts/install-deps.sh
  scripts/fuzz.sh --configure
  suites=(core_tests format_tests tokenizer_tests text_tests engine_tests kernels_tests model_tests)
  cmake --build build-asan -j"$(nproc)" --target "${suites[@]}"
  export ASAN_OPTIONS="detect_leaks=1:abort_on_error=0:strict_string_checks=1"
  export UBSAN_OPTIONS="print_stacktrace=1:halt_on_error=1"
  for s in "${suites[@]}"; do
    echo "== $s (ASan+UBSan)"
    (cd build-asan/tests && ./"$s" --gtest_brief=1 "$@")
  done
  # The SIMD kernel files are built without sanitizers (CMakeLists.txt): run
  # the model suite again on the instrumented scalar kernels (the kernel suite
  # above already runs every scalar reference kernel, instrumented, beside
  # each fast one).
  for s in model_tests; do
    echo "== $s (ASan+UBSan, MOESERVE_ISA=scalar)"
    (cd build-asan/tests && MOESERVE_ISA=scalar ./"$s" --gtest_brief=1 "$@")
  done
  exec scripts/fuzz.sh "" "${MOESERVE_FUZZ_SECONDS:-30}"
fi
scripts/install-deps.sh
if [ -f tests/e2e/package.json ]; then
  (cd tests/e2e && npm ci --no-audit --no-fund --loglevel=error)
fi
scripts/build.sh
cd build
ctest --output-on-failure -j"$(nproc)" "$@"
