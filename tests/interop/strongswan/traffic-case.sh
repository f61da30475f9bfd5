#!/bin/bash
# Traffic through modiked's datapath (esp_user + tun) against charon with
# kernel-libipsec. modiked runs in cl (192.0.2.2; its adapter mk0 holds
# 203.0.113.1/32 and routes 198.51.100.0/24), charon in gw (192.0.2.1;
# 198.51.100.1 on lo, 203.0.113.0/24 routed into its ipsec0). ESP travels
# in UDP on port 4500 (kernel-libipsec knows nothing else).
#
# usage: traffic-case.sh CASE
#   traffic-initiator-cbc, traffic-responder-cbc (AES-128-CBC/HMAC-SHA-256),
#   traffic-initiator-gcm, traffic-responder-gcm (AES-128-GCM-16):
#       ping 198.51.100.1 from 203.0.113.1; a 50 MB TCP transfer cl->gw (and
#       gw->cl for the responder cases) arrives with the same SHA-256;
#       modiked's counters: packets in and out > 0, bytes >= what was sent,
#       no drops. "initiator": modiked initiates; "responder": charon does.
#   acquire: modiked has initiate="no"; no SA until the first ping to
#       198.51.100.1, which brings phase 1 + Quick Mode up; later pings pass.
#   rekey-transfer-charon: a ~20 s transfer; charon rekeys the child
#       midway (swanctl --rekey --child net).
#   rekey-transfer-modiked: the same; modiked's policy lifetime (12 s) makes
#       its engine rekey midway (core/engine/sa.c rekeys at life - 10 % - up to
#       5 % jitter: second 11 here; the old pair goes at second 12).
#   Both rekey cases: the transfer completes with the right checksum, and
#   modiked's status shows the new SPIs, the ones charon has, carrying data.
# MKI_TRAFFIC_REFERENCE=1 runs charon in cl too (the harness against a peer
# known to work; modiked's own checks are left out; not for acquire and
# rekey-transfer-modiked). MKI_XFER_MB (50) sets the transfer size.
# Environment: MODIKED, MODIKE_PLUGIN_DIR (':'-separated directories of
# natt.so, esp_user.so, tun.so; the natt one alone finds its siblings).
# Exit 0 = pass; on failure the logs' tails and the status file.
set -u
HERE=$(cd "$(dirname "$0")" && pwd)
# shellcheck source=../lib.sh
. "$HERE/../lib.sh"

CASE=${1:-}
WAIT=${MKI_WAIT:-30}        # seconds for an exchange to finish
MB=${MKI_XFER_MB:-50}       # transfer size
REF=${MKI_TRAFFIC_REFERENCE:-0}
REKEY="" ROLE=initiator ALG=cbc PFS=none LIFE=3600
case $CASE in
  traffic-initiator-cbc) ;;
  traffic-responder-cbc) ROLE=responder ;;
  traffic-initiator-gcm) ALG=gcm ;;
  traffic-responder-gcm) ROLE=responder ALG=gcm ;;
  acquire)               ROLE=acquire ;;
  rekey-transfer-charon) REKEY=charon PFS=modp2048 ;;
  rekey-transfer-modiked) REKEY=modiked PFS=modp2048 LIFE=${MKI_REKEY_LIFE:-12} ;;
  *) echo "usage: $0 CASE (see the head of this file)" >&2; exit 2 ;;
esac
MKI_CASE=$CASE
if [ "$REF" = 1 ] && { [ "$ROLE" = acquire ] || [ "$REKEY" = modiked ]; }; then
  echo "$CASE needs modiked: no reference form" >&2; exit 2
fi

if [ "$REF" = 1 ]; then mki_require_prereqs charon traffic
else mki_require_prereqs charon modiked traffic; fi
mki_setup "$CASE"

fail () {
  mki_log "FAIL: $*"
  echo "----- charon (gw) swanctl --list-sas -----" >&2
  mki_swanctl gw --list-sas --noblock >&2 2>&1 || true
  if [ "$REF" != 1 ]; then
    echo "----- cl: ip addr / ip route -----" >&2
    ip -n "$MKI_NS_CL" addr >&2; ip -n "$MKI_NS_CL" route >&2
    mki_modiked_alive cl && mki_modiked_status cl >/dev/null
  fi
  mki_dump_logs
  exit 1
}

