#!/bin/bash
# Dead peer detection (plugins/dpd) against charon. modiked (plugins natt
# esp_user tun dpd) and charon (kernel-libipsec) as in traffic-case.sh:
# cl 192.0.2.2 with 203.0.113.1 behind it, gw 192.0.2.1 with 198.51.100.1.
#
# usage: dpd-case.sh CASE
#   dpd-dead-gateway: modiked in cl has only a <control> socket; `modike
#       connect SITE` uploads the peer (dpd.delay 2 s, dpd.timeout 10 s,
#       dpd.action clear) and stays attached. Once a ping passes, nftables
#       in gw's namespace drops everything in and out: modiked notices
#       within delay + timeout (+ 4 s of slack), removes its SAs, the
#       adapter's route to 198.51.100.0/24 and the site; `modike connect`
#       exits 5 saying "dead peer detected: no answer to R-U-THERE within
#       10 s"; the status file's "PLUGIN dpd" line counts the R-U-THEREs
#       sent and the dead peer.
#   dpd-dead-gateway-restart: the same with dpd.action restart and short
#       retransmits (0.5 s, 3 tries: an attempt gives up after about 7.5 s): phase 1
#       keeps starting again while the gateway stays dark (20 s: several
#       attempts), `modike connect` stays attached; once the nftables table
#       goes, phase 1 and Quick Mode come up again and a ping passes.
#   dpd-responder: charon in cl initiates with dpd_delay 2 s and
#       dpd_timeout 5 s to modiked in gw (its own DPD off: dpd.delay 0, it
#       only answers); over 12 idle seconds charon asks and modiked
#       answers each R-U-THERE with the same sequence number (charon's
#       log, and modiked's "PLUGIN dpd" status line), and both keep
#       their SAs; a ping passes afterwards.
# Environment: MODIKED, MODIKE (the client), MODIKE_PLUGIN_DIR
# (':'-separated directories of natt.so, esp_user.so, tun.so, dpd.so).
set -u
HERE=$(cd "$(dirname "$0")" && pwd)
# shellcheck source=../lib.sh
. "$HERE/../lib.sh"

CASE=${1:-}
WAIT=${MKI_WAIT:-30}
ACTION=clear SIDE_M=cl SIDE_C=gw
case $CASE in
  dpd-dead-gateway) ;;
  dpd-dead-gateway-restart) ACTION=restart ;;
  dpd-responder) SIDE_M=gw SIDE_C=cl ;;
  *) echo "usage: $0 CASE (see the head of this file)" >&2; exit 2 ;;
esac
MKI_CASE=$CASE
mki_require_prereqs charon modiked traffic
command -v nft >/dev/null || mki_fail "missing prerequisite: nft (nftables; scripts/deps.sh installs it)"
mki_setup "$CASE"

fail () {
  mki_log "FAIL: $*"
  echo "----- charon ($SIDE_C) swanctl --list-sas -----" >&2
  mki_swanctl "$SIDE_C" --list-sas --noblock >&2 2>&1 || true
  mki_modiked_alive "$SIDE_M" && mki_modiked_status "$SIDE_M" >/dev/null
  [ -n "${OUT:-}" ] && [ -f "$OUT" ] && { echo "----- modike connect -----" >&2; cat "$OUT" >&2; }
  mki_dump_logs
  exit 1
}

# --- charon ------------------------------------------------------------------
if [ "$SIDE_C" = gw ]; then
  c_local=$MKI_GW_V4 c_remote=$MKI_CL_V4 c_lts=$MKI_GW_NET c_rts=$MKI_CL_NET c_id=gw c_rid=client
  c_dpd="dpd_delay = 0"
else
  c_local=$MKI_CL_V4 c_remote=$MKI_GW_V4 c_lts=$MKI_CL_NET c_rts=$MKI_GW_NET c_id=client c_rid=gw
  c_dpd="dpd_delay = 2s
    dpd_timeout = 5s"
