#!/bin/bash
# NAT traversal through a real NAT (issue 9, interop (a)): modiked clients
# (esp_user + tun) behind a router namespace rt that masquerades
# everything leaving on its gw link (nftables), charon (kernel-libipsec)
# as the gateway in gw. rt's UDP conntrack timeouts are 30 s, so an idle
# mapping is gone after half a minute.
#
# usage: natt-case.sh CASE
#   natt-masquerade   one client (cl, 192.0.2.129, natt.keepalive 20 s):
#       NAT-D shows it behind the NAT, IKE moves to 4500, ESP in UDP, ping
#       both ways; then 65 s without traffic, and a ping from gw's side
#       first: it only arrives while the client's keepalives held the
#       mapping. modiked sent keepalives, nothing was renegotiated.
#   natt-masquerade-nokeepalive  the same with natt.keepalive 0: the ping
#       from gw's side after the idle minute is lost (the mapping expired),
#       which shows that the first case needs the keepalives.
#   natt-draft03, natt-draft02  modiked offers only that draft of NAT-T
#       (natt.versions): charon answers in it; the capture on gw's link
#       shows NAT-D as payload 130 (not 20) from both sides in Main Mode
#       messages 3 and 4; tunnel up, ping.
#   natt-mapping-change  roles swapped: modiked is the gateway in gw, charon
#       the client in cl (no keepalives; charon does DPD only with a peer
#       that sent the DPD vendor ID, which modiked without a dpd plugin
#       does not). Child "net" (198.51.100.0/25 - 203.0.113.0/25) comes up;
#       rt drops all UDP 500/4500 for 35 s (before conntrack: the mapping
#       expires) and masquerades to ports 40000-40099 from then on; charon
#       then starts a second child "net2" (the upper /25s), whose Quick
#       Mode comes from the new port: modiked logs "moved from
#       192.0.2.126[4500] to 192.0.2.126[400NN]", keeps the IKE SA and
#       net's ESP SAs, and pings over net (its ESP SAs moved) cross both
#       ways.
#   natt-roaming  the client roams: modiked in cl without a pinned local
#       address (natt.roam-check 2 s), up and ping as natt-masquerade; then
#       cl's veth0 address changes (192.0.2.129 -> 192.0.2.140, same /25,
#       route via rt again): modiked logs "local address 192.0.2.129 is
#       gone: roaming, reconnecting", a new IKE SA comes up (charon,
#       unique = replace, lists one established IKE SA, from a new mapping)
#       and pings work again within 20 s.
#   natt-two-clients  cl and c2 (192.0.2.130, linked to rt as well) behind
#       the same NAT, one public address: both get tunnels at once
#       (203.0.113.0/26 and 203.0.113.64/26 inside) and both ping.
# Environment: MODIKED, MODIKE_PLUGIN_DIR (natt, esp_user, tun).
set -u
HERE=$(cd "$(dirname "$0")" && pwd)
# shellcheck source=../lib.sh
. "$HERE/../lib.sh"

CASE=${1:-}
KEEPALIVE=20 TWO=no DRAFT="" MOVE=no ROAM=no
case $CASE in
  natt-masquerade) ;;
  natt-draft03) DRAFT=03 ;;
  natt-draft02) DRAFT=02 ;;
  natt-masquerade-nokeepalive) KEEPALIVE=0 ;;
  natt-two-clients) TWO=yes ;;
  natt-mapping-change) MOVE=yes ;;
  natt-roaming) ROAM=yes ;;
  *) echo "usage: $0 natt-masquerade|natt-masquerade-nokeepalive|natt-draft03|natt-draft02|natt-two-clients|natt-mapping-change|natt-roaming" >&2; exit 2 ;;
esac
MKI_CASE=$CASE
WAIT=${MKI_WAIT:-30}
IDLE=${MKI_NATT_IDLE:-65}

