#!/usr/bin/env bash
# Suite scale: modiked as a gateway under load, in network namespaces.
#   flood      3000 Main Mode first messages (random cookies, an SA payload
#              the gw accepts) from one address against a modiked responder
#              (natt + esp_user + tun, after three real setups): its RSS
#              grows by less than 512 KiB, it keeps running, the per-address
#              limit (32) made the SAs, the rest were dropped and the log has
#              summary lines, not one line per message
#   flood-64   an established modiked <-> modiked tunnel carries ping while
#              first messages flood in from 64 source addresses for 10 s:
#              at most 1 of 50 pings lost, the established SAs unchanged,
#              the drops counted (status HALF-OPEN line)
#   template   a remote-access gateway (a remote="virtual" policy, the
#              modecfg pool, esp_user) takes TEMPLATE_N (2000) clients from
#              modiked+loadtest (mode-config, 64 sources, held): each gets
#              its own address and its own policy instance; then
#              TEMPLATE_N more come and go one after the other (hold
#              "no"): their instances and leases go with them, the held
#              clients' instances stay as they were
# FLOOD_RATE (messages per second, flood-64) changes the run by hand.
# Needs root; a missing prerequisite fails.
set -uo pipefail
CASE=${1:?case}
ROOT=$(cd "$(dirname "$0")/../.." && pwd)
# shellcheck source=../interop/lib.sh
. "$ROOT/tests/interop/lib.sh"
mki_require_prereqs modiked
command -v python3 >/dev/null || mki_fail "python3 missing (scripts/deps.sh installs it)"
command -v ping >/dev/null || mki_fail "ping missing (scripts/deps.sh installs iputils-ping)"
mki_setup "scale-$CASE"

# flood_send TO COUNT SECONDS SOURCES...: Main Mode first messages from cl
# to TO:500, round robin over the source addresses, COUNT of them or for
# SECONDS (COUNT 0) at FLOOD_RATE a second (0: as fast as python goes).
# Each has a fresh random initiator cookie and one proposal
# (aes128-sha256-modp2048, pre-shared key): without the limits each would
# make a half-open SA. Prints how many it sent.
flood_send () {
  local to=$1 count=$2 seconds=$3; shift 3
  ip netns exec "$MKI_NS_CL" python3 - "$to" "$count" "$seconds" "${FLOOD_RATE:-0}" "$@" <<'PY'
import os, socket, struct, sys, time
to, count, seconds, rate = sys.argv[1], int(sys.argv[2]), float(sys.argv[3]), float(sys.argv[4])
socks = []
for a in sys.argv[5:]:
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    s.bind((a, 0))
    socks.append(s)
def tv(t, v):
    return struct.pack("!HH", 0x8000 | t, v)
# encryption AES-CBC, key length 128, hash SHA2-256, auth PSK, group 14,
# life type seconds, life duration 28800
attrs = tv(1, 7) + tv(14, 128) + tv(2, 4) + tv(3, 1) + tv(4, 14) + tv(11, 1) + tv(12, 28800)
transform = struct.pack("!BBHBBH", 0, 0, 8 + len(attrs), 1, 1, 0) + attrs
proposal = struct.pack("!BBHBBBB", 0, 0, 8 + len(transform), 1, 1, 0, 1) + transform
sa = struct.pack("!BBHII", 0, 0, 12 + len(proposal), 1, 1) + proposal
rest = struct.pack("!BBBBII", 1, 0x10, 2, 0, 0, 28 + len(sa)) + sa
sent, start = 0, time.monotonic()
while (count and sent < count) or (not count and time.monotonic() - start < seconds):
    socks[sent % len(socks)].sendto(os.urandom(8) + bytes(8) + rest, (to, 500))
    sent += 1
    if rate and sent % 50 == 0:
        ahead = sent / rate - (time.monotonic() - start)
        if ahead > 0:
            time.sleep(ahead)
    elif not rate and sent % 100 == 0:
        time.sleep(0.003)   # lets the receiver's socket buffer drain
print(sent)
PY
}

