#!/usr/bin/env bash
# Installs what is missing, builds modike with warnings as errors and runs
# every test suite (unit, plugin, SDK, daemon, interop with strongSwan),
# then all of them again in an AddressSanitizer/UBSan build, then the
# decoder fuzzer for 60 seconds. Needs root (network namespaces, charon).
set -uo pipefail
cd "$(dirname "$0")/.."

scripts/deps.sh || { echo "deps: installation failed"; exit 1; }

setup () { # DIR OPTIONS...
  local dir=$1; shift
  if [ -d "$dir" ]; then meson setup --reconfigure "$dir" "$@" >/dev/null
  else meson setup "$dir" "$@" >/dev/null; fi && ninja -C "$dir"
}

build=${MODIKE_BUILD:-build-test}
asan=${build}-asan
setup "$build" -Dwerror=true || exit 1
setup "$asan" -Dwerror=true -Db_sanitize=address,undefined -Db_lundef=false || exit 1

rc=0
meson test -C "$build" --print-errorlogs --num-processes 2 || rc=1
ASAN_OPTIONS=detect_leaks=1:abort_on_error=1 UBSAN_OPTIONS=halt_on_error=1:print_stacktrace=1 \
  meson test -C "$asan" --print-errorlogs --num-processes 2 || rc=1

fuzz_rc=0
tests/fuzz/run.sh build-fuzz "${MODIKE_FUZZ_SECONDS:-60}" || fuzz_rc=1

# One closing line over everything that ran.
python3 - "$fuzz_rc" "$build/meson-logs/testlog.json" "$asan/meson-logs/testlog.json" <<'PY'
import json, sys
ok = bad = skipped = 0
for log in sys.argv[2:]:
    try:
        lines = open(log).readlines()
    except OSError:
        bad += 1
        continue
    for line in lines:
        r = json.loads(line)["result"]
        if r in ("OK", "EXPECTEDFAIL"): ok += 1
        elif r == "SKIP": skipped += 1
        else: bad += 1
if sys.argv[1] == "0": ok += 1
else: bad += 1
print(f"modike: {ok} passed, {bad} failed" + (f", {skipped} skipped" if skipped else ""))
PY
if [ $rc -ne 0 ] || [ $fuzz_rc -ne 0 ]; then exit 1; fi
grep -q '"result": "SKIP"' "$build/meson-logs/testlog.json" "$asan/meson-logs/testlog.json" &&
  { echo "a test skipped: that is a failure here"; exit 1; }
exit 0