mki_require_prereqs charon modiked traffic
command -v nft >/dev/null 2>&1 || mki_fail "missing prerequisite: nft (scripts/deps.sh installs nftables)"
mki_setup_routed "$CASE"

fail () {
  mki_log "FAIL: $*"
  echo "----- charon (gw) swanctl --list-sas -----" >&2
  mki_swanctl gw --list-sas --noblock >&2 2>&1 || true
  echo "----- rt: conntrack -----" >&2
  ip netns exec "$MKI_NS_RT" cat /proc/net/nf_conntrack >&2 2>/dev/null || true
  mki_dump_logs
  exit 1
}

# --- rt: masquerade towards gw, short UDP timeouts ----------------------------
ip netns exec "$MKI_NS_RT" nft add table ip nat || fail "nft: no nat table in rt"
ip netns exec "$MKI_NS_RT" nft add chain ip nat post '{ type nat hook postrouting priority 100 ; }' ||
  fail "nft: no postrouting chain in rt"
ip netns exec "$MKI_NS_RT" nft add rule ip nat post oifname veth-gw counter masquerade || fail "nft: masquerade refused"
# Per network namespace (the host's values stay): checked below.
ip netns exec "$MKI_NS_RT" sysctl -qw net.netfilter.nf_conntrack_udp_timeout=30 \
  net.netfilter.nf_conntrack_udp_timeout_stream=30 || fail "cannot set rt's UDP conntrack timeouts"
[ "$(ip netns exec "$MKI_NS_RT" sysctl -n net.netfilter.nf_conntrack_udp_timeout_stream)" = 30 ] ||
  fail "rt's UDP stream timeout did not take"
PUBLIC=$MKI_RT_GW_V4   # what gw sees of every client

# A second client: its own veth to rt (c2 192.0.2.130/32, host routes).
C2_V4=192.0.2.130
if [ "$TWO" = yes ]; then
  ns=$MKI_PREFIX-c2-$MKI_ID
  ip netns add "$ns" || fail "ip netns add $ns"
  MKI_NS_EXTRA+=("$ns")
  # shellcheck disable=SC2034  # read by mki_ns through eval
  MKI_NS_SIDE_c2=$ns
  mkdir -p "$MKI_DIR/c2"
  ip -n "$MKI_NS_RT" link add veth-c2 type veth peer name veth0 netns "$ns" || fail "veth rt-c2"
  ip -n "$ns" link set lo up
  ip -n "$ns" addr add "$C2_V4/32" dev veth0
  ip -n "$ns" link set veth0 up
  ip -n "$MKI_NS_RT" addr add "$MKI_RT_CL_V4/32" dev veth-c2
  ip -n "$MKI_NS_RT" link set veth-c2 up
  ip -n "$MKI_NS_RT" route add "$C2_V4/32" dev veth-c2 || fail "route to c2 in rt"
  ip -n "$ns" route add "$MKI_RT_CL_V4/32" dev veth0 || fail "route to rt in c2"
  ip -n "$ns" route add 192.0.2.0/25 via "$MKI_RT_CL_V4" || fail "route to gw's link in c2"
  mki_wait_carrier "$ns" veth0
  mki_wait_carrier "$MKI_NS_RT" veth-c2
fi