# The gw's config gets a responder-only entry "clients" (no remote
# address) next to its peer "client", so first messages from any address
# find a peer config; its secret is never used.
gw_add_clients () {
  local cfg=$MKI_DIR/gw/modiked.xml
  python3 - "$cfg" "$MKI_GW_V4" <<'PY' || mki_fail "editing $cfg"
import sys
cfg, gw = sys.argv[1:3]
text = open(cfg).read()
entry = ('  <peer name="clients">\n    <local address="%s"/>\n    <auth method="psk" secret="unused-secret"/>\n'
         '    <phase1 exchange="main"><proposal encryption="aes128" hash="sha256" group="modp2048"/></phase1>\n'
         '  </peer>\n' % gw)
i = text.index('  <policy ')
open(cfg, "w").write(text[:i] + entry + text[i:])
PY
}

# UDP datagrams the gw's kernel dropped for a full receive buffer.
udp_rcvbuf_errors () {
  ip netns exec "$MKI_NS_GW" awk '/^Udp:/ { if (n++) print $6 }' /proc/net/snmp
}

# The gw gets a control socket (for `statistics`).
gw_add_control () {
  local cfg=$MKI_DIR/gw/modiked.xml
  sed -i "s|^  <peer |  <control socket=\"$MKI_DIR/gw/ctl.sock\"/>\n&|" "$cfg"
  grep -q '<control ' "$cfg" || mki_fail "no <control> in $cfg"
}

# The gw's engine counters from `statistics` on its control socket, as
# "name=value ..." on one line.
gw_engine_stats () {
  python3 - "$MKI_DIR/gw/ctl.sock" <<'PY'
import json, socket, sys
s = socket.socket(socket.AF_UNIX); s.connect(sys.argv[1]); s.settimeout(5)
s.sendall(json.dumps({"v": 1, "id": 1, "type": "statistics"}).encode() + b"\n")
buf = b""
while b"\n" not in buf:
    d = s.recv(65536)
    if not d: sys.exit("connection closed")
    buf += d
m = json.loads(buf.split(b"\n", 1)[0])
if m.get("type") != "result": sys.exit("statistics: %s" % m)
print(" ".join("%s=%s" % kv for kv in sorted(m["engine"].items())))
PY
}

rss_kib () { awk '/^VmRSS:/ { print $2 }' "/proc/$(mki_modiked_pid gw)/status"; }

# The gw's status line "HALF-OPEN sas=.. limit-drops=.. expired=..".
half_open_line () {
  local st
  st=$(mki_modiked_status gw) || mki_fail "no status from gw"
  grep '^HALF-OPEN ' "$st" || true
}

# The established SAs of the gw's status, without the traffic counters.
established () {
  local st
  st=$(mki_modiked_status gw) || mki_fail "no status from gw"
  awk '/^IKE / { up = ($3 == "ESTABLISHED") } up && /^(IKE|  ESP) /' "$st" | sed 's/ packets=.*//'
}

# Waits (WAIT s) for the drop summary in the gw's log; prints it.
wait_summary () {
  local i line
  for i in $(seq 1 $((${1:-15} * 10))); do
    line=$(grep -o 'half-open limit: dropped [0-9]* first messages.*' "$MKI_DIR/gw/modiked.log" | tail -n1)
    [ -n "$line" ] && { echo "$line"; return 0; }
    sleep 0.1
  done
  return 1
}

