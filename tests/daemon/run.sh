#!/usr/bin/env bash
# Suite daemon: modiked itself, between two instances in namespaces.
#   bad-config   a broken or invalid config: exit 1, the message names
#                file, line and element (or plugin and cause); nothing runs
#   hostile      garbage datagrams on 500 and 4500 and SIGHUP reloads (same
#                config, broken config) against an established tunnel: the
#                daemon keeps running and the SAs stay the same
#   traffic-esp-ip, traffic-udp-encap, traffic-ipv6-esp-ip, traffic-ipv6-udp-encap
#                modiked <-> modiked with esp_user + tun: ESP over IP
#                (protocol 50; no NAT, nothing forces encapsulation) or ESP
#                in UDP (forced), AES-GCM: ping both ways and a 20 MB TCP
#                transfer each way with matching SHA-256; the status shows
#                the encapsulation and the counters (the ipv6 variants run
#                IKE and ESP over IPv6)
# Needs root; a missing prerequisite fails.
set -uo pipefail
CASE=${1:?case}
ROOT=$(cd "$(dirname "$0")/../.." && pwd)
# shellcheck source=../interop/lib.sh
. "$ROOT/tests/interop/lib.sh"
mki_require_prereqs modiked
command -v python3 >/dev/null || mki_fail "python3 missing (scripts/deps.sh installs it)"
mki_setup "daemon-$CASE"

expect_refusal () { # FILE PATTERN...: --check and a real start both refuse
  local cfg=$1; shift
  local out rc p
  out=$(timeout 20 "$MODIKED" -c "$cfg" --check 2>&1); rc=$?
  [ $rc = 1 ] || mki_fail "--check on $(basename "$cfg"): exit $rc, want 1: $out"
  for p in "$@"; do
    printf '%s\n' "$out" | grep -Eq -- "$p" || mki_fail "--check on $(basename "$cfg"): no '$p' in: $out"
  done
  out=$(timeout 20 "$MODIKED" -c "$cfg" 2>&1); rc=$?
  [ $rc = 1 ] || mki_fail "start with $(basename "$cfg"): exit $rc, want 1: $out"
  mki_log "refused as expected: $(printf '%s' "$out" | head -n1)"
}

case $CASE in
bad-config)
  mki_pair_conf
  good=$MKI_DIR/gw/modiked.xml
  timeout 20 "$MODIKED" -c "$good" --check >/dev/null 2>&1 || mki_fail "the good config fails --check"
  # Not well-formed: the line of the damage.
  sed '12s/>$//' "$good" > "$MKI_DIR/broken.xml"
  expect_refusal "$MKI_DIR/broken.xml" 'broken\.xml:1[23]'
  # Valid XML, bad value: file, line and element.
  sed 's/group="modp2048"/group="modp9999"/' "$good" > "$MKI_DIR/badgroup.xml"
  line=$(grep -n modp9999 "$MKI_DIR/badgroup.xml" | cut -d: -f1)
  expect_refusal "$MKI_DIR/badgroup.xml" "badgroup\.xml:$line:" '<proposal>' 'modp9999'
  # An element the schema does not know.
  sed 's|<daemon>|<daemon><colour value="red"/>|' "$good" > "$MKI_DIR/unknown.xml"
  expect_refusal "$MKI_DIR/unknown.xml" 'unknown\.xml:[0-9]+:' 'colour'
  # A plugin that does not exist: named, with the cause.
  sed 's|<plugin name="natt"/>|<plugin name="natt"/><plugin name="nosuch"/>|' "$good" > "$MKI_DIR/plugin.xml"
  expect_refusal "$MKI_DIR/plugin.xml" "nosuch" "not found"
  # A plugin section for a plugin that is not loaded.
  sed 's|</daemon>|</daemon><dpd delay="10"/>|' "$good" > "$MKI_DIR/section.xml"
  expect_refusal "$MKI_DIR/section.xml" 'dpd'
  # An auth method no loaded plugin registers: file, line and element.
  sed 's|method="psk"|method="xauth-psk"|' "$good" > "$MKI_DIR/authmethod.xml"
  line=$(grep -n xauth-psk "$MKI_DIR/authmethod.xml" | cut -d: -f1)
  expect_refusal "$MKI_DIR/authmethod.xml" "authmethod\.xml:$line:" '<auth>' "unknown auth method 'xauth-psk'"
  timeout 5 "$MODIKED" -c "$MKI_DIR/missing.xml" --check >/dev/null 2>&1 && mki_fail "a missing file passes --check"
  mki_log "PASS: bad configs refused with file, line and element"
  ;;