# CHARON_PLUGINS: what charon needs besides lib.sh's MKI_CHARON_PLUGINS.
if [ $ALG = gcm ]; then
  esp=aes128gcm16 esp_encr=aes128gcm16 esp_integ="" want_algs=aes128gcm16 CHARON_PLUGINS=gcm
else
  esp=aes128-sha256 esp_encr=aes128 esp_integ=sha256 want_algs=aes128-sha256 CHARON_PLUGINS=""
fi
[ "$PFS" != none ] && esp=$esp-$PFS
DATA=$MKI_DIR/data.bin
mki_make_data "$DATA" "$MB"
SIZE=$(stat -c %s "$DATA")

# --- charon in gw ------------------------------------------------------------
mki_swanctl_conf gw LOCAL_ADDR=$MKI_GW_V4 REMOTE_ADDR=$MKI_CL_V4 LOCAL_ID=gw REMOTE_ID=client \
  AGGRESSIVE=no PROPOSALS=aes128-sha256-modp2048 ESP_PROPOSALS="$esp" \
  LOCAL_TS=$MKI_GW_NET REMOTE_TS=$MKI_CL_NET PSK=testpsk
# shellcheck disable=SC2086  # a word list
mki_strongswan_conf gw "" $CHARON_PLUGINS
mki_charon_start gw
mki_swanctl_load gw
mki_libipsec_route gw

# --- cl: modiked (or charon for the reference form) --------------------------
if [ "$REF" = 1 ]; then
  mki_swanctl_conf cl LOCAL_ADDR=$MKI_CL_V4 REMOTE_ADDR=$MKI_GW_V4 LOCAL_ID=client REMOTE_ID=gw \
    AGGRESSIVE=no PROPOSALS=aes128-sha256-modp2048 ESP_PROPOSALS="$esp" \
    LOCAL_TS=$MKI_CL_NET REMOTE_TS=$MKI_GW_NET PSK=testpsk
  # shellcheck disable=SC2086  # a word list
  mki_strongswan_conf cl "" $CHARON_PLUGINS
  mki_charon_start cl
  mki_swanctl_load cl
  mki_libipsec_route cl
else
  # The adapter holds 203.0.113.1: off lo, so only the tunnel reaches it.
  mki_drop_lo_host cl
  initiate=no; [ "$ROLE" = initiator ] && initiate=yes
  CFG=$MKI_DIR/cl/modiked.xml
  mki_modiked_conf "$CFG" LISTEN=$MKI_CL_V4 NAME=gw INITIATE=$initiate \
    LOCAL=$MKI_CL_V4 REMOTE=$MKI_GW_V4 LOCAL_ID=client REMOTE_ID=gw PSK=testpsk \
    EXCHANGE=main PFS=$PFS LOCAL_TS=$MKI_CL_NET REMOTE_TS=$MKI_GW_NET \
    ESP_ENCR=$esp_encr ESP_INTEG="$esp_integ" P2_LIFE="$LIFE" \
    STATUS="$MKI_DIR/cl/modiked.status" LOGLEVEL=debug \
    PLUGINS="natt esp_user tun" ADAPTER=mk0 ADAPTER_ADDR="$MKI_CL_HOST/32"
  ip netns exec "$MKI_NS_CL" timeout 20 "$MODIKED" -c "$CFG" --check >"$MKI_DIR/cl/check.out" 2>&1
  rc=$?
  if [ $rc != 0 ]; then
    cat "$MKI_DIR/cl/check.out" >&2
    echo "----- modiked.xml -----" >&2; cat "$CFG" >&2
    fail "modiked --check rejected the configuration (status $rc)"
  fi
  mki_modiked_start cl "$CFG"
  listening () { ip netns exec "$MKI_NS_CL" ss -Hlun 'sport = :500' 2>/dev/null | grep -q .; }
  mki_poll 5 'listening || ! mki_modiked_alive cl'
  mki_modiked_alive cl || fail "modiked exited at start"
  listening || fail "modiked does not listen on UDP port 500 after 5 s"
  # The core creates the adapter when the config is applied, before any SA.
  adapter_ready () {
    ip -n "$MKI_NS_CL" -o addr show dev mk0 2>/dev/null | grep -q " $MKI_CL_HOST/32 " &&
      ip -n "$MKI_NS_CL" route get "$MKI_GW_HOST" 2>/dev/null | grep -q ' dev mk0 '
  }
  mki_poll 5 adapter_ready ||
    fail "no adapter mk0 with $MKI_CL_HOST/32 and a route to $MKI_GW_NET through it 5 s after start"
  mki_log "adapter: $(ip -n "$MKI_NS_CL" -o addr show dev mk0 | awk '{print $2, $4}' | tr '\n' ' ')" \
    "route: $(ip -n "$MKI_NS_CL" route get "$MKI_GW_HOST" | head -n1)"