case $CASE in
flood)
  mki_pair_conf DATAPATH=yes ESP_ENCR=aes128gcm16 ESP_INTEG="" LOGLEVEL=message
  gw_add_control
  # An ASan build keeps freed memory in quarantine (256 MiB): the flood's
  # per-message buffers, all freed, would count as growth. No effect on
  # other builds.
  export ASAN_OPTIONS="${ASAN_OPTIONS:+$ASAN_OPTIONS:}quarantine_size_mb=0"
  mki_drop_lo_host gw
  mki_drop_lo_host cl
  mki_pair_start || { mki_dump_logs; mki_fail "modiked (gw) exited at start"; }
  # Warm-up: three real setups (the client restarts), ping through each.
  for round in 1 2 3; do
    if [ "$round" != 1 ]; then
      mki_modiked_stop cl || mki_fail "cl did not stop"
      sleep 1
      mki_modiked_start cl "$MKI_DIR/cl/modiked.xml"
    fi
    mki_poll 30 mki_pair_up || { mki_dump_logs; mki_fail "no SA within 30 s (setup $round)"; }
    mki_ping cl 3 -i 0.2 -W 2 || { mki_dump_logs; mki_fail "no ping through setup $round"; }
  done
  mki_modiked_stop cl || mki_fail "cl did not stop"
  sleep 1
  rss0=$(rss_kib)
  lines0=$(wc -l < "$MKI_DIR/gw/modiked.log")
  kdrops0=$(udp_rcvbuf_errors)
  sent=$(FLOOD_RATE=${FLOOD_RATE:-5000} flood_send "$MKI_GW_V4" 3000 0 "$MKI_CL_V4") ||
    mki_fail "the flood sender failed"
  [ "$sent" = 3000 ] || mki_fail "sent $sent first messages, not 3000"
  sleep 1
  mki_modiked_alive gw || { mki_dump_logs; mki_fail "modiked (gw) died in the flood"; }
  rss1=$(rss_kib)
  summary=$(wait_summary 15) || { mki_dump_logs; mki_fail "no drop summary in the gw's log"; }
  ho=$(half_open_line)
  kdrops=$(( $(udp_rcvbuf_errors) - kdrops0 ))
  lines1=$(wc -l < "$MKI_DIR/gw/modiked.log")
  mki_log "RSS ${rss0} KiB -> ${rss1} KiB (+$((rss1 - rss0)) KiB) for $sent first messages"
  mki_log "log: +$((lines1 - lines0)) lines; $summary"
  mki_log "status: $ho; the kernel dropped $kdrops (receive buffer full)"
  # An ASan build maps shadow memory and a region per allocation size:
  # its own growth, so a looser bound there.
  limit=512
  ldd "$MODIKED" | grep -q libasan && limit=2048
  [ $((rss1 - rss0)) -lt $limit ] || mki_fail "RSS grew by $((rss1 - rss0)) KiB (limit $limit)"
  sas=$(mki_status_field " $ho" sas) drops=$(mki_status_field " $ho" limit-drops)
  [ "${sas:-0}" = 32 ] || mki_fail "$sas half-open SAs, not 32 (the per-address limit)"
  # Every message made an SA, was dropped by the limit, or never reached
  # modiked (a busy machine); most must reach it.
  [ $((sas + drops + kdrops)) = "$sent" ] || mki_fail "$sas SAs + $drops limit drops + $kdrops kernel drops != $sent"
  [ "${drops:-0}" -ge 1500 ] || mki_fail "only ${drops:-0} first messages dropped by the limit"
  stats=$(gw_engine_stats) || mki_fail "no statistics from the gw's control socket"
  mki_log "statistics: $stats"
  printf ' %s\n' "$stats" | grep -q " rx_half_open_limit=$drops " && printf ' %s\n' "$stats" | grep -q " half_open=32 " ||
    mki_fail "statistics disagree with the status: $stats"
  printf '%s\n' "$summary" | grep -q "from 1 address in the last 10 s (per-address limit 32; most from $MKI_CL_V4: " ||
    mki_fail "unexpected summary: $summary"
  [ $((lines1 - lines0)) -le 20 ] || { tail -n 40 "$MKI_DIR/gw/modiked.log" >&2; mki_fail "$((lines1 - lines0)) log lines for the flood"; }
  mki_modiked_stop gw || mki_fail "gw did not stop on SIGTERM"
  mki_log "PASS: 3000 first messages from one address: +$((rss1 - rss0)) KiB RSS, $((lines1 - lines0)) log lines"
  ;;