# --- natt-mapping-change: modiked in gw, charon in cl --------------------------
ping_side () { # SIDE FROM TO COUNT: ping from SIDE's inner host
  ip netns exec "$(mki_ns "$1")" ping -n -c "$4" -W 2 -i 0.3 -I "$2" "$3" >"$MKI_DIR/$1/ping.out" 2>&1
  grep -o '[0-9]* received' "$MKI_DIR/$1/ping.out" | cut -d' ' -f1
}
if [ "$MOVE" = yes ]; then
  mki_swanctl_conf cl LOCAL_ADDR=$MKI_CL_V4 REMOTE_ADDR=$MKI_GW_V4 LOCAL_ID=client REMOTE_ID=gw \
    AGGRESSIVE=no PROPOSALS=aes128-sha256-modp2048 ESP_PROPOSALS=aes128-sha256 \
    LOCAL_TS=203.0.113.0/25 REMOTE_TS=198.51.100.0/25 PSK=testpsk
  awk '/^      net \{$/ { print "      net2 {"; print "        mode = tunnel";
         print "        local_ts = 203.0.113.128/25"; print "        remote_ts = 198.51.100.128/25";
         print "        esp_proposals = aes128-sha256"; print "        rekey_time = 0";
         print "        start_action = none"; print "      }" } { print }' \
    "$MKI_DIR/cl/swanctl.conf" >"$MKI_DIR/cl/swanctl.conf.new" && mv "$MKI_DIR/cl/swanctl.conf.new" "$MKI_DIR/cl/swanctl.conf"
  grep -q 'net2 {' "$MKI_DIR/cl/swanctl.conf" || fail "could not add the child net2 to charon's config"
  mki_strongswan_conf cl "default = 1; ike = 2; cfg = 1; net = 2; enc = 1"
  sed -i 's/^charon {$/&\n  keep_alive = 0s/' "$MKI_DIR/cl/strongswan.conf"
  mki_charon_start cl
  mki_swanctl_load cl
  mki_libipsec_route cl
  mki_drop_lo_host gw
  CFG=$MKI_DIR/gw/modiked.xml
  mki_modiked_conf "$CFG" LISTEN=$MKI_GW_V4 NAME=cl INITIATE=no \
    LOCAL=$MKI_GW_V4 REMOTE=$PUBLIC LOCAL_ID=gw REMOTE_ID=client PSK=testpsk \
    EXCHANGE=main PFS=none LOCAL_TS=198.51.100.0/25 REMOTE_TS=203.0.113.0/25 ESP_ENCR=aes128 ESP_INTEG=sha256 \
    STATUS="$MKI_DIR/gw/modiked.status" LOGLEVEL=debug \
    PLUGINS="natt esp_user tun" ADAPTER=mk0 ADAPTER_ADDR="$MKI_GW_HOST/32" \
    SECTIONS_XML='<policy name="net2" peer="cl" action="protect" mode="tunnel" local="198.51.100.128/25" remote="203.0.113.128/25" pfs="none" lifetime="3600"><proposal encryption="aes128" integrity="sha256"/></policy>'
  ip netns exec "$MKI_NS_GW" timeout 20 "$MODIKED" -c "$CFG" --check >"$MKI_DIR/gw/check.out" 2>&1 ||
    { cat "$MKI_DIR/gw/check.out" "$CFG" >&2; fail "modiked --check rejected gw's configuration"; }
  mki_modiked_start gw "$CFG"
  listening () { ip netns exec "$MKI_NS_GW" ss -Hlun 'sport = :500' 2>/dev/null | grep -q .; }
  mki_poll 5 listening || fail "modiked does not listen on UDP port 500"
  mki_swanctl cl --initiate --child net --timeout "$WAIT" >"$MKI_DIR/cl/initiate.out" 2>&1 &
  MKI_PIDS+=("$!")
  gw_up () {
    local st raw
    mki_modiked_alive gw || fail "modiked in gw exited"
    st=$(mki_modiked_status gw) || return 1
    grep -Eq '^IKE [^ ]+ ESTABLISHED ' "$st" && grep -Eq '^ +ESP ' "$st" || return 1
    raw=$(mki_sas_raw cl)
    [ "$(mki_raw_field "$(mki_raw_child "$raw")" state)" = INSTALLED ]
  }
  mki_poll "$WAIT" gw_up || fail "no SAs within $WAIT s"
  log=$MKI_DIR/gw/modiked.log
  esp_lines () { grep -E '^ +ESP ' "$(mki_modiked_status gw)" | grep -Eo 'in=[0-9a-f]+ out=[0-9a-f]+'; }
  before=$(esp_lines)
  rx=$(ping_side cl "$MKI_CL_HOST" "$MKI_GW_HOST" 3)
  [ "$rx" = 3 ] || fail "ping from cl before the move: $rx/3"
  # The outage: rt drops IKE and ESP in UDP before conntrack sees them, so
  # the mapping expires (30 s); afterwards it masquerades to new ports.
  mki_rt_nft 'udp dport { 500, 4500 } drop' 'udp sport { 500, 4500 } drop'
  ip netns exec "$MKI_NS_RT" nft flush chain ip nat post || fail "nft flush"
  ip netns exec "$MKI_NS_RT" nft add rule ip nat post oifname veth-gw meta l4proto udp counter masquerade to :40000-40099 ||
    fail "nft: masquerade to a port range refused"
  ip netns exec "$MKI_NS_RT" nft add rule ip nat post oifname veth-gw counter masquerade || fail "nft: masquerade refused"
  mki_log "rt drops UDP 500/4500 for 35 s, then maps to ports 40000-40099"
  sleep 35
  ip netns exec "$MKI_NS_RT" nft flush chain inet mki pre || fail "nft flush of the drops"
  grep -q 'moved from' "$log" && fail "modiked moved the SA before any authenticated message: $(grep 'moved from' "$log")"
  mki_swanctl cl --initiate --child net2 --timeout "$WAIT" >"$MKI_DIR/cl/initiate2.out" 2>&1 &
  MKI_PIDS+=("$!")
  moved () { grep -Eq "moved from $PUBLIC\[4500\] to $PUBLIC\[400[0-9][0-9]\]" "$log"; }
  mki_poll 20 moved || fail "modiked did not follow charon to its new port within 20 s of charon's Quick Mode for net2"
  mki_log "modiked: $(grep -Eo 'peer [^ ]+ moved from .*' "$log" | head -n1)"
  rx=$(ping_side gw "$MKI_GW_HOST" "$MKI_CL_HOST" 3)
  [ "$rx" = 3 ] || fail "ping from gw after the move: $rx/3"
  rx=$(ping_side cl "$MKI_CL_HOST" "$MKI_GW_HOST" 3)
  [ "$rx" = 3 ] || fail "ping from cl after the move: $rx/3"
  after=$(esp_lines)
  printf '%s\n' "$after" | grep -qF "$before" || fail "net's ESP SAs changed: $before -> $after"
  [ "$(grep -c 'IKE SA established' "$log")" = 1 ] || fail "phase 1 ran again"
  mki_log "PASS: charon's NAT mapping moved to a new port; modiked followed on net2's Quick Mode, net's SAs kept ($before), pings over them both ways"
  exit 0
