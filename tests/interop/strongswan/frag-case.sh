#!/bin/bash
# IKE fragmentation against charon across a router with MTU 576 on its
# links that drops IP fragments (issue 9 (c)): modiked (cl, 192.0.2.129)
# initiates Main Mode with RSA certificates (tests/vectors/certs: client
# and gw chains, so messages 5 and 6 are about 2 KB) to charon (gw,
# 192.0.2.1, fragmentation = yes, fragment_size = 576). kernel-libipsec
# forces NAT-T, so messages 5 and 6 already travel on port 4500 with the
# non-ESP marker.
#
# usage: frag-case.sh CASE
#   frag-mtu576      modiked loads frag: both sides send their certificate
#                    messages in fragments of at most 576 bytes; the SAs
#                    come up, no IP fragment crosses the router
#   frag-mtu576-responder  the same with charon initiating
#   frag-mtu576-am   the same in Aggressive Mode (messages 2 and 3 carry the
#                    certificates); message 1 (a 2048-bit DH value, a DN,
#                    a CR) is over 576 bytes too and goes before the
#                    peer's vendor ID is known: modiked has <frag
#                    mode="force"/>
#   frag-mtu576-off  modiked without frag: its message 5 leaves as IP
#                    fragments, the router drops them; modiked resends
#                    it and fails phase 1 with a timeout (the half-open
#                    limit of 30 s comes before the last retransmission)
# Environment: MODIKED, MODIKE_PLUGIN_DIR (natt and frag build dirs).
set -u
HERE=$(cd "$(dirname "$0")" && pwd)
# shellcheck source=../lib.sh
. "$HERE/../lib.sh"

CASE=${1:-}
case $CASE in
  frag-mtu576) FRAG=yes ;;
  frag-mtu576-responder) FRAG=yes ROLE=responder ;;
  frag-mtu576-am) FRAG=yes EX=aggressive ;;
  frag-mtu576-off) FRAG=no WAIT=${MKI_WAIT:-60} ;;
  *) echo "usage: $0 frag-mtu576|frag-mtu576-responder|frag-mtu576-am|frag-mtu576-off" >&2; exit 2 ;;
esac
WAIT=${WAIT:-${MKI_WAIT:-40}} ROLE=${ROLE:-initiator} EX=${EX:-main}
MKI_CASE=$CASE
IKE_PROPOSAL=aes128-sha256-modp2048
ESP_PROPOSAL=aes128-sha256-modp2048

mki_require_prereqs charon modiked
command -v nft >/dev/null 2>&1 || mki_fail "missing prerequisite: nft (scripts/deps.sh installs nftables)"
mki_setup_routed "$CASE"
mki_rt_mtu 576
mki_rt_drop_ip_fragments

fail () {
  mki_log "FAIL: $*"
  mki_log "router drops (v4 later, v4 first, v6 fragments): $(mki_rt_nft_counts)"
  mki_dump_logs
  exit 1
}

# --- charon in gw ------------------------------------------------------------
CERTS=$HERE/../../vectors/certs
install -m 0700 -d "$MKI_DIR/gw/private"
install -m 0600 "$CERTS/gw.key" "$MKI_DIR/gw/private/gw.key"
install -m 0600 "$CERTS/client.key" "$MKI_DIR/cl/client.key"
aggr=no; [ "$EX" = aggressive ] && aggr=yes
MKI_SWANCTL_TEMPLATE=swanctl-cert.conf.in mki_swanctl_conf gw LOCAL_ADDR=$MKI_GW_V4 REMOTE_ADDR=$MKI_CL_V4 \
  AGGRESSIVE="$aggr" PROPOSALS=$IKE_PROPOSAL ESP_PROPOSALS=$ESP_PROPOSAL \
  LOCAL_TS=$MKI_GW_NET REMOTE_TS=$MKI_CL_NET CERT="$CERTS/gw-chain.pem" CACERT="$CERTS/ca.pem"
# fragmentation = yes: charon fragments (only) for a peer that sent the
# FRAGMENTATION vendor ID; fragment_size: whole IP datagrams of 576 bytes.
sed -i 's/^\( *\)version = 1$/&\n\1fragmentation = yes/' "$MKI_DIR/gw/swanctl.conf"
grep -q 'fragmentation = yes' "$MKI_DIR/gw/swanctl.conf" || fail "could not set fragmentation in swanctl.conf"
mki_strongswan_conf gw "default = 1; ike = 2; cfg = 1; net = 2; enc = 1" revocation constraints
sed -i 's/^charon {$/&\n  fragment_size = 576/' "$MKI_DIR/gw/strongswan.conf"
mki_charon_start gw
mki_swanctl_load gw

# --- modiked in cl -----------------------------------------------------------
plugins=natt; [ "$FRAG" = yes ] && plugins="natt frag"
# charon 5.9.8 sends its intermediate only in Main Mode message 6 (see
# run-case.sh): elsewhere modiked's anchors hold root and intermediate.
ca=$CERTS/ca.pem
if [ "$ROLE" = responder ] || [ "$EX" = aggressive ]; then
  ca=$MKI_DIR/cl/ca.d
  mkdir -p "$ca" && cp "$CERTS/ca.pem" "$CERTS/int.pem" "$ca/"