fi

# --- bring the SAs up ----------------------------------------------------------
initiate_bg () { # SIDE: swanctl --initiate in the background (the polls decide)
  mki_swanctl "$1" --initiate --child net --timeout "$WAIT" >"$MKI_DIR/$1/initiate.out" 2>&1 &
  MKI_PIDS+=("$!")
}
case $ROLE in
  responder) initiate_bg gw ;;
  initiator) [ "$REF" = 1 ] && initiate_bg cl ;;
esac

RAW="" ST=""
cl_up () {
  if [ "$REF" = 1 ]; then
    local raw; raw=$(mki_sas_raw cl)
    [ "$(mki_raw_field "$(mki_raw_child "$raw")" state)" = INSTALLED ]
    return
  fi
  mki_modiked_alive cl || fail "modiked exited"
  ST=$(mki_modiked_status cl) || return 1
  grep -Eq '^IKE [^ ]+ ESTABLISHED ' "$ST" && grep -Eq '^ +ESP ' "$ST"
}
both_up () {
  RAW=$(mki_sas_raw gw)
  [ "$(mki_raw_field "$RAW" state)" = ESTABLISHED ] || return 1
  [ "$(mki_raw_field "$(mki_raw_child "$RAW")" state)" = INSTALLED ] || return 1
  cl_up
}

if [ "$ROLE" = acquire ]; then
  # Nothing may start by itself: no SA anywhere 3 s after the start.
  sleep 3
  [ -z "$(mki_sas_raw gw)" ] || fail "charon has an SA before any traffic: $(mki_sas_raw gw)"
  ST=$(mki_modiked_status cl) || fail "modiked wrote no status file on SIGUSR1"
  if grep -Eq '^IKE |^ +ESP ' "$ST"; then fail "modiked has an SA before any traffic: $(cat "$ST")"; fi
  mki_log "no SA before the first packet; pinging $MKI_GW_HOST once"
  t0=$(date +%s%N)
  mki_ping cl 1 -W 5 2>/dev/null &
  ping_pid=$!
  mki_poll "$WAIT" both_up || fail "the first ping did not bring the SAs up within $WAIT s"
  mki_log "SAs up $(( ($(date +%s%N) - t0) / 1000000 )) ms after the first ping was sent"
  # The ping waited in the acquire queue and left when the SA came: one
  # packet out before any other is sent.
  queued_out () {
    local st; st=$(mki_modiked_status cl) || return 1
    mki_esp_counters "$(grep -E '^ +ESP ' "$st" | head -n1)" && [ "$MKI_PKT_OUT" -ge 1 ]
  }
  mki_poll 3 queued_out || fail "the queued first packet never left: $(grep -E '^ +ESP ' "$MKI_DIR/cl/modiked.status")"
  wait $ping_pid
  # Its reply is not required: the queue is flushed when our SA is
  # installed, and charon may not have installed its own yet.
  mki_log "first ping: $MKI_PKT_OUT packet(s) out of the queue, $(grep -c 'bytes from' "$MKI_DIR/cl/ping.out") of 1 replies"
  grep -Eqi 'acquire' "$MKI_DIR/cl/modiked.log" ||
    mki_log "note: modiked's log does not mention the acquire"
fi
mki_poll "$WAIT" both_up || fail "no SA on both sides within $WAIT s"