hostile)
  mki_pair_conf
  mki_pair_start || { mki_dump_logs; mki_fail "modiked (gw) exited at start"; }
  mki_poll 30 mki_pair_up || { mki_dump_logs; mki_fail "no SA within 30 s"; }
  mki_pair_agree || { mki_dump_logs; mki_fail "the sides disagree"; }
  before=$(grep -E '^(IKE|  ESP)' "$MKI_DIR/gw/modiked.status")
  icookie=$(mki_status_field "$(grep -E '^IKE ' "$MKI_DIR/gw/modiked.status")" i)
  rcookie=$(mki_status_field "$(grep -E '^IKE ' "$MKI_DIR/gw/modiked.status")" r)

  same () { # the gw still runs and shows exactly the SAs it had
    local st
    mki_modiked_alive gw || { mki_dump_logs; mki_fail "modiked (gw) died: $1"; }
    st=$(mki_modiked_status gw) || mki_fail "no status after $1"
    [ "$(grep -E '^(IKE|  ESP)' "$st")" = "$before" ] ||
      { cat "$st" >&2; mki_fail "the SAs changed after $1"; }
    mki_log "ok after $1"
  }

  ip netns exec "$MKI_NS_CL" python3 - "$MKI_GW_V4" "$icookie" "$rcookie" <<'PY' || mki_fail "sending garbage"
import os, socket, struct, sys
gw, ic, rc = sys.argv[1], bytes.fromhex(sys.argv[2]), bytes.fromhex(sys.argv[3])
def hdr(i, r, np, ex, flags, mid, length):
    return i + r + struct.pack("!BBBBII", np, 0x10, ex, flags, mid, length)
msgs = [os.urandom(200), b"\x00" * 10, b"",
        hdr(os.urandom(8), bytes(8), 1, 2, 0, 0, 1000),                  # length past the end
        hdr(os.urandom(8), bytes(8), 1, 2, 0, 0, 40) + os.urandom(12),   # SA with garbage body
        hdr(os.urandom(8), bytes(8), 1, 2, 0, 0, 32) + b"\x00\x00\x00\x02", # payload length < 4
        hdr(ic, rc, 8, 5, 1, 0x12345678, 28 + 32) + os.urandom(32),      # our SA: undecryptable info
        hdr(ic, rc, 8, 32, 1, 0x1234, 28 + 48) + os.urandom(48),         # our SA: bogus quick mode
        hdr(ic, rc, 5, 2, 1, 0, 28 + 16) + os.urandom(16),               # our SA: stray phase 1
        hdr(ic, rc, 1, 2, 0, 0, 28) ,                                   # our SA: plain MM, no payload
        struct.pack("!BBBB", 0x20, 0, 0, 0) + os.urandom(60)]            # wrong major version
for port in (500, 4500):
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    for m in msgs:
        s.sendto((b"\x00\x00\x00\x00" + m) if port == 4500 and m else m, (gw, port))
    if port == 4500:
        s.sendto(b"\xff", (gw, port))                                    # NAT keepalive
        s.sendto(os.urandom(80), (gw, port))                             # ESP-like
    for _ in range(500):                                                 # a burst of random
        s.sendto(os.urandom(28 + (os.urandom(1)[0] % 200)), (gw, port))