fi
cat >"$MKI_DIR/$SIDE_C/swanctl.conf" <<EOF
connections {
  rw {
    version = 1
    local_addrs = $c_local
    remote_addrs = $c_remote
    proposals = aes128-sha256-modp2048
    rekey_time = 0
    $c_dpd
    local {
      auth = psk
      id = $c_id
    }
    remote {
      auth = psk
      id = $c_rid
    }
    children {
      net {
        mode = tunnel
        local_ts = $c_lts
        remote_ts = $c_rts
        esp_proposals = aes128-sha256
        rekey_time = 0
        start_action = none
        dpd_action = clear
      }
    }
  }
}
secrets {
  ike-1 {
    secret = "testpsk"
  }
}
EOF
mki_strongswan_conf "$SIDE_C"
mki_charon_start "$SIDE_C"
mki_swanctl_load "$SIDE_C"
mki_libipsec_route "$SIDE_C"

# --- modiked -------------------------------------------------------------------
mki_drop_lo_host "$SIDE_M"
CFG=$MKI_DIR/$SIDE_M/modiked.xml
if [ "$SIDE_M" = cl ]; then
  m_addr=$MKI_CL_V4 m_far=$MKI_GW_V4 m_name=gw m_id=client m_rid=gw
  m_lts=$MKI_CL_NET m_rts=$MKI_GW_NET m_host=$MKI_CL_HOST
  options="<option name=\"dpd.delay\" value=\"2\"/><option name=\"dpd.timeout\" value=\"10\"/><option name=\"dpd.action\" value=\"$ACTION\"/>"
else
  m_addr=$MKI_GW_V4 m_far=$MKI_CL_V4 m_name=cl m_id=gw m_rid=client
  m_lts=$MKI_GW_NET m_rts=$MKI_CL_NET m_host=$MKI_GW_HOST
  options="<option name=\"dpd.delay\" value=\"0\"/>"
fi
mki_modiked_conf "$CFG" LISTEN="$m_addr" NAME=$m_name INITIATE=no \
  LOCAL="$m_addr" REMOTE="$m_far" LOCAL_ID=$m_id REMOTE_ID=$m_rid PSK=testpsk \
  LOCAL_TS="$m_lts" REMOTE_TS="$m_rts" \
  STATUS="$MKI_DIR/$SIDE_M/modiked.status" LOGLEVEL=debug \
  PLUGINS="natt esp_user tun dpd" ADAPTER=mk0 ADAPTER_ADDR="$m_host/32"
# The peer's DPD options; for a restart, attempts that give up sooner.
sed -i "s|^  </peer>|    $options\n  </peer>|" "$CFG"
[ "$ACTION" = restart ] && sed -i 's|<retransmit interval="1000" tries="5"|<retransmit interval="500" tries="3"|' "$CFG"
grep -q 'dpd.delay' "$CFG" || fail "could not add the DPD options: $(cat "$CFG")"
ip netns exec "$(mki_ns "$SIDE_M")" timeout 20 "$MODIKED" -c "$CFG" --check >"$MKI_DIR/$SIDE_M/check.out" 2>&1 ||
  { cat "$MKI_DIR/$SIDE_M/check.out" "$CFG" >&2; fail "modiked --check rejected the configuration"; }
LOG=$MKI_DIR/$SIDE_M/modiked.log
m_ike () { local st; st=$(mki_modiked_status "$SIDE_M") || return 1; grep -Eq '^IKE ' "$st"; }
m_esp () { local st; st=$(mki_modiked_status "$SIDE_M") || return 1; grep -Eq '^ +ESP ' "$st"; }
c_up () {
  local raw; raw=$(mki_sas_raw "$SIDE_C")
  [ "$(mki_raw_field "$raw" state)" = ESTABLISHED ] && [ "$(mki_raw_field "$(mki_raw_child "$raw")" state)" = INSTALLED ]
}

