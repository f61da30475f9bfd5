#!/usr/bin/env bash
# The main job: two modiked instances in two network namespaces, "gw"
# (192.0.2.1, responder) and "cl" (192.0.2.2, initiator), natt loaded,
# negotiate Main Mode + Quick Mode with a pre-shared key. Prints both status
# files and "OK: SA established", or the failure with both logs. Exit 0/1.
#
# Installs what is missing (scripts/deps.sh) and builds into ./build if
# needed (MODIKE_BUILD=dir to build elsewhere; MODIKED=path to run a given
# daemon without building). Needs root (network namespaces): sudo
# scripts/demo.sh.
set -uo pipefail
ROOT=$(cd "$(dirname "$0")/.." && pwd)
BUILD=${MODIKE_BUILD:-$ROOT/build}
WAIT=${MODIKE_DEMO_WAIT:-30}

[ "$(id -u)" = 0 ] || { echo "demo: needs root for network namespaces: sudo $0" >&2; exit 1; }
"$ROOT/scripts/deps.sh" || { echo "demo: installing dependencies failed" >&2; exit 1; }
# MODIKED set by the caller: use that daemon as it is (no build).
if [ -z "${MODIKED:-}" ]; then
  if [ ! -f "$BUILD/build.ninja" ]; then
    meson setup "$BUILD" "$ROOT" >/dev/null || { echo "demo: meson setup failed" >&2; exit 1; }
  fi
  ninja -C "$BUILD" >/dev/null || { echo "demo: build failed (ninja -C $BUILD)" >&2; exit 1; }
  MODIKED=$BUILD/daemon/modiked
fi
export MODIKED
export MODIKE_PLUGIN_DIR=${MODIKE_PLUGIN_DIR:-$BUILD/plugins/natt}
# shellcheck source=../tests/interop/lib.sh
. "$ROOT/tests/interop/lib.sh"
mki_require_prereqs modiked
mki_setup demo

# Both ends protect the nets behind them (198.51.100.0/24 behind gw,
# 203.0.113.0/24 behind cl), AES-128/SHA-256, PFS with modp2048.
for side in gw cl; do
  if [ $side = gw ]; then
    me=$MKI_GW_V4 peer=$MKI_CL_V4 myid=gw peerid=client name=client initiate=no
    lnet=$MKI_GW_NET rnet=$MKI_CL_NET
  else
    me=$MKI_CL_V4 peer=$MKI_GW_V4 myid=client peerid=gw name=gw initiate=yes
    lnet=$MKI_CL_NET rnet=$MKI_GW_NET
  fi
  mki_modiked_conf "$MKI_DIR/$side/modiked.xml" LISTEN="$me" NAME=$name INITIATE=$initiate \
    LOCAL="$me" REMOTE="$peer" LOCAL_ID=$myid REMOTE_ID=$peerid PSK=demo-secret \
    EXCHANGE=main P1_ENCR=aes128 P1_HASH=sha256 P1_GROUP=modp2048 PFS=modp2048 \
    LOCAL_TS=$lnet REMOTE_TS=$rnet ESP_ENCR=aes128 ESP_INTEG=sha256 \
    STATUS="$MKI_DIR/$side/modiked.status" LOGLEVEL=info
done

show_failure () {
  echo "FAILED: $*"
  local side
  for side in gw cl; do
    echo "----- $side: modiked log (last 40 lines) -----"
    tail -n 40 "$MKI_DIR/$side/modiked.log" 2>/dev/null
    echo "----- $side: status -----"
    cat "$MKI_DIR/$side/modiked.status" 2>/dev/null || echo "(none)"
  done
  exit 1
}

for side in gw cl; do
  ip netns exec "$(mki_ns $side)" timeout 20 "$MODIKED" -c "$MKI_DIR/$side/modiked.xml" --check \
    >"$MKI_DIR/$side/modiked.log" 2>&1 || show_failure "modiked --check ($side)"
done
# The responder first, so the initiator's first message finds it.
mki_modiked_start gw "$MKI_DIR/gw/modiked.xml"
for _ in $(seq 1 50); do
  ip netns exec "$MKI_NS_GW" ss -Hlun 'sport = :500' | grep -q . && break
  mki_modiked_alive gw || break
  sleep 0.1
done
mki_modiked_alive gw || show_failure "modiked (gw) exited at start"
mki_modiked_start cl "$MKI_DIR/cl/modiked.xml"

up () { # both status files show an established IKE SA and an ESP SA
  local side st
  for side in gw cl; do
    mki_modiked_alive $side || show_failure "modiked ($side) exited"
    st=$(mki_modiked_status $side) || return 1
    grep -Eq '^IKE [^ ]+ ESTABLISHED ' "$st" && grep -Eq '^ +ESP ' "$st" || return 1
  done
}
mki_poll "$WAIT" up || show_failure "no SA on both sides within $WAIT s"

# The two views must agree: same cookies, SPIs crosswise.
g_ike=$(grep -E '^IKE ' "$MKI_DIR/gw/modiked.status" | head -n1)
c_ike=$(grep -E '^IKE ' "$MKI_DIR/cl/modiked.status" | head -n1)
g_esp=$(grep -E '^ +ESP ' "$MKI_DIR/gw/modiked.status" | head -n1)
c_esp=$(grep -E '^ +ESP ' "$MKI_DIR/cl/modiked.status" | head -n1)
field () { printf '%s\n' "$1" | grep -o " $2=[^ ]*" | head -n1 | cut -d= -f2; }
[ "$(field "$g_ike" i)" = "$(field "$c_ike" i)" ] && [ "$(field "$g_ike" r)" = "$(field "$c_ike" r)" ] ||
  show_failure "the two sides show different IKE SA cookies"
[ "$(field "$g_esp" in)" = "$(field "$c_esp" out)" ] && [ "$(field "$g_esp" out)" = "$(field "$c_esp" in)" ] ||
  show_failure "the ESP SPIs do not match crosswise"

for side in gw cl; do
  echo "----- $side ($(if [ $side = gw ]; then echo "$MKI_GW_V4, responder"; else echo "$MKI_CL_V4, initiator"; fi)) -----"
  cat "$MKI_DIR/$side/modiked.status"
done
echo "OK: SA established"
exit 0
