#!/bin/sh
# Runs the message fuzzer: tests/fuzz/run.sh <build-dir> <seconds>
# Sets up a clang build with -Dfuzz=true in <build-dir> if there is none,
# seeds a scratch corpus with the packet vectors and fuzzes for <seconds>.
# Exits non-zero if the fuzzer found a crash, leak or broken invariant;
# the reproducer is left in <build-dir>/fuzz-artifacts/.
set -eu

if [ $# -ne 2 ]; then
  echo "usage: $0 <build-dir> <seconds>" >&2
  exit 2
fi
builddir=$1
seconds=$2
srcdir=$(cd "$(dirname "$0")/../.." && pwd)

if [ ! -f "$builddir/build.ninja" ]; then
  CC=clang meson setup "$builddir" "$srcdir" -Dfuzz=true -Dinterop=false
else
  # Refuse before touching a build directory made with another compiler.
  if ! grep -m1 '"command"' "$builddir/compile_commands.json" | grep -q clang; then
    echo "$builddir was not set up with clang; use a new directory" >&2
    exit 2
  fi
  meson configure "$builddir" -Dfuzz=true
fi
ninja -C "$builddir" tests/fuzz/fuzz-message

corpus=$(mktemp -d)
trap 'rm -rf "$corpus"' EXIT
for dir in "$srcdir"/tests/vectors/codec "$srcdir"/tests/vectors/strongswan; do
  if [ -d "$dir" ]; then
    for f in "$dir"/*.bin; do
      [ -f "$f" ] && cp "$f" "$corpus/$(basename "$dir")-$(basename "$f")"
    done
  fi
done
artifacts=$builddir/fuzz-artifacts
mkdir -p "$artifacts"
before=$(ls "$artifacts" | wc -l)

status=0
"$builddir/tests/fuzz/fuzz-message" -max_total_time="$seconds" -artifact_prefix="$artifacts/" \
  -print_final_stats=1 "$corpus" || status=$?

after=$(ls "$artifacts" | wc -l)
if [ "$status" -ne 0 ] || [ "$after" -ne "$before" ]; then
  echo "fuzz-message: findings (exit $status), see $artifacts" >&2
  exit 1
fi
echo "fuzz-message: nothing found in ${seconds}s"