PY
  sleep 1
  same "garbage on ports 500 and 4500"

  kill -HUP "$(mki_modiked_pid gw)"; sleep 1
  same "SIGHUP with the same config"
  grep -q "configuration reloaded" "$MKI_DIR/gw/modiked.log" || mki_fail "no reload logged"

  cp "$MKI_DIR/gw/modiked.xml" "$MKI_DIR/gw/good.xml"
  printf '<modike><daemon>\n' > "$MKI_DIR/gw/modiked.xml"
  kill -HUP "$(mki_modiked_pid gw)"; sleep 1
  same "SIGHUP with a broken config"
  grep -q "reload refused" "$MKI_DIR/gw/modiked.log" || mki_fail "the refused reload is not logged"

  cp "$MKI_DIR/gw/good.xml" "$MKI_DIR/gw/modiked.xml"
  kill -HUP "$(mki_modiked_pid gw)"; sleep 1
  same "SIGHUP back to the good config"
  mki_modiked_stop gw || mki_fail "gw did not stop on SIGTERM"
  mki_log "PASS: hostile input and reloads left the tunnel as it was"
  ;;
traffic-esp-ip|traffic-udp-encap|traffic-ipv6-esp-ip|traffic-ipv6-udp-encap)
  command -v ping >/dev/null || mki_fail "ping missing (scripts/deps.sh installs iputils-ping)"
  extra=(DATAPATH=yes ESP_ENCR=aes128gcm16 ESP_INTEG="")
  case $CASE in *udp-encap) extra+=(NATT_FORCE=yes) ;; esac
  case $CASE in *ipv6*) extra+=(OUTER=6) ;; esac
  mki_pair_conf "${extra[@]}"
  mki_drop_lo_host gw
  mki_drop_lo_host cl
  mki_pair_start || { mki_dump_logs; mki_fail "modiked (gw) exited at start"; }
  mki_poll 30 mki_pair_up || { mki_dump_logs; mki_fail "no SA within 30 s"; }
  mki_pair_agree || { mki_dump_logs; mki_fail "the sides disagree"; }
  for side in cl gw; do
    mki_ping $side 5 -i 0.2 -W 2 || true
    [ "$MKI_PING_RX" -ge 4 ] || { mki_dump_logs; mki_fail "ping from $side: $MKI_PING_RX of 5 replies"; }
  done
  mki_make_data "$MKI_DIR/data.bin" 20
  for dir in "cl gw" "gw cl"; do
    set -- $dir
    mki_transfer "$1" "$2" "$MKI_DIR/data.bin" 0 60 || { mki_dump_logs; mki_fail "transfer: $MKI_XFER_RESULT"; }
    mki_log "$MKI_XFER_RESULT"
  done
  for side in cl gw; do
    st=$(mki_modiked_status $side) || mki_fail "no status from $side"
    esp=$(grep -E '^ +ESP ' "$st" | head -n1)
    mki_log "$side: $esp"
    case "$CASE $esp " in
      *-esp-ip" "*" udp-encap "*) mki_fail "$side: ESP in UDP where ESP over IP was expected" ;;
      *-udp-encap" "*" udp-encap "*) ;;
      *-udp-encap" "*) mki_fail "$side: no udp-encap in the status" ;;
    esac
    mki_esp_counters "$esp" || mki_fail "$side: no counters in the status"
    [ "$MKI_PKT_IN" -gt 1000 ] && [ "$MKI_PKT_OUT" -gt 1000 ] ||
      mki_fail "$side: packets in/out $MKI_PKT_IN/$MKI_PKT_OUT after 40 MB"
    [ "$MKI_DROPS" = 0 ] || mki_fail "$side: $MKI_DROPS drops"
  done
  if [ "${CASE#*ipv6}" != "$CASE" ]; then
    grep -q "$MKI_CL_V6" "$MKI_DIR/cl/modiked.log" "$MKI_DIR/gw/modiked.log" ||
      mki_fail "the logs never mention $MKI_CL_V6: not over IPv6?"
  fi
  mki_log "PASS: $CASE"
  ;;
*) mki_fail "unknown case $CASE" ;;
esac
exit 0
