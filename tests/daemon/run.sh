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
#   control-access    the control socket: root and members of its group
#                in, anyone else refused (SO_PEERCRED) with a message;
#                malformed and oversized messages (the sender is answered or
#                dropped, another client and the daemon carry on); a bad site
#                refused with file and line; no daemon: exit 6
#   control-connect   `modike connect SITE` against a modiked that has only
#                <control>: stages with elapsed times, ping through, `modike
#                status` table, `modike disconnect` removes site and SAs (the
#                attached client exits 7), Ctrl-C (SIGTERM) disconnects cleanly;
#                SIGHUP keeps the site and its SAs
#   control-detach    the attached client killed (SIGKILL): the site and its SAs
#                go; the peer deletes the ISAKMP SA: the client is detached
#                and exits 7
#   control-failures  a wrong pre-shared key and an unreachable gateway: phase 1
#                failed, the client detached with exit 4 (authentication) or 5
#                (nobody answers), the site removed (a retry uploads it again)
#   examples     the remote-access examples in docs/examples (ra-gateway.xml,
#                ra-client.xml) pass --check with the real plugins, and
#                ra-site.xml is accepted by `modike connect`'s upload; a
#                --check of the gateway's config next to the running gateway
#                passes at once and leaves its lease database and users alone
#   loadtest-smoke  modiked with the loadtest plugin (64 source addresses on
#                cl's veth0, one identity each setup) against a modiked
#                responder: 200 setups at concurrency 16, each deleted once
#                up; the generator exits by itself and its report says 200
#                ok, 0 failed; the same config without enable="yes" is
#                refused by --check and at start, naming the switch.
#                LT_COUNT, LT_CONCURRENCY and LT_PFS change the run;
#                LT_GW_THREADS / LT_CL_THREADS set <crypto threads> of the
#                responder / the generator (default: one per core); the
#                responder's CPU seconds per setup are logged
# Needs root; a missing prerequisite fails.
set -uo pipefail
CASE=${1:?case}
ROOT=$(cd "$(dirname "$0")/../.." && pwd)
# shellcheck source=../interop/lib.sh
. "$ROOT/tests/interop/lib.sh"
mki_require_prereqs modiked
command -v python3 >/dev/null || mki_fail "python3 missing (scripts/deps.sh installs it)"
mki_setup "daemon-$CASE"
MODIKE=${MODIKE:-$(cd "$(dirname "$MODIKED")/../client" && pwd)/modike}
[ -x "$MODIKE" ] || mki_fail "the modike client is not built ($MODIKE)"

# Splits SIDE's config (mki_pair_conf) into a daemon config with only
# <control socket=SOCK group=GROUP> and no peers, and a site file
# (SIDE/site.xml) with its <peer> and <policy>.
control_split () {
  local side=$1 sock=$2 group=$3 cfg=$MKI_DIR/$1/modiked.xml
  python3 - "$cfg" "$MKI_DIR/$side/site.xml" "$sock" "$group" <<'PY' || mki_fail "splitting $cfg"
import re, sys
cfg, site, sock, group = sys.argv[1:5]
text = open(cfg).read()
m = re.search(r"(  <peer .*</policy>\n)", text, re.S)
body = m.group(1).replace('initiate="yes"', 'initiate="no"')
base = text.replace(m.group(1), '  <control socket="%s"%s/>\n' % (sock, ' group="%s"' % group if group else ""))
open(cfg, "w").write(base)
open(site, "w").write('<?xml version="1.0"?>\n<modike>\n' + body + "</modike>\n")
PY
}

# Sends one request (JSON without v/id) and prints the result's JSON.
ctl_request () {
  python3 - "$1" "$2" <<'PY'
import json, socket, sys
s = socket.socket(socket.AF_UNIX); s.connect(sys.argv[1]); s.settimeout(5)
req = json.loads(sys.argv[2]); req.update(v=1, id=1)
s.sendall(json.dumps(req).encode() + b"\n")
buf = b""
while True:
    d = s.recv(65536)
    if not d: sys.exit("connection closed")
    buf += d
    while b"\n" in buf:
        l, buf = buf.split(b"\n", 1)
        m = json.loads(l)
        if m.get("id") == 1:
            print(json.dumps(m)); sys.exit(0 if m["type"] == "result" else 1)
PY
}

