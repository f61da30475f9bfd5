#!/bin/sh
# SDK test: install modike into a scratch root, build the example plugin
# out of tree against that install (with meson and with make), check that
# it exports only its descriptor, and load it into the built daemon.
# Needs MODIKE_BUILD_ROOT and MODIKE_SOURCE_ROOT (set by meson.build).
set -eu

fail () { echo "FAIL: $*" >&2; exit 1; }

build=${MODIKE_BUILD_ROOT:?MODIKE_BUILD_ROOT not set}
src=${MODIKE_SOURCE_ROOT:?MODIKE_SOURCE_ROOT not set}
example=$src/examples/plugin-hello
for tool in meson ninja make cc nm pkg-config; do
  command -v "$tool" >/dev/null || fail "$tool is not installed"
done

tmp=$(mktemp -d "${TMPDIR:-/tmp}/modike-sdk.XXXXXX")
trap 'rm -rf "$tmp"' EXIT INT TERM
root=$tmp/root

echo "# installing $build into $root"
meson install -C "$build" --destdir "$root" --no-rebuild --quiet \
  || fail "meson install failed (is everything built? run ninja -C $build first)"
pc=$(find "$root" -name modike.pc | head -n 1)
[ -n "$pc" ] || fail "no modike.pc in the install"

# With PKG_CONFIG_SYSROOT_DIR every -I/-L gets the root prefixed, also
# glib's and the other system packages'; a real sysroot holds the whole
# system, so show the system's /usr/include and /usr/lib inside this one.
for d in include lib; do
  [ ! -e "$root/usr/$d" ] || fail "the install unexpectedly wrote $root/usr/$d"
  ln -s "/usr/$d" "$root/usr/$d"
done
PKG_CONFIG_PATH=$(dirname "$pc")
PKG_CONFIG_SYSROOT_DIR=$root
export PKG_CONFIG_PATH PKG_CONFIG_SYSROOT_DIR
cflags=$(pkg-config --cflags modike) || fail "pkg-config cannot resolve modike"
case "$cflags" in
  *"$root"*) ;;
  *) fail "pkg-config --cflags modike does not point into the install: $cflags" ;;
esac

# Only the installed SDK may be visible: no source or build tree paths.
check_exports () {
  syms=$(nm -D --defined-only "$1" | awk '$2 ~ /^[TtWi]$/ { print $3 }')
  [ "$syms" = "modike_plugin_descriptor" ] \
    || fail "$1 exports functions other than modike_plugin_descriptor: $syms"
  for call in modike_register_vendor_id modike_register_exchange modike_exchange_start modike_exchange_send; do
    nm -D --undefined-only "$1" | grep -q " $call\$" || fail "$1 does not call $call"
  done
  echo "# $1 exports only modike_plugin_descriptor"
}

echo "# building $example with meson"
meson setup --werror "$tmp/meson" "$example" >"$tmp/meson-setup.log" 2>&1 \
  || { cat "$tmp/meson-setup.log" >&2; fail "meson setup of the example failed"; }
meson compile -C "$tmp/meson" >"$tmp/meson-compile.log" 2>&1 \
  || { cat "$tmp/meson-compile.log" >&2; fail "meson compile of the example failed"; }
[ -f "$tmp/meson/hello.so" ] || fail "meson did not produce hello.so"
check_exports "$tmp/meson/hello.so"

echo "# building $example with make"
mkdir "$tmp/make"
make -s -C "$tmp/make" -f "$example/Makefile" SRCDIR="$example" CFLAGS="-O2 -Werror" \
  || fail "make of the example failed"
check_exports "$tmp/make/hello.so"

config=$tmp/check.xml
cat >"$config" <<'XML'
<?xml version="1.0"?>
<modike>
  <daemon>
    <plugins>
      <plugin name="hello"/>
    </plugins>
  </daemon>
  <hello greeting="greetings from the SDK test"/>
</modike>
XML
modiked=$build/daemon/modiked
[ -x "$modiked" ] || fail "$modiked is not built"
for variant in meson make; do
  echo "# loading the $variant build into modiked --check"
  if ! "$modiked" --check --plugin-dir "$tmp/$variant" -c "$config" >"$tmp/out" 2>&1; then
    cat "$tmp/out" >&2
    fail "modiked --check refused the $variant build of hello"
  fi
  sed 's/^/#   /' "$tmp/out"
  grep -Eq '^plugins:.*(^|[ ,:])hello([ ,]|$)' "$tmp/out" \
    || fail "modiked --check did not list the loaded plugin hello on its plugins: line"
  grep -q 'greetings from the SDK test' "$tmp/out" || fail "the <hello> section did not reach the plugin"
done

# The plugin's RelaxNG fragment is enforced: an unknown attribute fails.
sed 's/greeting=/grating=/' "$config" >"$tmp/bad.xml"
if "$modiked" --check --plugin-dir "$tmp/meson" -c "$tmp/bad.xml" >"$tmp/out" 2>&1; then
  cat "$tmp/out" >&2
  fail "modiked --check accepted <hello grating=...>"
fi
grep -q 'grating' "$tmp/out" || { cat "$tmp/out" >&2; fail "the refusal does not name the bad attribute"; }
echo "# a bad <hello> attribute is refused: $(grep 'grating' "$tmp/out" | head -n 1)"
echo "ok: hello built out of tree and loaded"