fi
auth_xml="<auth method=\"rsa\" cert=\"$CERTS/client-chain.pem\" key=\"$MKI_DIR/cl/client.key\"><ca path=\"$ca\"/><crl path=\"$CERTS/int.crl\"/></auth>"
CFG=$MKI_DIR/cl/modiked.xml STATUS=$MKI_DIR/cl/modiked.status
initiate=no; [ "$ROLE" = initiator ] && initiate=yes
sections=""; [ "$EX" = aggressive ] && sections='<frag mode="force"/>'
mki_modiked_conf "$CFG" LISTEN=$MKI_CL_V4 NAME=gw INITIATE=$initiate PLUGINS="$plugins" \
  LOCAL=$MKI_CL_V4 REMOTE=$MKI_GW_V4 LOCAL_ID="" REMOTE_ID="CN=gw,O=modike" ID_TYPE=dn AUTH_XML="$auth_xml" \
  EXCHANGE=$EX P1_ENCR=aes128 P1_HASH=sha256 P1_GROUP=modp2048 PFS=modp2048 \
  LOCAL_TS=$MKI_CL_NET REMOTE_TS=$MKI_GW_NET ESP_ENCR=aes128 ESP_INTEG=sha256 \
  STATUS="$STATUS" LOGLEVEL=debug SECTIONS_XML="$sections"
ip netns exec "$MKI_NS_CL" timeout 20 "$MODIKED" -c "$CFG" --check >"$MKI_DIR/cl/check.out" 2>&1 ||
  { cat "$MKI_DIR/cl/check.out" "$CFG" >&2; fail "modiked --check rejected the configuration"; }
mki_modiked_start cl "$CFG"
if [ "$ROLE" = responder ]; then
  listening () { ip netns exec "$MKI_NS_CL" ss -Hlun 'sport = :500' 2>/dev/null | grep -q .; }
  mki_poll 5 listening || fail "modiked does not listen on UDP port 500"
  STRONGSWAN_CONF=$MKI_DIR/gw/strongswan.conf "$MKI_SWANCTL" --initiate --child net \
    --timeout "$WAIT" --uri "unix://$MKI_DIR/gw/charon.vici" >"$MKI_DIR/gw/initiate.out" 2>&1 &
  MKI_PIDS+=("$!")
fi

if [ "$FRAG" = no ]; then
  gave_up () {
    mki_modiked_alive cl || fail "modiked exited during the exchange"
    grep -Eq 'phase 1 failed: peer gw: (no answer to MM message 5 after|phase 1 not complete after)' \
      "$MKI_DIR/cl/modiked.log"
  }
  mki_poll "$WAIT" gave_up || fail "modiked's log shows no phase 1 timeout within $WAIT s"
  grep -Eq 'retransmit [0-9]+ of message 5' "$MKI_DIR/cl/modiked.log" || fail "modiked never resent message 5"
  mki_log "modiked: $(grep -Eo 'retransmit [0-9]+ of message 5' "$MKI_DIR/cl/modiked.log" | tail -n1), then $(grep -Eo 'phase 1 failed: .*' "$MKI_DIR/cl/modiked.log" | head -n1)"
  drops=$(mki_rt_nft_counts)
  mki_log "router drops (v4 later, v4 first, v6 fragments): $drops"
  read -r later first _ <<<"$drops"
  [ "${later:-0}" -gt 0 ] && [ "${first:-0}" -gt 0 ] || fail "the router dropped no IP fragments: the path did not bite"
  [ "$(mki_raw_field "$(mki_sas_raw gw)" state)" != ESTABLISHED ] || fail "charon established an IKE SA"
  mki_modiked_stop cl || fail "modiked did not stop on SIGTERM"
  mki_log "PASS: without frag Main Mode message 5 never crosses the 576-byte path; modiked timed out"
  exit 0
fi

both_up () {
  mki_modiked_alive cl || fail "modiked exited during the exchange"
  mki_charon_modiked_up
}
mki_poll "$WAIT" both_up || fail "no SA on both sides within $WAIT s"
log=$MKI_DIR/cl/modiked.log clog=$MKI_DIR/gw/charon.log
grep -q "received FRAGMENTATION vendor ID" "$clog" || fail "charon did not see our FRAGMENTATION vendor ID"
grep -Eq 'message of [0-9]+ bytes sent as [0-9]+ fragments' "$log" || fail "modiked sent no fragments"
grep -q 'reassembled fragmented IKE message' "$clog" || fail "charon reassembled no message of ours"
grep -q 'splitting IKE message' "$clog" || fail "charon sent no fragments"
grep -q "peer authenticated with certificate 'CN=gw,O=modike'" "$log" ||
  fail "modiked's log does not show charon's certificate accepted"
drops=$(mki_rt_nft_counts)
read -r later first _ <<<"$drops"
[ "${later:-0}" = 0 ] && [ "${first:-0}" = 0 ] || fail "IP fragments reached the router ($drops): some datagram was over 576"
mki_modiked_stop cl || fail "modiked did not stop on SIGTERM"
grep -q 'fragments: [1-9][0-9]* messages sent as [0-9]* fragments; [0-9]* received, [1-9][0-9]* messages reassembled; dropped: 0 malformed, [0-9]* duplicate, 0 overlapping' "$log" ||
  fail "frag's counters at exit do not show fragments sent and reassembled without errors: $(grep 'fragments:' "$log")"
mki_log "modiked: $(grep -E 'sent as [0-9]+ fragments' "$log" | head -n1 | sed 's/.*peer/peer/')"
mki_log "modiked: $(grep 'fragments:' "$log" | sed 's/.*fragments:/fragments:/')"
mki_log "charon: $(grep -E 'splitting IKE message|reassembled fragmented' "$clog" | head -n2 | sed 's/.*\] //' | tr '\n' '|')"
mki_log "PASS: $EX mode, modiked $ROLE, certificate chains over a 576-byte path that drops IP fragments"
exit 0
