#!/usr/bin/env bash
# The main job: two modiked instances in two network namespaces, "gw"
# (192.0.2.1, responder) and "cl" (192.0.2.2, initiator), with natt,
# esp_user (ESP in user space) and tun (the virtual adapter) loaded,
# negotiate Main Mode + Quick Mode with a pre-shared key, then ping crosses
# the tunnel: cl's adapter mk0 holds 203.0.113.1, gw's 198.51.100.1, and
# ESP in UDP carries the packets between 192.0.2.2 and 192.0.2.1. Prints the
# ping summary, both status files (with packet counters) and "OK: SA
# established, ping crossed the tunnel", or the failure with both logs.
# Exit 0/1.
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
# natt's build directory; lib.sh finds esp_user and tun next to it.
export MODIKE_PLUGIN_DIR=${MODIKE_PLUGIN_DIR:-$BUILD/plugins/natt}
# shellcheck source=../tests/interop/lib.sh
. "$ROOT/tests/interop/lib.sh"
mki_require_prereqs modiked traffic
mki_setup demo

# Both ends protect the nets behind them (198.51.100.0/24 behind gw,
# 203.0.113.0/24 behind cl), AES-128/SHA-256, PFS with modp2048; each has
# an adapter mk0 holding its own inner host (taken off lo for that).
mki_pair_conf DATAPATH=yes
mki_drop_lo_host gw
mki_drop_lo_host cl

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
mki_pair_start || show_failure "modiked (gw) exited at start"
mki_poll "$WAIT" mki_pair_up || show_failure "no SA on both sides within $WAIT s"
# The two views must agree: same cookies, SPIs crosswise.
mki_pair_agree || show_failure "the two sides disagree on cookies or SPIs"

# Traffic: from cl's 203.0.113.1 to gw's 198.51.100.1, through both
# adapters and both datapaths.
echo "----- ping $MKI_GW_HOST from $MKI_CL_HOST (cl) through the tunnel -----"
mki_ping cl 5 -i 0.2 -W 2 2>/dev/null
cat "$MKI_DIR/cl/ping.out"
[ "$MKI_PING_RX" = 5 ] || show_failure "ping through the tunnel: $MKI_PING_RX of 5 replies"

for side in gw cl; do
  mki_modiked_status $side >/dev/null || show_failure "no status from $side after the ping"
  echo "----- $side ($(if [ $side = gw ]; then echo "$MKI_GW_V4, responder"; else echo "$MKI_CL_V4, initiator"; fi)) -----"
  cat "$MKI_DIR/$side/modiked.status"
done
echo "OK: SA established, ping crossed the tunnel ($MKI_PING_RX/$MKI_PING_TX replies)"
exit 0