# Waits (SECONDS) until FILE has a line matching PATTERN.
wait_line () {
  local file=$1 pattern=$2 secs=$3 i
  for i in $(seq 1 $((secs * 10))); do
    grep -Eq -- "$pattern" "$file" 2>/dev/null && return 0
    sleep 0.1
  done
  return 1
}

# The client side of the pair with only <control>; connect from a shell.
control_pair () {
  mki_pair_conf DATAPATH=yes ESP_ENCR=aes128gcm16 ESP_INTEG=""
  mki_drop_lo_host gw
  mki_drop_lo_host cl
  SOCK=$MKI_DIR/cl/ctl.sock
  control_split cl "$SOCK" ""
  mki_pair_start || { mki_dump_logs; mki_fail "modiked exited at start"; }
  wait_line "$MKI_DIR/cl/modiked.log" "control socket $SOCK" 10 || { mki_dump_logs; mki_fail "no control socket"; }
}

# Starts `modike connect` in the background; CONNECT_PID, output in FILE.
connect_bg () {
  CONNECT_OUT=$1
  "$MODIKE" --socket "$SOCK" connect "$MKI_DIR/cl/site.xml" >"$CONNECT_OUT" 2>&1 &
  CONNECT_PID=$!
  MKI_PIDS+=("$CONNECT_PID")
}

connect_up () { # waits for phase 2 in the client's output and the SAs
  wait_line "$CONNECT_OUT" '^phase2 +up +[0-9]+\.[0-9]{3} s' 30 ||
    { cat "$CONNECT_OUT" >&2; mki_dump_logs; mki_fail "modike connect: no phase 2"; }
  grep -Eq '^phase1 +up +[0-9]+\.[0-9]{3} s' "$CONNECT_OUT" ||
    { cat "$CONNECT_OUT" >&2; mki_fail "modike connect: no phase 1 line with its elapsed time"; }
  mki_poll 10 mki_pair_up || { mki_dump_logs; mki_fail "no SAs after modike connect"; }
}

# Exit status of CONNECT_PID within SECONDS (fails when it still runs).
connect_exit () {
  local secs=$1 i
  for i in $(seq 1 $((secs * 10))); do
    kill -0 "$CONNECT_PID" 2>/dev/null || break
    sleep 0.1
  done
  kill -0 "$CONNECT_PID" 2>/dev/null && { cat "$CONNECT_OUT" >&2; mki_fail "modike connect still runs"; }
  wait "$CONNECT_PID"
}

