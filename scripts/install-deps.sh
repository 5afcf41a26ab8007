#!/usr/bin/env bash
# Installs moeserve's build and test dependencies on Debian 12.
set -euo pipefail
PKGS=(build-essential cmake pkg-config git
      libsentencepiece-dev nlohmann-json3-dev libcli11-dev libboost-dev
      libgtest-dev libgmock-dev libbenchmark-dev nodejs npm
      chromium                        # the playground's browser tests
      libsqlite3-dev sqlite3 libpq-dev postgresql  # governance: SQLite state (+ shell); PostgreSQL client + server for its tests
      nginx                           # the replica test's load balancer (started by the test, on loopback)
      libtomlplusplus-dev             # moeserve serve --config (TOML)
      libcurl4-openssl-dev            # ai_query: the SQLite extension's HTTP client (the sqlite3 shell above runs its test)
      clang libclang-rt-14-dev)       # the fuzzers and the sanitizer build
SUDO=""
if [ "$(id -u)" -ne 0 ]; then SUDO="sudo"; fi
missing=()
for p in "${PKGS[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
# node/npm may come from elsewhere than Debian's packages.
if command -v node >/dev/null && command -v npm >/dev/null; then
  missing=("${missing[@]/nodejs}"); missing=("${missing[@]/npm}")
fi
read -r -a missing <<<"${missing[*]:-}"
if [ "${#missing[@]}" -gt 0 ]; then
  echo "installing: ${missing[*]}"
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq "${missing[@]}"
fi