lc () { tr 'A-F' 'a-f'; }
esp_lines () { grep -E '^ +ESP ' "$1"; }
if [ "$REF" != 1 ]; then
  esp_line=$(esp_lines "$ST" | head -n1)
  c_child=$(mki_raw_child "$RAW")
  [ "$(mki_status_field "$esp_line" out | lc)" = "$(mki_raw_field "$c_child" spi-in | lc)" ] &&
    [ "$(mki_status_field "$esp_line" in | lc)" = "$(mki_raw_field "$c_child" spi-out | lc)" ] ||
    fail "SPIs differ: modiked '$esp_line', charon spi-in $(mki_raw_field "$c_child" spi-in) spi-out $(mki_raw_field "$c_child" spi-out)"
  read -r _ _ _ _ algs mode encap _ <<<"$esp_line"
  [ "$algs" = "$want_algs" ] || fail "ESP algorithms: want $want_algs, modiked shows '$esp_line'"
  [ "$mode $encap" = "tunnel udp-encap" ] || fail "want a tunnel-mode SA in UDP: '$esp_line'"
  mki_log "ESP SA: $esp_line"
fi

# --- ping ------------------------------------------------------------------------
if [ "$ROLE" = acquire ]; then n=3; else n=5; fi
mki_ping cl $n -i 0.2 -W 2
[ "$MKI_PING_RX" = "$n" ] || fail "ping $MKI_GW_HOST from $MKI_CL_HOST through the tunnel: $MKI_PING_RX of $n replies"
mki_log "ping through the tunnel: $MKI_PING_RX/$MKI_PING_TX"

# --- transfers -----------------------------------------------------------------
spis () { # the in/out SPIs of modiked's ESP lines (or charon's cl child), one pair a line
  if [ "$REF" = 1 ]; then
    mki_sas_raw cl | grep -o 'spi-in=[0-9a-f]* spi-out=[0-9a-f]*' | sed 's/spi-in=//; s/spi-out=//'
  else
    local st; st=$(mki_modiked_status cl) || return 1
    esp_lines "$st" | while read -r line; do
      echo "$(mki_status_field "$line" in) $(mki_status_field "$line" out)"
    done
  fi
}

if [ -z "$REKEY" ]; then
  mki_transfer cl gw "$DATA" 0 60 || fail "transfer cl->gw: $MKI_XFER_RESULT"
  mki_log "transfer $MKI_XFER_RESULT"
  if [ "$ROLE" = responder ]; then
    mki_transfer gw cl "$DATA" 0 60 || fail "transfer gw->cl: $MKI_XFER_RESULT"
    mki_log "transfer $MKI_XFER_RESULT"
  fi