no_sas () { # SIDE: no IKE SA in the status
  local st
  st=$(mki_modiked_status "$1") || return 1
  ! grep -Eq '^IKE ' "$st"
}

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
loadtest-smoke)
  # LT_COUNT, LT_CONCURRENCY, LT_PFS (a group) change the run by hand.
  n=${LT_COUNT:-200} conc=${LT_CONCURRENCY:-16} pfs=${LT_PFS:-none}
  report=$MKI_DIR/cl/report.json
  for i in $(seq 10 73); do
    ip -n "$MKI_NS_CL" addr add "192.0.2.$i/24" dev veth0 || mki_fail "address 192.0.2.$i"
  done
  mki_modiked_conf "$MKI_DIR/gw/modiked.xml" LISTEN="$MKI_GW_V4" NAME=clients LOCAL="$MKI_GW_V4" \
    LOCAL_ID=gw PSK=load-secret LOCAL_TS=10.2.0.0/24 REMOTE_TS=10.1.0.0/24 LOGLEVEL=message PFS="$pfs" \
    STATUS="$MKI_DIR/gw/modiked.status"
  lt="<loadtest enable=\"yes\" peer=\"gw\" count=\"$n\" concurrency=\"$conc\" hold=\"no\""
  lt="$lt sources=\"192.0.2.10-192.0.2.73\" id-template=\"client%u.example\" report-file=\"$report\" exit=\"yes\"/>"
  mki_modiked_conf "$MKI_DIR/cl/modiked.xml" NAME=gw REMOTE="$MKI_GW_V4" REMOTE_ID=gw PSK=load-secret \
    PLUGINS=loadtest SECTIONS_XML="$lt" LOCAL_TS=10.1.0.0/24 REMOTE_TS=10.2.0.0/24 LOGLEVEL=message PFS="$pfs" \
    STATUS="$MKI_DIR/cl/modiked.status"
  [ -n "${LT_GW_THREADS:-}" ] && sed -i "s|  <daemon>|&<crypto threads=\"$LT_GW_THREADS\"/>|" "$MKI_DIR/gw/modiked.xml"
  [ -n "${LT_CL_THREADS:-}" ] && sed -i "s|  <daemon>|&<crypto threads=\"$LT_CL_THREADS\"/>|" "$MKI_DIR/cl/modiked.xml"
  sed 's/<loadtest enable="yes"/<loadtest/' "$MKI_DIR/cl/modiked.xml" > "$MKI_DIR/disabled.xml"
  expect_refusal "$MKI_DIR/disabled.xml" "plugin 'loadtest'" 'disabled\.xml:[0-9]+: <loadtest> needs enable="yes"'
  mki_pair_start || { mki_dump_logs; mki_fail "modiked (gw) exited at start"; }
  pid=$(mki_modiked_pid cl)
  gw_pid=$(mki_modiked_pid gw)
  gw_cpu0=$(awk '{print $14 + $15}' "/proc/$gw_pid/stat")
  gw_main0=$(awk '{print $14 + $15}' "/proc/$gw_pid/task/$gw_pid/stat")
  for _ in $(seq 1 900); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
  gw_cpu1=$(awk '{print $14 + $15}' "/proc/$gw_pid/stat")
  gw_main1=$(awk '{print $14 + $15}' "/proc/$gw_pid/task/$gw_pid/stat")
  mki_log "responder CPU: $(( gw_cpu1 - gw_cpu0 )) ticks of $(getconf CLK_TCK)/s for $n setups, engine thread $(( gw_main1 - gw_main0 )) (crypto threads ${LT_GW_THREADS:-default})"
  kill -0 "$pid" 2>/dev/null && { mki_dump_logs; mki_fail "the generator did not finish within 90 s"; }
  wait "$pid"; rc=$?
  [ $rc = 0 ] || { mki_dump_logs; mki_fail "the generator exited $rc"; }
  grep -q "loadtest: $n ok, 0 failed" "$MKI_DIR/cl/modiked.log" || { mki_dump_logs; mki_fail "no summary line"; }
  python3 - "$report" "$n" <<'PY' || { mki_dump_logs; mki_fail "report $report"; }
import json, sys
r = json.load(open(sys.argv[1])); n = int(sys.argv[2])
assert r["ok"] == n and r["failed"] == 0 and r["started"] == n, r
assert sum(r["failures"].values()) == 0, r
l = r["latency_ms"]
assert 0 < l["p50"] <= l["p90"] <= l["p99"] <= l["max"], l
assert r["setups_per_s"] > 0, r
print("setups/s %.1f, latency ms p50 %.1f p90 %.1f p99 %.1f max %.1f" %
      (r["setups_per_s"], l["p50"], l["p90"], l["p99"], l["max"]), file=sys.stderr)
