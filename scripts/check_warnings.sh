#!/usr/bin/env bash
# Warnings as errors without a full build: configures build-werror-<cc>-<type>
# with -DMOESERVE_WERROR=ON and runs every translation unit of its
# compile_commands.json with -fsyntax-only (no code generation, no link).
#   scripts/check_warnings.sh clang Release|Debug
#   scripts/check_warnings.sh gcc Debug
# Clang's warnings come from its front end, so this reports what a full build
# of that configuration would. GCC also warns from its optimiser
# (-Wmaybe-uninitialized, -Warray-bounds, ...), so GCC Release needs the real
# build (cmake -DMOESERVE_WERROR=ON; scripts/build.sh's flags otherwise).
set -euo pipefail
cd "$(dirname "$0")/.."
cc="${1:-}" type="${2:-}"
case "$cc" in clang) cxx=clang++ ;; gcc) cxx=g++ ;; *) echo "usage: $0 clang|gcc Debug|Release" >&2; exit 2 ;; esac
case "$type" in Debug|Release) ;; *) echo "usage: $0 clang|gcc Debug|Release" >&2; exit 2 ;; esac
dir="build-werror-$cc-${type,,}"
cmake -S . -B "$dir" -DCMAKE_BUILD_TYPE="$type" -DCMAKE_CXX_COMPILER="$cxx" -DMOESERVE_WERROR=ON >/dev/null
cmake --build "$dir" --target ms_playground >/dev/null  # its generated source (embedded page assets)
python3 - "$dir/compile_commands.json" > "$dir/syntax_commands.sh" <<'PY'
import json, shlex, sys
for e in json.load(open(sys.argv[1])):
    if "/tests/layering/" in e["file"]:
        continue  # the layering probes must fail to compile (tests/layering)
    args = shlex.split(e["command"])
    out = [a for i, a in enumerate(args) if a != "-o" and (i == 0 or args[i - 1] != "-o")]
    print("cd %s && %s -fsyntax-only" % (shlex.quote(e["directory"]), " ".join(map(shlex.quote, out))))
PY
n=$(wc -l < "$dir/syntax_commands.sh")
echo "== $cxx $type, -Werror: $n translation units (-fsyntax-only)"
if xargs -d '\n' -P "$(nproc)" -I{} bash -c '{}' < "$dir/syntax_commands.sh" > "$dir/warnings.log" 2>&1; then
  echo "== clean"
else
  grep -E "error|warning" "$dir/warnings.log" | head -n 40
  echo "== FAILED: $dir/warnings.log"
  exit 1
fi