else
  before=$(spis | head -n1)
  [ -n "$before" ] || fail "no SPIs before the transfer"
  # ~20 s: paced at a twentieth of the file per second.
  mki_transfer_start cl gw "$DATA" $((SIZE / 20)) 90 || fail "the transfer did not start"
  rekeyed_at="" rekey_started=""
  while mki_transfer_running; do
    t=$((SECONDS - MKI_XFER_T0))
    if [ "$REKEY" = charon ] && [ -z "$rekey_started" ] && [ $t -ge 8 ]; then
      rekey_started=$t
      mki_swanctl gw --rekey --child net >"$MKI_DIR/gw/rekey.out" 2>&1 ||
        { cat "$MKI_DIR/gw/rekey.out" >&2; fail "swanctl --rekey --child net failed"; }
      mki_log "charon rekeyed the child at second $t of the transfer"
    fi
    if [ -z "$rekeyed_at" ]; then
      now=$(spis)
      if [ -n "$now" ] && ! printf '%s\n' "$now" | grep -qx "$before"; then
        rekeyed_at=$t
        mki_log "new SPIs at second $t of the transfer: $(printf '%s' "$now" | tr '\n' ' ')"
      elif [ -n "$now" ] && [ "$(printf '%s\n' "$now" | wc -l)" -gt 1 ]; then
        rekeyed_at=$t
        mki_log "a second pair at second $t of the transfer: $(printf '%s' "$now" | tr '\n' ' ')"
      fi
    fi
    sleep 1
  done
  mki_transfer_wait || fail "transfer during the rekey: $MKI_XFER_RESULT"
  mki_log "transfer $MKI_XFER_RESULT"
  [ -n "$rekeyed_at" ] || fail "no rekey while the transfer ran (SPIs stayed $before)"
  if [ "$REKEY" = modiked ] && [ "$REF" != 1 ]; then
    grep -q 'rekeying ESP SA' "$MKI_DIR/cl/modiked.log" ||
      fail "the SPIs changed but modiked's log has no 'rekeying ESP SA': it was not our engine"
  fi
  # The SA that carries traffic now: charon's newest child and one of
  # modiked's pairs, crosswise, and not the first pair.
  RAW=$(mki_sas_raw gw)
  charon_pairs=$(printf '%s\n' "$RAW" | grep -o 'spi-in=[0-9a-f]* spi-out=[0-9a-f]*' |
                 sed 's/spi-in=//; s/spi-out=//' | awk '{print $2, $1}')
  after=$(spis)
  mki_log "SPIs: first pair (in out) $before; cl now: $(printf '%s' "$after" | tr '\n' ';'); charon gw (as cl's in out): $(printf '%s' "$charon_pairs" | tr '\n' ';')"
  new_pairs=()
  while read -r p; do
    [ -n "$p" ] && [ "$p" != "$before" ] && printf '%s\n' "$charon_pairs" | grep -qx "$p" && new_pairs+=("$p")
  done <<<"$after"
  [ ${#new_pairs[@]} -gt 0 ] || fail "no new SPI pair that both sides share after the rekey"
  if [ "$REF" != 1 ]; then
    # One of them carried the rest of the transfer (a pair made by a
    # second rekey just before the end may not have carried anything yet).
    ST=$(mki_modiked_status cl) || fail "no status after the transfer"
    carried=""
    for p in "${new_pairs[@]}"; do
      line=$(esp_lines "$ST" | grep " in=${p% *} ")
      # Gone since the SPIs were read (12 s lifetimes: the older pair expires).
      [ -n "$line" ] || { mki_log "pair $p expired meanwhile"; continue; }
      mki_esp_counters "$line" || fail "the ESP line has no counters: '$line'"
      mki_log "new SA: $line"
      [ "$MKI_PKT_IN" -gt 0 ] && [ "$MKI_PKT_OUT" -gt 0 ] && carried=$line
    done
    [ -n "$carried" ] || fail "no new SA carried traffic both ways"
  fi
fi

# --- counters ---------------------------------------------------------------------
if [ "$REF" != 1 ] && [ -z "$REKEY" ]; then
  ST=$(mki_modiked_status cl) || fail "no status after the transfers"
  [ "$(esp_lines "$ST" | wc -l)" = 1 ] || fail "want one ESP SA pair: $(cat "$ST")"
  esp_line=$(esp_lines "$ST")
  mki_esp_counters "$esp_line" || fail "the ESP status line has no counters (packets= bytes= drops=): '$esp_line'"
  [ "$MKI_PKT_IN" -gt 0 ] && [ "$MKI_PKT_OUT" -gt 0 ] || fail "packets in/out not both > 0: '$esp_line'"
  [ "$MKI_BYTES_OUT" -ge "$SIZE" ] || fail "bytes out $MKI_BYTES_OUT < the $SIZE bytes sent: '$esp_line'"
  if [ "$ROLE" = responder ]; then
    [ "$MKI_BYTES_IN" -ge "$SIZE" ] || fail "bytes in $MKI_BYTES_IN < the $SIZE bytes received: '$esp_line'"
  fi
  [ "$MKI_DROPS" = 0 ] || fail "drops on a clean link (bad ICV, replay, policy, ...): '$esp_line'"
  mki_log "counters: $esp_line"
fi

# --- teardown: modiked stops and its adapter goes with it -------------------------
if [ "$REF" != 1 ]; then
  mki_log "status file:"; sed 's/^/    /' "$ST" >&2
  mki_modiked_stop cl || fail "modiked did not stop on SIGTERM"
  ip -n "$MKI_NS_CL" link show mk0 >/dev/null 2>&1 && fail "adapter mk0 still exists after modiked stopped"
fi
mki_log "PASS: $CASE"
exit 0