PY
  mki_log "PASS: $n setups from 64 sources, report parsed"
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
examples)
  EX=$ROOT/docs/examples
  PLUGDIR=$MKI_DIR/plugins
  mki_plugin_dir "$PLUGDIR" natt esp_user tun xauth modecfg || mki_fail "plugins not built"
  PLUGDIR=$MKI_PLUGIN_DIR_OUT
  PASSWD_TOOL=$(cd "$(dirname "$MODIKED")/../plugins/xauth" && pwd)/modike-xauth-passwd
  printf 'alicepw\n' | "$PASSWD_TOOL" alice >"$MKI_DIR/users" || mki_fail "modike-xauth-passwd"
  # The examples' system paths, moved into the case directory.
  sed -e "s|/etc/modike/users|$MKI_DIR/users|" -e "s|/var/lib/modike/leases.db|$MKI_DIR/leases.db|" \
    -e "s|/run/modiked.status|$MKI_DIR/gw.status|" "$EX/ra-gateway.xml" >"$MKI_DIR/ra-gateway.xml"
  sed -e "s|/run/modike/modiked.sock|$MKI_DIR/ctl.sock|" -e 's| group="modike"||' \
    "$EX/ra-client.xml" >"$MKI_DIR/ra-client.xml"
  for f in ra-gateway ra-client; do
    out=$(ip netns exec "$MKI_NS_GW" timeout 20 "$MODIKED" -c "$MKI_DIR/$f.xml" --plugin-dir "$PLUGDIR" --check 2>&1) ||
      mki_fail "docs/examples/$f.xml fails --check: $out"
  done
  [ -e "$MKI_DIR/leases.db" ] && mki_fail "--check created the lease database"
  # The client daemon takes the example site.
  ip netns exec "$MKI_NS_CL" "$MODIKED" -c "$MKI_DIR/ra-client.xml" --plugin-dir "$PLUGDIR" --foreground \
    >"$MKI_DIR/cl/modiked.log" 2>&1 &
  MKI_PIDS+=("$!")
  mki_poll 10 "[ -S '$MKI_DIR/ctl.sock' ]" || { cat "$MKI_DIR/cl/modiked.log" >&2; mki_fail "no control socket"; }
  out=$(printf '{"v":1,"type":"hello","id":1,"client":"test"}\n{"v":1,"type":"upload","id":2,"name":"ra-site.xml","site":%s}\n' \
    "$(python3 -c 'import json,sys; print(json.dumps(open(sys.argv[1]).read()))' "$EX/ra-site.xml")" |
    ip netns exec "$MKI_NS_CL" timeout 5 python3 -c '
import socket, sys
s = socket.socket(socket.AF_UNIX); s.connect(sys.argv[1]); s.sendall(sys.stdin.buffer.read())
buf = b""
while buf.count(b"\n") < 2:
    d = s.recv(4096)
    if not d: break
    buf += d
print(buf.decode())' "$MKI_DIR/ctl.sock")
  printf '%s\n' "$out" | grep -q '"type":"result","id":2' || mki_fail "ra-site.xml not accepted: $out"
  # The gateway runs; a --check of its config beside it.
  ip netns exec "$MKI_NS_GW" "$MODIKED" -c "$MKI_DIR/ra-gateway.xml" --plugin-dir "$PLUGDIR" --foreground \
    >"$MKI_DIR/gw/modiked.log" 2>&1 &
  GWPID=$!
  MKI_PIDS+=("$GWPID")
  mki_poll 10 "[ -e '$MKI_DIR/leases.db' ]" || { cat "$MKI_DIR/gw/modiked.log" >&2; mki_fail "the gateway made no lease database"; }
  start=$(date +%s%N)
  out=$(ip netns exec "$MKI_NS_GW" timeout 20 "$MODIKED" -c "$MKI_DIR/ra-gateway.xml" --plugin-dir "$PLUGDIR" --check 2>&1) ||
    mki_fail "--check beside the running gateway fails: $out"
  ms=$(( ($(date +%s%N) - start) / 1000000 ))
  mki_log "--check beside the running gateway: ok in $ms ms"
  kill -0 "$GWPID" 2>/dev/null || mki_fail "the gateway died"
  mki_log "PASS: the remote-access examples check, and a check leaves a running gateway alone"
  ;;
control-access)
  mki_pair_conf
  SOCK=$MKI_DIR/cl/ctl.sock
  control_split cl "$SOCK" nogroup
  chmod 755 "$MKI_DIR" "$MKI_DIR/cl"
  # An unknown group: refused with file and line.
  sed 's/group="nogroup"/group="nosuchgroup"/' "$MKI_DIR/cl/modiked.xml" > "$MKI_DIR/cl/badgroup.xml"
  line=$(grep -n nosuchgroup "$MKI_DIR/cl/badgroup.xml" | cut -d: -f1)
  out=$(timeout 20 "$MODIKED" -c "$MKI_DIR/cl/badgroup.xml" --check 2>&1); rc=$?
  [ $rc = 1 ] && printf '%s\n' "$out" | grep -q "badgroup\.xml:$line: <control>: no group \"nosuchgroup\"" ||
    mki_fail "unknown control group: exit $rc: $out"
  mki_modiked_start cl "$MKI_DIR/cl/modiked.xml"
  wait_line "$MKI_DIR/cl/modiked.log" "control socket $SOCK" 10 || { mki_dump_logs; mki_fail "no control socket"; }
  [ "$(stat -c '%a %U %G' "$SOCK")" = "660 root nogroup" ] || mki_fail "socket: $(stat -c '%a %U %G' "$SOCK")"
  # A member of the group (primary group nogroup) gets in.
  out=$(setpriv --reuid=65534 --regid=65534 --clear-groups "$MODIKE" --socket "$SOCK" status 2>&1); rc=$?
  [ $rc = 0 ] || mki_fail "nobody:nogroup refused: exit $rc: $out"
  printf '%s\n' "$out" | grep -q '^PEER ' || mki_fail "no status table for nobody:nogroup: $out"
  # Past the file mode (supplementary group) but not a member: SO_PEERCRED says no.
  out=$(setpriv --reuid=12345 --regid=0 --groups=65534 "$MODIKE" --socket "$SOCK" status 2>&1); rc=$?
  [ $rc = 8 ] || mki_fail "uid 12345 let in or wrong exit: $rc: $out"
  printf '%s\n' "$out" | grep -q 'access refused: uid 12345 is neither root nor a member of group nogroup' ||
    mki_fail "no clear refusal: $out"
  grep -q 'access refused: uid 12345' "$MKI_DIR/cl/modiked.log" || mki_fail "the refusal is not logged"
  # Not even past the file mode.
  out=$(setpriv --reuid=12345 --regid=12345 --clear-groups "$MODIKE" --socket "$SOCK" status 2>&1); rc=$?
  [ $rc = 8 ] || mki_fail "uid 12345:12345: exit $rc, want 8: $out"
  mki_log "ok: peer credentials"

  # Hostile clients next to a well-behaved one.
  python3 - "$SOCK" <<'PY' || { mki_dump_logs; mki_fail "control socket misbehaved"; }