fi

# --- charon in gw ------------------------------------------------------------
remote_ts=$MKI_CL_NET remote_id=client
[ "$TWO" = yes ] && remote_id='%any'
mki_swanctl_conf gw LOCAL_ADDR=$MKI_GW_V4 REMOTE_ADDR=$PUBLIC LOCAL_ID=gw REMOTE_ID="$remote_id" \
  AGGRESSIVE=no PROPOSALS=aes128-sha256-modp2048 ESP_PROPOSALS=aes128-sha256 \
  LOCAL_TS=$MKI_GW_NET REMOTE_TS=$remote_ts PSK=testpsk
mki_strongswan_conf gw "default = 1; ike = 2; cfg = 1; net = 2; enc = 1"
# charon keeps no mapping alive for the client: only the client's traffic may.
sed -i 's/^charon {$/&\n  keep_alive = 0s/' "$MKI_DIR/gw/strongswan.conf"
grep -q 'keep_alive = 0s' "$MKI_DIR/gw/strongswan.conf" || fail "could not turn charon's keepalives off"
# A roaming client's new IKE SA replaces its old one (same identity).
if [ "$ROAM" = yes ]; then
  sed -i 's/^    version = 1$/&\n    unique = replace/' "$MKI_DIR/gw/swanctl.conf"
  grep -q 'unique = replace' "$MKI_DIR/gw/swanctl.conf" || fail "could not set unique = replace"
