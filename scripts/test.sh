#!/usr/bin/env bash
# Installs what is missing, builds modike with warnings as errors and runs
# every test suite (unit, plugin, SDK, interop with strongSwan) and the
# decoder fuzzer for 60 seconds. Needs root (network namespaces, charon).
set -uo pipefail
cd "$(dirname "$0")/.."

scripts/deps.sh || { echo "deps: installation failed"; exit 1; }

build=${MODIKE_BUILD:-build-test}
if [ -d "$build" ]; then
  meson setup --reconfigure "$build" -Dwerror=true >/dev/null || exit 1
else
  meson setup "$build" -Dwerror=true >/dev/null || exit 1
fi
ninja -C "$build" || exit 1

rc=0
meson test -C "$build" --print-errorlogs --num-processes 2 || rc=1

fuzz_rc=0
tests/fuzz/run.sh build-fuzz "${MODIKE_FUZZ_SECONDS:-60}" || fuzz_rc=1

# One closing line over everything that ran.
python3 - "$build/meson-logs/testlog.json" "$fuzz_rc" <<'PY'
import json, sys
ok = bad = skipped = 0
for line in open(sys.argv[1]):
    r = json.loads(line)["result"]
    if r in ("OK", "EXPECTEDFAIL"): ok += 1
    elif r == "SKIP": skipped += 1
    else: bad += 1
if sys.argv[2] == "0": ok += 1
else: bad += 1
print(f"modike: {ok} passed, {bad} failed" + (f", {skipped} skipped" if skipped else ""))
PY
if [ $rc -ne 0 ] || [ $fuzz_rc -ne 0 ]; then exit 1; fi
grep -q '"result": "SKIP"' "$build/meson-logs/testlog.json" && { echo "a test skipped: that is a failure here"; exit 1; }
exit 0