import json, socket, sys, time
path = sys.argv[1]
def conn():
    s = socket.socket(socket.AF_UNIX); s.connect(path); s.settimeout(5); return s
def lines(s, n):
    buf = b""
    while buf.count(b"\n") < n:
        d = s.recv(65536)
        if not d: break
        buf += d
    return [json.loads(l) for l in buf.split(b"\n") if l]
good = conn()
good.sendall(b'{"v":1,"type":"subscribe","id":1,"events":true,"log":"message"}\n')
assert lines(good, 1)[0]["type"] == "result"
bad = conn()
bad.sendall(b'garbage\n{"v":9,"type":"hello","id":1}\n{"v":1}\n[]\n{"v":1,"type":"nope","id":2}\n'
            b'{"v":1,"type":"connect","id":3}\n{"v":1,"type":"hello"}\n' + b'[' * 5000 + b'\n')
got = lines(bad, 8)
assert [m["type"] for m in got] == ["error"] * 8, got
assert all(m["code"] == "malformed" for m in got), got
bad.sendall(b'{"v":1,"type":"hello","id":4}\n')
assert lines(bad, 1)[0]["type"] == "result"
# A line past 128 KiB without a newline: answered, then dropped.
big = conn()
try:
    big.sendall(b'{"v":1,"type":"upload","id":1,"site":"' + b"x" * (300 * 1024))
except OSError:
    pass
m = lines(big, 1)
assert m and m[0]["code"] == "malformed" and "longer" in m[0]["message"], m
time.sleep(0.2)
try:
    assert big.recv(100) == b""
except ConnectionResetError:
    pass