fi
mki_charon_start gw
mki_swanctl_load gw
mki_libipsec_route gw

# --- modiked in the clients ----------------------------------------------------
# client SIDE ADDR ID INNER_HOST INNER_NET
client () {
  local side=$1 addr=$2 id=$3 host=$4 net=$5 cfg ns
  ns=$(mki_ns "$side")
  ip -n "$ns" addr del "$host/32" dev lo 2>/dev/null || true
  cfg=$MKI_DIR/$side/modiked.xml
  # A roaming client pins no address: it reconnects from whatever it has.
  local pin=$addr roam=""
  [ "$ROAM" = yes ] && pin="" roam='<option name="natt.roam-check" value="2"/>'
  mki_modiked_conf "$cfg" LISTEN="$pin" NAME=gw INITIATE=yes \
    LOCAL="$pin" REMOTE=$MKI_GW_V4 LOCAL_ID="$id" REMOTE_ID=gw PSK=testpsk \
    EXCHANGE=main PFS=none LOCAL_TS="$net" REMOTE_TS=$MKI_GW_NET ESP_ENCR=aes128 ESP_INTEG=sha256 \
    STATUS="$MKI_DIR/$side/modiked.status" LOGLEVEL=debug \
    PLUGINS="natt esp_user tun" ADAPTER=mk0 ADAPTER_ADDR="$host/32" \
    PEER_XML="$roam<option name=\"natt.keepalive\" value=\"$KEEPALIVE\"/>${DRAFT:+<option name=\"natt.versions\" value=\"draft-$DRAFT\"/>}"
  ip netns exec "$ns" timeout 20 "$MODIKED" -c "$cfg" --check >"$MKI_DIR/$side/check.out" 2>&1 ||
    { cat "$MKI_DIR/$side/check.out" "$cfg" >&2; fail "modiked --check rejected $side's configuration"; }
  mki_modiked_start "$side" "$cfg"
}
[ -n "$DRAFT" ] && mki_capture_start "$MKI_DIR/natt.pcapng"
if [ "$TWO" = yes ]; then
  client cl "$MKI_CL_V4" client 203.0.113.1 203.0.113.0/26
  client c2 "$C2_V4" client2 203.0.113.65 203.0.113.64/26
else
  client cl "$MKI_CL_V4" client "$MKI_CL_HOST" "$MKI_CL_NET"
fi

# side_up SIDE: modiked's status has an established IKE SA and an ESP SA.
side_up () {
  local st
  mki_modiked_alive "$1" || fail "modiked in $1 exited"
  st=$(mki_modiked_status "$1") || return 1
  grep -Eq '^IKE [^ ]+ ESTABLISHED ' "$st" && grep -Eq '^ +ESP ' "$st"
}
children_up () { # N: charon has N installed children
  [ "$(mki_swanctl gw --list-sas --noblock 2>/dev/null | grep -c 'INSTALLED')" -ge "$1" ]
}
if [ "$TWO" = yes ]; then
  mki_poll "$WAIT" 'side_up cl && side_up c2 && children_up 2' || fail "not both clients up within $WAIT s"
else
  mki_poll "$WAIT" 'side_up cl && children_up 1' || fail "no SAs within $WAIT s"
fi

sides=cl; [ "$TWO" = yes ] && sides="cl c2"
for side in $sides; do
  log=$MKI_DIR/$side/modiked.log
  grep -Eq "NAT-T ${DRAFT:+draft-}${DRAFT:-RFC 3947}, local [^ ]+ behind NAT" "$log" || fail "$side: NAT-D did not show it behind the NAT"
  grep -q 'peer floated\|floated to port\|4500' "$log" || fail "$side: no move to port 4500 in its log"