flood-64)
  mki_pair_conf DATAPATH=yes ESP_ENCR=aes128gcm16 ESP_INTEG="" LOGLEVEL=message
  gw_add_clients
  mki_drop_lo_host gw
  mki_drop_lo_host cl
  srcs=()
  for i in $(seq 10 73); do
    ip -n "$MKI_NS_CL" addr add "192.0.2.$i/24" dev veth0 || mki_fail "address 192.0.2.$i"
    srcs+=("192.0.2.$i")
  done
  mki_pair_start || { mki_dump_logs; mki_fail "modiked (gw) exited at start"; }
  mki_poll 30 mki_pair_up || { mki_dump_logs; mki_fail "no SA within 30 s"; }
  mki_pair_agree || { mki_dump_logs; mki_fail "the sides disagree"; }
  mki_ping cl 3 -i 0.2 -W 2 || { mki_dump_logs; mki_fail "no ping through the tunnel"; }
  before=$(established)
  [ -n "$before" ] || mki_fail "no established SA in the gw's status"
  lines0=$(wc -l < "$MKI_DIR/gw/modiked.log")
  FLOOD_RATE=${FLOOD_RATE:-20000}
  flood_send "$MKI_GW_V4" 0 10 "${srcs[@]}" > "$MKI_DIR/cl/flood.out" 2>&1 &
  flood_pid=$!
  sleep 0.3
  mki_ping cl 50 -i 0.2 -W 1 || true
  wait "$flood_pid" || { cat "$MKI_DIR/cl/flood.out" >&2; mki_fail "the flood sender failed"; }
  sent=$(tail -n1 "$MKI_DIR/cl/flood.out")
  mki_modiked_alive gw || { mki_dump_logs; mki_fail "modiked (gw) died in the flood"; }
  lost=$((MKI_PING_TX - MKI_PING_RX))
  after=$(established)
  ho=$(half_open_line)
  summary=$(wait_summary 15) || { mki_dump_logs; mki_fail "no drop summary in the gw's log"; }
  lines1=$(wc -l < "$MKI_DIR/gw/modiked.log")
  mki_log "flood: $sent first messages from 64 addresses in 10 s; ping: $MKI_PING_RX of $MKI_PING_TX"
  mki_log "status: $ho"
  mki_log "log: +$((lines1 - lines0)) lines; $summary"
  [ "$MKI_PING_TX" -ge 50 ] && [ "$lost" -le 1 ] || mki_fail "ping lost $lost of $MKI_PING_TX under the flood"
  [ "$after" = "$before" ] || { printf 'before:\n%s\nafter:\n%s\n' "$before" "$after" >&2
                                mki_fail "the established SAs changed under the flood"; }
  drops=$(mki_status_field " $ho" limit-drops)
  [ "${drops:-0}" -gt 0 ] || mki_fail "no drops counted: $ho"
  [ $((lines1 - lines0)) -le 40 ] || { tail -n 40 "$MKI_DIR/gw/modiked.log" >&2; mki_fail "$((lines1 - lines0)) log lines for the flood"; }
  mki_modiked_stop gw || mki_fail "gw did not stop on SIGTERM"
  mki_log "PASS: $sent first messages from 64 addresses, ping lost $lost of $MKI_PING_TX, tunnel unchanged"
  ;;