# A client that never reads: dropped once its queue is full, daemon unhurt.
slow = conn()
slow.setblocking(False)
req = b'{"v":1,"type":"status","id":1}\n' * 1000
sent = 0
for _ in range(200):
    try:
        slow.send(req)
    except (BlockingIOError, BrokenPipeError, ConnectionResetError):
        time.sleep(0.01)
good.sendall(b'{"v":1,"type":"statistics","id":2}\n')
st, logged, buf = None, None, b""
deadline = time.time() + 5
while (st is None or logged is None) and time.time() < deadline:
    d = good.recv(65536)
    if not d: break
    buf += d
    while b"\n" in buf:
        l, buf = buf.split(b"\n", 1)
        m = json.loads(l)
        if m["type"] == "result" and m.get("id") == 2: st = m
        if m.get("event") == "log" and "dropping it" in m["message"]: logged = m
assert st and "ike_sas" in st and st["control_clients"] >= 1, st
assert st["engine"]["rx_packets"] >= 0 and "auth_failures" in st["engine"], st
# The subscriber saw the drop as a log line.
assert logged and logged["level"] == "warning" and logged["domain"] == "modike-daemon", logged
PY
  mki_modiked_alive cl || { mki_dump_logs; mki_fail "modiked died"; }
  grep -q 'does not read its messages; dropping it' "$MKI_DIR/cl/modiked.log" ||
    { mki_dump_logs; mki_fail "the stuck client was not dropped"; }
  mki_log "ok: malformed, oversized and stuck clients"

  # A bad site: refused with its file and line; the daemon keeps none.
  sed 's/group="modp2048"/group="modp9999"/' "$MKI_DIR/cl/site.xml" > "$MKI_DIR/cl/bad-site.xml"
  line=$(grep -n modp9999 "$MKI_DIR/cl/bad-site.xml" | cut -d: -f1)
  out=$("$MODIKE" --socket "$SOCK" connect "$MKI_DIR/cl/bad-site.xml" 2>&1); rc=$?
  [ $rc = 3 ] || mki_fail "bad site: exit $rc, want 3: $out"
  printf '%s\n' "$out" | grep -q "bad-site\.xml:$line: <proposal>: .*modp9999" || mki_fail "bad site: $out"
  printf '<modike><daemon/></modike>\n' > "$MKI_DIR/cl/daemon-site.xml"
  out=$("$MODIKE" --socket "$SOCK" connect "$MKI_DIR/cl/daemon-site.xml" 2>&1); rc=$?
  [ $rc = 3 ] && printf '%s\n' "$out" | grep -q 'daemon-site\.xml:1: <daemon>: a site holds only' ||
    mki_fail "a site with <daemon>: exit $rc: $out"
  out=$("$MODIKE" --socket "$MKI_DIR/cl/none.sock" status 2>&1); rc=$?
  [ $rc = 6 ] && printf '%s\n' "$out" | grep -q 'modiked is not running' || mki_fail "no daemon: exit $rc: $out"
  out=$("$MODIKE" --socket "$SOCK" disconnect nosuch 2>&1); rc=$?
  [ $rc = 1 ] && printf '%s\n' "$out" | grep -q 'no site nosuch' || mki_fail "disconnect nosuch: exit $rc: $out"
  mki_modiked_alive cl || { mki_dump_logs; mki_fail "modiked died"; }
  mki_modiked_stop cl || mki_fail "modiked did not stop"
  [ -e "$SOCK" ] && mki_fail "the control socket is left behind"
  mki_log "PASS: $CASE"
  ;;