if [ "$SIDE_M" = gw ]; then
  # --- dpd-responder ---------------------------------------------------------
  mki_modiked_start gw "$CFG"
  sleep 1
  mki_modiked_alive gw || fail "modiked exited at start"
  mki_swanctl cl --initiate --child net --timeout "$WAIT" >"$MKI_DIR/cl/initiate.out" 2>&1 ||
    fail "charon could not initiate: $(cat "$MKI_DIR/cl/initiate.out")"
  mki_poll 10 'c_up && m_esp' || fail "no SAs on both sides"
  ike0=$(mki_raw_field "$(mki_sas_raw cl)" uniqueid)
  sleep 12
  CLOG=$MKI_DIR/cl/charon.log
  asked=$(grep -c 'generating INFORMATIONAL_V1 request .*N(DPD)' "$CLOG")
  answered=$(grep -c 'parsed INFORMATIONAL_V1 request .*N(DPD_ACK)' "$CLOG")
  mki_log "charon sent $asked R-U-THERE, got $answered R-U-THERE-ACK"
  [ "$asked" -ge 4 ] || fail "charon sent $asked R-U-THERE in 12 idle seconds (dpd_delay 2 s), want >= 4"
  [ "$answered" -ge $((asked - 1)) ] || fail "modiked answered $answered of $asked R-U-THERE"
  grep -qi 'invalid DPD\|DPD.*invalid' "$CLOG" && fail "charon rejected an answer's sequence number"
  c_up || fail "charon lost its SA despite the answers"
  [ "$(mki_raw_field "$(mki_sas_raw cl)" uniqueid)" = "$ike0" ] || fail "charon's IKE SA changed"
  m_esp || fail "modiked lost its SAs"
  grep -q 'R-U-THERE [0-9]* answered' "$LOG" || fail "modiked's log shows no answered R-U-THERE"
  st=$(mki_modiked_status gw) || fail "no status from modiked"
  grep -E '^PLUGIN dpd ' "$st" >&2
  grep -Eq '^PLUGIN dpd .* r_u_there_received=[1-9][0-9]* ack_sent=[1-9]' "$st" ||
    fail "modiked's status does not count the R-U-THEREs answered"
  mki_ping gw 3 -i 0.2 -W 2
  [ "$MKI_PING_RX" = 3 ] || fail "ping through the tunnel after the idle time: $MKI_PING_RX of 3"
  mki_modiked_stop gw || fail "modiked did not stop on SIGTERM"
  mki_log "PASS: $CASE"
  exit 0
fi

# --- dpd-dead-gateway(-restart): modike connect against a control socket -------
[ -x "${MODIKE:-}" ] || fail "MODIKE (the modike client) is not set or not executable"
SOCK=$MKI_DIR/cl/ctl.sock SITE=$MKI_DIR/cl/site.xml OUT=$MKI_DIR/connect.out
mki_site_split "$CFG" "$SITE" "$SOCK" || fail "could not split the config into daemon and site"
mki_modiked_start cl "$CFG"
mki_poll 10 "[ -S '$SOCK' ]" || fail "no control socket $SOCK"
"$MODIKE" --socket "$SOCK" connect "$SITE" >"$OUT" 2>&1 &
CONNECT=$!
MKI_PIDS+=("$CONNECT")
mki_poll "$WAIT" "grep -Eq '^phase2 +up' '$OUT'" || fail "modike connect: no phase 2"
mki_poll 10 'c_up && m_esp' || fail "no SAs on both sides after modike connect"
mki_ping cl 3 -i 0.2 -W 2
[ "$MKI_PING_RX" = 3 ] || fail "ping through the tunnel: $MKI_PING_RX of 3"
ip -n "$(mki_ns cl)" route show "$MKI_GW_NET" | grep -q mk0 || fail "no route to $MKI_GW_NET through mk0"