done
sas=$(mki_swanctl gw --list-sas --noblock 2>/dev/null)
printf '%s\n' "$sas" | grep -q "$PUBLIC\[[0-9]*\]" || fail "charon does not see the clients at $PUBLIC"
ports=$(printf '%s\n' "$sas" | grep -o "$PUBLIC\[[0-9]*\]" | sort -u)
mki_log "charon sees: $(echo $ports)"
printf '%s\n' "$sas" | grep -q 'UDP_ENCAP\|ENCAP' || mki_log "note: charon's listing shows no encapsulation flag"

if [ "$TWO" = yes ]; then
  # Both at once.
  ping_side cl 203.0.113.1 "$MKI_GW_HOST" 10 >"$MKI_DIR/cl/rx" &
  p1=$!
  ping_side c2 203.0.113.65 "$MKI_GW_HOST" 10 >"$MKI_DIR/c2/rx" &
  p2=$!
  wait $p1 $p2
  rx1=$(cat "$MKI_DIR/cl/rx") rx2=$(cat "$MKI_DIR/c2/rx")
  [ "$rx1" = 10 ] && [ "$rx2" = 10 ] || fail "pings at once through one NAT: cl $rx1/10, c2 $rx2/10"
  [ "$(echo "$ports" | wc -l)" = 2 ] || fail "charon does not see two source ports on $PUBLIC: $ports"
  mki_log "PASS: two clients behind one NAT ($(echo $ports)), both tunnels up, 10/10 pings each at once"
  exit 0
fi

rx=$(ping_side cl "$MKI_CL_HOST" "$MKI_GW_HOST" 5)
[ "$rx" = 5 ] || fail "ping through the tunnel from cl: $rx/5"
if [ -n "$DRAFT" ]; then
  mki_capture_stop
  grep -q "received draft-ietf-ipsec-nat-t-ike-$DRAFT vendor ID" "$MKI_DIR/gw/charon.log" ||
    fail "charon did not see our draft-$DRAFT vendor ID"
  for v in "RFC 3947" "draft-ietf-ipsec-nat-t-ike-03"; do
    [ "$v" = "draft-ietf-ipsec-nat-t-ike-$DRAFT" ] && continue
    grep -q "received $v vendor ID" "$MKI_DIR/gw/charon.log" && fail "we sent the $v vendor ID"
  done
  # Payload types of the plain Main Mode messages (port 500), per sender.
  types () { # SRC
    tshark -r "$MKI_DIR/natt.pcapng" -Y "udp.port == 500 && ip.src == $1" -T fields -e isakmp.typepayload 2>/dev/null |
      tr ',' '\n' | sort -un | tr '\n' ' '
  }
  from_cl=$(types "$PUBLIC") from_gw=$(types "$MKI_GW_V4")
  mki_log "payload types on the wire: from the client $from_cl; from charon $from_gw"
  for t in "$from_cl" "$from_gw"; do
    case " $t " in *" 130 "*) ;; *) fail "no NAT-D (draft, 130) on the wire: $t" ;; esac
    case " $t " in *" 20 "*) fail "NAT-D (RFC, 20) on the wire: $t" ;; esac
  done
  grep -Eq 'ESP SA established .* udp-encap' "$MKI_DIR/cl/modiked.log" || fail "no UDP-encapsulated ESP SA in modiked's log"
  mki_log "PASS: draft-$DRAFT NAT-T with charon behind masquerade: NAT-D 130 both ways, ESP in UDP, ping"
  exit 0