control-connect)
  command -v ping >/dev/null || mki_fail "ping missing (scripts/deps.sh installs iputils-ping)"
  control_pair
  connect_bg "$MKI_DIR/connect1.out"
  connect_up
  cat "$CONNECT_OUT" >&2
  mki_ping cl 5 -i 0.2 -W 2 || true
  [ "$MKI_PING_RX" -ge 4 ] || { mki_dump_logs; mki_fail "ping through the site: $MKI_PING_RX of 5 replies"; }
  out=$("$MODIKE" --socket "$SOCK" status 2>&1) || mki_fail "modike status: $out"
  printf '%s\n' "$out" >&2
  printf '%s\n' "$out" | grep -Eq '^PEER +SA +STATE/SPIS +ALGORITHMS +LIFETIME +BYTES IN/OUT$' ||
    mki_fail "status: no header"
  printf '%s\n' "$out" | grep -Eq '^gw +IKE +ESTABLISHED +aes128-sha256-modp2048 +28800s' || mki_fail "status: no IKE row"
  printf '%s\n' "$out" | grep -Eq '^gw +ESP +[0-9a-f]{8}/[0-9a-f]{8} +aes128gcm16 +3600s +[1-9][0-9]*/[1-9][0-9]*$' ||
    mki_fail "status: no ESP row with bytes"
  st=$(ctl_request "$SOCK" '{"type":"statistics"}') || mki_fail "statistics: $st"
  python3 -c 'import json,sys; m=json.loads(sys.argv[1]); e=m["engine"]
assert m["ike_sas_established"] == 1 and m["sites"] == 1, m
assert e["rx_packets"] >= 4 and e["tx_packets"] >= 4 and e["auth_failures"] == 0, m' "$st" ||
    mki_fail "statistics: $st"
  st=$(ctl_request "$SOCK" '{"type":"status"}') || mki_fail "status: $st"
  python3 -c 'import json,sys; m=json.loads(sys.argv[1]); ike=m["sas"][0]; esp=ike["children"][0]
assert m["sites"] == ["gw"] and ike["peer"] == "gw" and ike["state"] == "ESTABLISHED", m
assert len(ike["icookie"]) == 16 and ike["role"] == "initiator" and ike["lifetime"] == 28800, m
assert esp["algorithms"] == "aes128gcm16" and esp["bytes_in"] > 0 and esp["packets_out"] >= 5, m' "$st" ||
    mki_fail "status JSON: $st"
  # A reload keeps the uploaded site and its SAs.
  before=$(grep -E '^(IKE|  ESP)' "$(mki_modiked_status cl)")
  kill -HUP "$(mki_modiked_pid cl)"
  wait_line "$MKI_DIR/cl/modiked.log" 'configuration reloaded' 10 || { mki_dump_logs; mki_fail "no reload"; }
  [ "$(grep -E '^(IKE|  ESP)' "$(mki_modiked_status cl)")" = "$before" ] || mki_fail "SIGHUP changed the site's SAs"
  # modike disconnect from another shell: site and SAs gone, the attached client told.
  out=$("$MODIKE" --socket "$SOCK" disconnect gw 2>&1) || mki_fail "modike disconnect: $out"
  connect_exit 10; rc=$?
  [ $rc = 7 ] || { cat "$CONNECT_OUT" >&2; mki_fail "attached client: exit $rc after disconnect, want 7"; }
  grep -q 'detached: disconnected on request' "$CONNECT_OUT" || { cat "$CONNECT_OUT" >&2; mki_fail "no detach line"; }
  mki_poll 10 no_sas cl || mki_fail "SAs left on the client after disconnect"
  mki_poll 10 no_sas gw || mki_fail "SAs left on the gateway after disconnect (no DELETE?)"
  out=$("$MODIKE" --socket "$SOCK" disconnect gw 2>&1) && mki_fail "the site is still there: $out"
  mki_log "ok: connect, ping, status, disconnect"
  # Again, ended by Ctrl-C / SIGTERM on the client: exit 0, nothing left.
  connect_bg "$MKI_DIR/connect2.out"
  connect_up
  kill -TERM "$CONNECT_PID"
  connect_exit 10; rc=$?
  [ $rc = 0 ] || { cat "$CONNECT_OUT" >&2; mki_fail "modike connect: exit $rc on SIGTERM, want 0"; }
  mki_poll 10 no_sas cl || mki_fail "SAs left after SIGTERM on the client"
  mki_poll 10 no_sas gw || mki_fail "SAs left on the gateway after SIGTERM on the client"
  mki_log "PASS: $CASE"
  ;;