template)
  N=${TEMPLATE_N:-2000}
  for i in $(seq 10 73); do
    ip -n "$MKI_NS_CL" addr add "192.0.2.$i/24" dev veth0 || mki_fail "address 192.0.2.$i"
  done
  pool='<modecfg><leases file="memory"/><pool name="rw" range="10.64.0.0/10"/><gateway peer="clients" pools="rw"/></modecfg>'
  mki_modiked_conf "$MKI_DIR/gw/modiked.xml" LISTEN="$MKI_GW_V4" NAME=clients LOCAL="$MKI_GW_V4" LOCAL_ID=gw \
    PSK=load-secret LOCAL_TS=10.2.0.0/24 REMOTE_TS=virtual LOGLEVEL=message PLUGINS="natt esp_user modecfg" \
    SECTIONS_XML="$pool" STATUS="$MKI_DIR/gw/modiked.status"
  # gen HOLD COUNT IDS: modiked+loadtest in cl, mode-config setups of
  # clients IDS%u from 64 sources; waits for its report.
  gen () {
    local report=$MKI_DIR/cl/report-$3.json lt
    lt="<loadtest enable=\"yes\" peer=\"gw\" count=\"$2\" concurrency=\"32\" hold=\"$1\" timeout=\"120000\""
    lt="$lt sources=\"192.0.2.10-192.0.2.73\" id-template=\"$3%u.example\" report-file=\"$report\" mode-config=\"yes\"/>"
    mki_modiked_conf "$MKI_DIR/cl/modiked.xml" NAME=gw REMOTE="$MKI_GW_V4" REMOTE_ID=gw PSK=load-secret \
      PLUGINS="natt loadtest" SECTIONS_XML="$lt" LOCAL_TS=10.1.0.0/24 REMOTE_TS=10.2.0.0/24 LOGLEVEL=message \
      STATUS="$MKI_DIR/cl/modiked.status"
    # The clients' setups are phase 1 and mode config: their policy only bypasses.
    sed -i -e 's/action="protect"/action="bypass"/' -e '/<proposal encryption="[^"]*" integrity=/d' "$MKI_DIR/cl/modiked.xml"
    mki_modiked_start cl "$MKI_DIR/cl/modiked.xml"
    mki_poll $(($2 / 10 + 60)) "[ -s '$report' ]" || { mki_dump_logs; mki_fail "no loadtest report within $(($2 / 10 + 60)) s"; }
    mki_log "loadtest $3: $(tr -d '\n' < "$report")"
    ok=$(python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))["ok"])' "$report")
    [ "$ok" = "$2" ] || { mki_dump_logs; mki_fail "$ok of $2 clients got an address"; }
  }
  instances () {
    st=$(mki_modiked_status gw) || mki_fail "no status from gw"
    grep '^  POLICY ' "$st" | sort
  }
  mki_modiked_start gw "$MKI_DIR/gw/modiked.xml"
  mki_poll 10 "ip netns exec $MKI_NS_GW ss -Huln 'sport = :500' | grep -q ." || { mki_dump_logs; mki_fail "gw does not listen"; }
  # N clients stay.
  gen yes "$N" client
  held=$(instances)
  policies=$(printf '%s\n' "$held" | grep -c '^  POLICY clients net@10\.')
  remotes=$(printf '%s\n' "$held" | sed 's/.* remote=//' | sort -u | wc -l)
  mki_log "gw status: $policies policy instances, $remotes distinct client addresses"
  [ "$policies" = "$N" ] && [ "$remotes" = "$N" ] || mki_fail "$policies instances for $remotes addresses, not $N"
  printf '%s\n' "$held" | grep -qv ' local=10.2.0.0/24 remote=10\.' && mki_fail "an instance with other selectors"
  # Their generator vanishes (no DELETE): the gw keeps them. Then N more
  # clients come and go, one after the other.
  kill -KILL "$(mki_modiked_pid cl)" 2>/dev/null
  sleep 1
  gen no "$N" late
  mki_modiked_stop cl || mki_fail "cl did not stop"
  sleep 2
  after=$(instances)
  back=$(grep -c "back from user 'late" "$MKI_DIR/gw/modiked.log")
  mki_log "after $N more clients came and went: $(printf '%s\n' "$after" | grep -c .) instances, $back of their leases back"
  [ "$after" = "$held" ] || mki_fail "the held clients' instances changed while others came and went"
  [ "$back" = "$N" ] || mki_fail "$back leases back, not $N"
  mki_modiked_alive gw || mki_fail "gw died"
  mki_modiked_stop gw || mki_fail "gw did not stop on SIGTERM"
  mki_log "PASS: $N remote-access clients held their instances while $N more came and went"
  ;;
*)
  mki_fail "unknown case $CASE"
  ;;
esac