fi
rx=$(ping_side gw "$MKI_GW_HOST" "$MKI_CL_HOST" 3)
[ "$rx" = 3 ] || fail "ping through the tunnel from gw: $rx/3"
if [ "$ROAM" = yes ]; then
  log=$MKI_DIR/cl/modiked.log
  NEW_V4=192.0.2.140
  old_ike=$(mki_swanctl gw --list-sas --noblock 2>/dev/null | grep -o "$PUBLIC\[[0-9]*\]" | sort -u)
  ip -n "$MKI_NS_CL" addr del "$MKI_CL_V4/25" dev veth0 || fail "cannot remove cl's address"
  ip -n "$MKI_NS_CL" addr add "$NEW_V4/25" dev veth0 || fail "cannot add cl's new address"
  ip -n "$MKI_NS_CL" route replace 192.0.2.0/25 via "$MKI_RT_CL_V4" || fail "route via rt from the new address"
  mki_log "cl moved from $MKI_CL_V4 to $NEW_V4"
  roamed () { grep -q "peer gw: local address $MKI_CL_V4 is gone: roaming, reconnecting" "$log"; }
  mki_poll 10 roamed || fail "modiked did not notice that $MKI_CL_V4 went away within 10 s"
  reup () {
    local n
    [ "$(grep -c 'IKE SA established' "$log")" -ge 2 ] || return 1
    side_up cl || return 1
    n=$(mki_swanctl gw --list-sas --noblock 2>/dev/null | grep -c 'ESTABLISHED')
    [ "$n" = 1 ] && children_up 1
  }
  mki_poll 20 reup || fail "no new IKE SA (alone at charon) within 20 s of roaming"
  new_ike=$(mki_swanctl gw --list-sas --noblock 2>/dev/null | grep -o "$PUBLIC\[[0-9]*\]" | sort -u)
  ok=no
  for i in $(seq 10); do
    rx=$(ping_side cl "$MKI_CL_HOST" "$MKI_GW_HOST" 2)
    [ "$rx" = 2 ] && { ok=yes; break; }
    sleep 1
  done
  [ "$ok" = yes ] || fail "no ping through the new tunnel from cl"
  rx=$(ping_side gw "$MKI_GW_HOST" "$MKI_CL_HOST" 3)
  [ "$rx" = 3 ] || fail "ping from gw through the new tunnel: $rx/3"
  mki_log "PASS: cl roamed from $MKI_CL_V4 to $NEW_V4; modiked reconnected (charon: $old_ike -> $new_ike), pings both ways"
  exit 0
fi
spis_before=$(mki_swanctl gw --list-sas --noblock 2>/dev/null | grep -Eo 'SPIs: [0-9a-f_io ]+' | sort)

mki_log "idle for $IDLE s (rt forgets a UDP mapping after 30 s)"
sleep "$IDLE"
mki_modiked_alive cl || fail "modiked exited while idle"
kas=$(grep -c 'NAT keepalive [0-9]* sent' "$MKI_DIR/cl/modiked.log")
rx=$(ping_side gw "$MKI_GW_HOST" "$MKI_CL_HOST" 3)
spis_after=$(mki_swanctl gw --list-sas --noblock 2>/dev/null | grep -Eo 'SPIs: [0-9a-f_io ]+' | sort)
if [ "$KEEPALIVE" = 0 ]; then
  [ "$kas" = 0 ] || fail "natt.keepalive 0, yet $kas keepalives sent"
  [ "${rx:-0}" = 0 ] || fail "the ping from gw's side crossed the NAT after $IDLE idle seconds without keepalives ($rx/3): the mapping did not expire, so this topology cannot show what keepalives do"
  mki_log "PASS: without keepalives the mapping expired: gw's ping after $IDLE s idle lost (0/3)"
  exit 0
fi
[ "$kas" -ge 2 ] || fail "modiked sent $kas keepalives in $IDLE idle seconds (want >= 2 at 20 s)"
[ "$rx" = 3 ] || fail "ping from gw's side after $IDLE s idle: $rx/3 (the mapping was not held)"
[ "$spis_before" = "$spis_after" ] || fail "the SAs changed while idle: $spis_before -> $spis_after"
rx=$(ping_side cl "$MKI_CL_HOST" "$MKI_GW_HOST" 3)
[ "$rx" = 3 ] || fail "ping from cl after the idle minute: $rx/3"
mki_log "PASS: behind masquerade on 4500, $kas keepalives held the mapping through $IDLE idle seconds; same SAs, pings both ways"
exit 0