control-detach)
  control_pair
  connect_bg "$MKI_DIR/connect1.out"
  connect_up
  kill -KILL "$CONNECT_PID"
  wait "$CONNECT_PID" 2>/dev/null
  mki_poll 10 no_sas cl || mki_fail "SAs left after the attached client was killed"
  mki_poll 10 no_sas gw || mki_fail "SAs left on the gateway after the attached client was killed"
  grep -q 'site gw: removed (the attached client went away)' "$MKI_DIR/cl/modiked.log" ||
    { mki_dump_logs; mki_fail "the site was not removed"; }
  mki_log "ok: killed client"
  connect_bg "$MKI_DIR/connect2.out"
  connect_up
  mki_modiked_stop gw || mki_fail "gw did not stop"
  connect_exit 15; rc=$?
  [ $rc = 7 ] || { cat "$CONNECT_OUT" >&2; mki_fail "client: exit $rc after the peer deleted the SA, want 7"; }
  grep -q 'detached: the ISAKMP SA was deleted' "$CONNECT_OUT" || { cat "$CONNECT_OUT" >&2; mki_fail "no detach line"; }
  mki_poll 10 no_sas cl || mki_fail "SAs left after the peer's DELETE"
  out=$("$MODIKE" --socket "$SOCK" status 2>&1) || mki_fail "status: $out"
  printf '%s\n' "$out" | grep -q 'no security associations' || mki_fail "status after detach: $out"
  mki_log "PASS: $CASE"
  ;;
control-failures)
  control_pair
  # Short retransmits so that an unanswered phase 1 gives up quickly.
  sed -i 's|<retransmit interval="1000" tries="5" half-open="30"/>|<retransmit interval="200" tries="2" half-open="5"/>|' \
    "$MKI_DIR/cl/site.xml"
  grep -q 'interval="200"' "$MKI_DIR/cl/site.xml" || mki_fail "could not shorten the retransmits"
  cp "$MKI_DIR/cl/site.xml" "$MKI_DIR/cl/good-site.xml"
  # A wrong pre-shared key: the gateway says AUTHENTICATION_FAILED, exit 4,
  # and the site is gone afterwards.
  sed 's/secret="demo-secret"/secret="wrong-secret"/' "$MKI_DIR/cl/good-site.xml" > "$MKI_DIR/cl/site.xml"
  connect_bg "$MKI_DIR/wrong-psk.out"
  connect_exit 30; rc=$?
  cat "$CONNECT_OUT" >&2
  grep -Eq '^phase1 +failed ' "$CONNECT_OUT" || mki_fail "wrong PSK: no 'phase1 failed' line"
  grep -q '^detached: ' "$CONNECT_OUT" || mki_fail "wrong PSK: not detached"
  [ $rc = 4 ] || mki_fail "wrong PSK: exit $rc, want 4"
  mki_poll 10 no_sas cl || mki_fail "SAs left after the failure"
  out=$("$MODIKE" --socket "$SOCK" status 2>&1)
  printf '%s\n' "$out" | grep -q 'no security associations' || mki_fail "status after the failure: $out"
  # The gateway is gone: phase 1 times out, exit 5, the site removed.
  mki_modiked_stop gw || mki_fail "gw did not stop"
  cp "$MKI_DIR/cl/good-site.xml" "$MKI_DIR/cl/site.xml"
  connect_bg "$MKI_DIR/timeout.out"
  connect_exit 30; rc=$?
  cat "$CONNECT_OUT" >&2
  [ $rc = 5 ] || mki_fail "unreachable gateway: exit $rc, want 5"
  grep -Eq '^phase1 +failed +[0-9]+\.[0-9]{3} s' "$CONNECT_OUT" || mki_fail "no 'phase1 failed' with its time"
  # Uploading the same site again works: the failed one was removed.
  connect_bg "$MKI_DIR/timeout2.out"
  connect_exit 30; rc=$?
  [ $rc = 5 ] || { cat "$CONNECT_OUT" >&2; mki_fail "second try: exit $rc, want 5"; }
  mki_log "PASS: $CASE"
  ;;
*) mki_fail "unknown case $CASE" ;;
esac
exit 0