GWNS=$(mki_ns gw)
ip netns exec "$GWNS" nft -f - <<'EOF' || fail "nft: cannot make the gateway dark"
table inet mkdpd {
  chain in { type filter hook input priority 0; policy drop; }
  chain out { type filter hook output priority 0; policy drop; }
}
EOF
dark=$SECONDS
mki_log "gateway dark (nftables in $GWNS)"
mki_poll 20 "grep -q 'dead peer detected' '$LOG'" || fail "modiked noticed nothing within 20 s"
noticed=$((SECONDS - dark))
mki_log "modiked: $(grep -m1 'dead peer detected' "$LOG") (after ${noticed} s)"
[ $noticed -ge 11 ] || fail "dead peer declared after $noticed s, before delay + timeout (12 s)"
[ $noticed -le 16 ] || fail "dead peer declared after $noticed s, want delay + timeout (12 s) + slack"
grep -q 'R-U-THERE [0-9]* sent' "$LOG" || fail "modiked's log shows no R-U-THERE sent"

if [ "$ACTION" = clear ]; then
  for i in $(seq 1 100); do kill -0 "$CONNECT" 2>/dev/null || break; sleep 0.1; done
  kill -0 "$CONNECT" 2>/dev/null && fail "modike connect still runs after the dead peer"
  wait "$CONNECT"; rc=$?
  cat "$OUT" >&2
  [ $rc = 5 ] || fail "modike connect: exit $rc, want 5 (nobody answers)"
  grep -q 'dead peer detected: no answer to R-U-THERE within 10 s' "$OUT" || fail "modike connect did not say why"
  mki_poll 5 '! m_ike' || fail "modiked still has an SA"
  st=$(mki_modiked_status cl) || fail "no status from modiked"
  grep -E '^PLUGIN dpd ' "$st" >&2
  grep -Eq '^PLUGIN dpd r_u_there_sent=[1-9][0-9]* .* dead_peers=1 ' "$st" ||
    fail "modiked's status does not count the R-U-THEREs sent and the dead peer"
  ip -n "$(mki_ns cl)" route show "$MKI_GW_NET" | grep -q . &&
    fail "route to $MKI_GW_NET still there: $(ip -n "$(mki_ns cl)" route show "$MKI_GW_NET")"
  if ip -n "$(mki_ns cl)" link show mk0 >/dev/null 2>&1; then
    fail "adapter mk0 still there: $(ip -n "$(mki_ns cl)" addr show mk0)"
  fi
  out=$("$MODIKE" --socket "$SOCK" disconnect gw 2>&1) && fail "the site is still there: $out"
else
  # Several attempts while dark; the client stays attached.
  sleep 20
  kill -0 "$CONNECT" 2>/dev/null || fail "modike connect exited during the restart attempts"
  tries=$(grep -c 'no answer yet: starting phase 1 again' "$LOG")
  mki_log "phase 1 attempts that ran out while dark: $tries"
  [ "$tries" -ge 2 ] || fail "phase 1 was not started again after failing ($tries)"
  m_esp && fail "modiked has an ESP SA while the gateway is dark"
  ups=$(grep -Ec '^phase2 +up' "$OUT")
  ip netns exec "$GWNS" nft delete table inet mkdpd || fail "nft: cannot remove the table"
  light=$SECONDS
  mki_log "gateway answers again"
  mki_poll 30 "[ \$(grep -Ec '^phase2 +up' '$OUT') -gt $ups ]" || fail "no phase 2 again within 30 s"
  mki_poll 10 'c_up && m_esp' || fail "no SAs on both sides after the restart"
  mki_log "reconnected $((SECONDS - light)) s after the gateway came back"
  mki_ping cl 3 -i 0.2 -W 2
  [ "$MKI_PING_RX" = 3 ] || fail "ping after the reconnect: $MKI_PING_RX of 3"
  "$MODIKE" --socket "$SOCK" disconnect gw >/dev/null 2>&1 || fail "modike disconnect failed"
  for i in $(seq 1 100); do kill -0 "$CONNECT" 2>/dev/null || break; sleep 0.1; done
  cat "$OUT" >&2
  grep -q 'dead peer detected' "$OUT" || fail "modike connect did not show the dead peer"
fi
mki_modiked_stop cl || fail "modiked did not stop on SIGTERM"
mki_log "PASS: $CASE"
exit 0
