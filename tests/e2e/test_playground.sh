#!/usr/bin/env bash
# The playground page in a real browser (Debian's chromium, headless, driven by
# npm playwright-core) against real `moeserve serve` instances on the bundled
# model. Usage: test_playground.sh /path/to/moeserve [--update-screenshots]
# (--update-screenshots rewrites docs/images/playground-*.png).
set -euo pipefail
BIN="$(realpath "${1:?usage: $0 /path/to/moeserve [--update-screenshots]}")"
shift
HERE="$(cd "$(dirname "$0")" && pwd)"
command -v node >/dev/null || { echo "node is required" >&2; exit 1; }
CHROMIUM="${CHROMIUM:-/usr/bin/chromium}"
[ -x "$CHROMIUM" ] || { echo "chromium is required at $CHROMIUM (scripts/install-deps.sh installs it)" >&2; exit 1; }
if [ ! -d "$HERE/node_modules/playwright-core" ]; then
  (cd "$HERE" && npm ci --no-audit --no-fund --loglevel=error)
fi
UPDATE=0
for a in "$@"; do
  case "$a" in
    --update-screenshots) UPDATE=1 ;;
    *) echo "unknown argument: $a" >&2; exit 2 ;;
  esac
done
cd "$HERE"
MOESERVE_BIN="$BIN" CHROMIUM="$CHROMIUM" UPDATE_SCREENSHOTS="$UPDATE" \
  exec timeout 300 node --test --test-concurrency=1 --test-reporter=spec playground.test.mjs
