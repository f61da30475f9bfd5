#!/bin/bash
# One interop case: modiked (cl namespace, 192.0.2.2) against charon (gw
# namespace, 192.0.2.1, kernel-libipsec so NAT-T is forced).
#
# usage: run-case.sh CASE
#   mm-initiator-pfs mm-initiator-nopfs mm-responder-pfs mm-responder-nopfs
#   am-initiator-pfs am-initiator-nopfs am-responder-pfs am-responder-nopfs
#   mm-initiator-ipv6 mm-responder-ipv6 (IPv6 outer addresses)
#   proposals-initiator proposals-responder (several proposals: the one
#     both accept is chosen)
#   no-proposal-chosen
#   cert-mm-initiator cert-mm-responder cert-am-initiator (RSA signatures with X.509
#     certificates from tests/vectors/certs: modiked "client", charon "gw",
#     both trusting the root; the intermediate travels in CERT payloads)
# "initiator": modiked initiates (peer initiate="yes"); "responder": charon
# initiates (swanctl --initiate --child net).
# Environment: MODIKED (the built daemon), MODIKE_PLUGIN_DIR (directory of
# natt.so in the build tree); meson's interop suite sets both.
# Exit 0 = pass. On failure both logs' tails and the status file are printed.
set -u
HERE=$(cd "$(dirname "$0")" && pwd)
# shellcheck source=../lib.sh
. "$HERE/../lib.sh"

CASE=${1:-}
WAIT=${MKI_WAIT:-30}        # seconds for an exchange to finish
PSK=testpsk
IKE_PROPOSAL=aes128-sha256-modp2048
ESP_PROPOSAL=aes128-sha256

case $CASE in
  mm-initiator-pfs)   EX=main ROLE=initiator PFS=yes ;;
  mm-initiator-nopfs) EX=main ROLE=initiator PFS=no ;;
  mm-responder-pfs)   EX=main ROLE=responder PFS=yes ;;
  mm-responder-nopfs) EX=main ROLE=responder PFS=no ;;
  am-initiator-pfs)   EX=aggressive ROLE=initiator PFS=yes ;;
  am-initiator-nopfs) EX=aggressive ROLE=initiator PFS=no ;;
  am-responder-pfs)   EX=aggressive ROLE=responder PFS=yes ;;
  am-responder-nopfs) EX=aggressive ROLE=responder PFS=no ;;
  mm-initiator-ipv6)  EX=main ROLE=initiator PFS=yes FAMILY=6 ;;
  mm-responder-ipv6)  EX=main ROLE=responder PFS=yes FAMILY=6 ;;
  proposals-initiator) EX=main ROLE=initiator PFS=yes ;;
  proposals-responder) EX=main ROLE=responder PFS=yes ;;
  no-proposal-chosen) EX=main ROLE=initiator PFS=no ;;
  cert-mm-initiator)  EX=main ROLE=initiator PFS=yes AUTH=rsa ;;
  cert-mm-responder)  EX=main ROLE=responder PFS=yes AUTH=rsa ;;
  cert-am-initiator)  EX=aggressive ROLE=initiator PFS=yes AUTH=rsa ;;
  *) echo "usage: $0 CASE (see the head of this file)" >&2; exit 2 ;;
esac
MKI_CASE=$CASE
FAMILY=${FAMILY:-4}
AUTH=${AUTH:-psk}

mki_require_prereqs charon modiked
mki_setup "$CASE"

fail () {
  mki_log "FAIL: $*"
  echo "----- charon (gw) swanctl --list-sas -----" >&2
  mki_swanctl gw --list-sas --noblock >&2 2>&1 || true
  mki_dump_logs
  exit 1
}

# --- charon in gw ------------------------------------------------------------
aggr=no; [ "$EX" = aggressive ] && aggr=yes
esp=$ESP_PROPOSAL pfs_group=none
if [ "$PFS" = yes ]; then esp=$ESP_PROPOSAL-modp2048 pfs_group=modp2048; fi
ike_offer=$IKE_PROPOSAL esp_offer=$esp
if [ "$CASE" = proposals-responder ]; then
  # charon offers three; modiked accepts only the last of each.
  ike_offer="3des-md5-modp1024, aes256-sha1-modp1536, $IKE_PROPOSAL"
  esp_offer="3des-md5-modp2048, aes256-sha1-modp2048, $esp"
fi
if [ "$FAMILY" = 6 ]; then GW_ADDR=$MKI_GW_V6 CL_ADDR=$MKI_CL_V6; else GW_ADDR=$MKI_GW_V4 CL_ADDR=$MKI_CL_V4; fi
CERTS=$HERE/../../vectors/certs
auth_xml="" id_type=fqdn local_id=client remote_id=gw
if [ "$AUTH" = rsa ]; then
  # Keys are checked out 0644: private copies for both daemons.
  install -m 0700 -d "$MKI_DIR/gw/private"
  install -m 0600 "$CERTS/gw.key" "$MKI_DIR/gw/private/gw.key"
  install -m 0600 "$CERTS/client.key" "$MKI_DIR/cl/client.key"
  MKI_SWANCTL_TEMPLATE=swanctl-cert.conf.in mki_swanctl_conf gw LOCAL_ADDR=$GW_ADDR REMOTE_ADDR=$CL_ADDR \
    AGGRESSIVE=$aggr PROPOSALS="$ike_offer" ESP_PROPOSALS="$esp_offer" \
    LOCAL_TS=$MKI_GW_NET REMOTE_TS=$MKI_CL_NET CERT="$CERTS/gw-chain.pem" CACERT="$CERTS/ca.pem"
  mki_strongswan_conf gw "" revocation constraints
  # modiked sends its subject DN and wants charon's. charon 5.9.8 sends
  # its intermediate only in Main Mode message 6 (elsewhere just its own
  # certificate): there modiked's trust anchors are a directory holding
  # the root and the intermediate.
  ca="$CERTS/ca.pem"
  if [ "$ROLE" = responder ] || [ "$EX" = aggressive ]; then
    ca=$MKI_DIR/cl/ca.d
    mkdir -p "$ca" && cp "$CERTS/ca.pem" "$CERTS/int.pem" "$ca/"
  fi
  auth_xml="<auth method=\"rsa\" cert=\"$CERTS/client-chain.pem\" key=\"$MKI_DIR/cl/client.key\"><ca path=\"$ca\"/><crl path=\"$CERTS/int.crl\"/></auth>"
  id_type=dn local_id="" remote_id="CN=gw,O=modike"
else
mki_swanctl_conf gw LOCAL_ADDR=$GW_ADDR REMOTE_ADDR=$CL_ADDR LOCAL_ID=gw REMOTE_ID=client \
  AGGRESSIVE=$aggr PROPOSALS="$ike_offer" ESP_PROPOSALS="$esp_offer" \
  LOCAL_TS=$MKI_GW_NET REMOTE_TS=$MKI_CL_NET PSK=$PSK
mki_strongswan_conf gw
fi
mki_charon_start gw
mki_swanctl_load gw

# --- modiked in cl -----------------------------------------------------------
p1_encr=aes128 p1_hash=sha256 p1_group=modp2048
if [ "$CASE" = no-proposal-chosen ]; then
  # charon only accepts aes128-sha256-modp2048.
  p1_encr=3des p1_hash=md5 p1_group=modp1024
fi
initiate=no; [ "$ROLE" = initiator ] && initiate=yes
p1_first="" esp_first=""
if [ "$CASE" = proposals-initiator ]; then
  # modiked offers these first; charon accepts only the main ones.
  p1_first="3des-md5-modp1024 aes256-sha1-modp1536" esp_first="3des-md5 aes256-sha1"
fi
CFG=$MKI_DIR/cl/modiked.xml STATUS=$MKI_DIR/cl/modiked.status
mki_modiked_conf "$CFG" LISTEN=$CL_ADDR NAME=gw INITIATE=$initiate \
  LOCAL=$CL_ADDR REMOTE=$GW_ADDR LOCAL_ID="$local_id" REMOTE_ID="$remote_id" PSK=$PSK \
  AUTH_XML="$auth_xml" ID_TYPE=$id_type \
  EXCHANGE=$EX P1_ENCR=$p1_encr P1_HASH=$p1_hash P1_GROUP=$p1_group PFS=$pfs_group \
  LOCAL_TS=$MKI_CL_NET REMOTE_TS=$MKI_GW_NET ESP_ENCR=aes128 ESP_INTEG=sha256 \
  STATUS="$STATUS" LOGLEVEL=debug P1_FIRST="$p1_first" ESP_FIRST="$esp_first"

ip netns exec "$MKI_NS_CL" timeout 20 "$MODIKED" -c "$CFG" --check >"$MKI_DIR/cl/check.out" 2>&1
rc=$?
if [ $rc != 0 ]; then
  cat "$MKI_DIR/cl/check.out" >&2
  echo "----- modiked.xml -----" >&2; cat "$CFG" >&2
  [ $rc = 124 ] && fail "modiked --check did not finish within 20 s"
  fail "modiked --check rejected the configuration (status $rc)"
fi
mki_modiked_start cl "$CFG"
pid=$(mki_modiked_pid cl)

# Ready when it listens on UDP 500 (and has not died).
listening () { ip netns exec "$MKI_NS_CL" ss -Hlun 'sport = :500' 2>/dev/null | grep -q .; }
for _ in $(seq 1 50); do
  listening && break
  mki_modiked_alive cl || break
  sleep 0.1
done
if ! mki_modiked_alive cl; then
  wait "$pid"; rc=$?
  fail "modiked exited at start (status $rc) before any exchange"
fi
listening || fail "modiked does not listen on UDP port 500 after 5 s"

if [ "$ROLE" = responder ]; then
  # Blocks until done or timed out; the polls below decide.
  STRONGSWAN_CONF=$MKI_DIR/gw/strongswan.conf "$MKI_SWANCTL" --initiate --child net \
    --timeout "$WAIT" --uri "unix://$MKI_DIR/gw/charon.vici" >"$MKI_DIR/gw/initiate.out" 2>&1 &
  MKI_PIDS+=("$!")
fi

# --- the no-proposal case ------------------------------------------------------
if [ "$CASE" = no-proposal-chosen ]; then
  npc_seen () {
    mki_modiked_alive cl || fail "modiked exited during the exchange"
    grep -qi 'NO_PROPOSAL_CHOSEN' "$MKI_DIR/cl/modiked.log"
  }
  mki_poll "$WAIT" npc_seen || fail "modiked's log shows no NO_PROPOSAL_CHOSEN within $WAIT s"
  raw=$(mki_sas_raw gw)
  [ -z "$raw" ] || fail "charon still has an IKE SA: $raw"
  st=$(mki_modiked_status cl) || fail "modiked wrote no status file on SIGUSR1"
  if grep -Eq '^IKE .* ESTABLISHED |^ +ESP ' "$st"; then
    fail "modiked shows an SA after NO_PROPOSAL_CHOSEN: $(cat "$st")"
  fi
  mki_log "status file:"; sed 's/^/    /' "$st" >&2
  mki_modiked_stop cl || fail "modiked did not stop on SIGTERM"
  mki_log "PASS: NO_PROPOSAL_CHOSEN logged, no SA on either side"
  exit 0
fi

# --- established cases ---------------------------------------------------------
RAW="" ST=""
both_up () {
  mki_modiked_alive cl || fail "modiked exited during the exchange"
  mki_charon_modiked_up; local rc=$?
  RAW=$MKI_RAW ST=$MKI_ST
  return $rc
}
if ! mki_poll "$WAIT" both_up; then
  if [ -z "$RAW" ]; then why="charon has no IKE SA"
  elif [ "$(mki_raw_field "$RAW" state)" != ESTABLISHED ]; then why="charon's IKE SA is $(mki_raw_field "$RAW" state)"
  elif [ -z "$(mki_raw_child "$RAW")" ]; then why="charon has no CHILD_SA"
  elif [ -z "$ST" ]; then why="modiked wrote no status file on SIGUSR1"
  else why="modiked's status shows no ESTABLISHED IKE SA with an ESP SA"
  fi
  fail "no SA on both sides within $WAIT s: $why"
fi

lc () { tr 'A-F' 'a-f'; }

bad=0
expect () { # what, charon's, ours
  if [ "$2" != "$3" ]; then mki_log "mismatch: $1: charon '$2', modiked '$3'"; bad=1; fi
}
ike=$(mki_raw_ike "$RAW") child=$(mki_raw_child "$RAW")
ike_lines=$(grep -Ec '^IKE ' "$ST") esp_lines=$(grep -Ec '^ +ESP ' "$ST")
expect "number of IKE SAs" 1 "$ike_lines"
expect "number of ESP SAs" 1 "$esp_lines"
[ "$(mki_sas_raw gw | wc -l)" = 1 ] || { mki_log "charon has more than one IKE SA"; bad=1; }

# IKE <peer> <STATE> i=<icookie> r=<rcookie> <encr>-<hash>-<group> <exchange> <role> life=<s>s
read -r _ _ state icky rcky algs mode role _ <<<"$(grep -E '^IKE ' "$ST" | head -n1)"
expect "IKE state" ESTABLISHED "$state"
expect "initiator cookie" "$(mki_raw_field "$ike" initiator-spi | lc)" "$(echo "${icky#i=}" | lc)"
expect "responder cookie" "$(mki_raw_field "$ike" responder-spi | lc)" "$(echo "${rcky#r=}" | lc)"
expect "IKE algorithms" \
  "$(mki_encr_name "$(mki_raw_field "$ike" encr-alg)" "$(mki_raw_field "$ike" encr-keysize)")-$(mki_hash_name "$(mki_raw_field "$ike" prf-alg)")-$(mki_group_name "$(mki_raw_field "$ike" dh-group)")" \
  "$algs"
expect "exchange" "$EX" "$mode"
expect "IKE algorithms as the one acceptable proposal" "$IKE_PROPOSAL" "$algs"
expect "modiked's role" "$ROLE" "$role"
charon_role=responder; [ "$(mki_raw_field "$ike" initiator)" = yes ] && charon_role=initiator
[ "$charon_role" != "$ROLE" ] || { mki_log "mismatch: both sides claim to be $ROLE"; bad=1; }

# ESP <peer> in=<spi> out=<spi> <encr>[-<integ>] <tunnel|transport>[ udp-encap] pfs=<group|none> life=<s>s
esp_line=$(grep -E '^ +ESP ' "$ST" | head -n1)
read -r _ _ spi_in spi_out esp_algs esp_mode _ <<<"$esp_line"
expect "charon's inbound SPI = modiked's outbound" "$(mki_raw_field "$child" spi-in | lc)" "$(echo "${spi_out#out=}" | lc)"
expect "charon's outbound SPI = modiked's inbound" "$(mki_raw_field "$child" spi-out | lc)" "$(echo "${spi_in#in=}" | lc)"
c_integ=$(mki_hash_name "$(mki_raw_field "$child" integ-alg)")
expect "ESP algorithms" \
  "$(mki_encr_name "$(mki_raw_field "$child" encr-alg)" "$(mki_raw_field "$child" encr-keysize)")${c_integ:+-$c_integ}" \
  "$esp_algs"
expect "ESP algorithms as the one acceptable proposal" "$ESP_PROPOSAL" "$esp_algs"
expect "ESP mode" "$(mki_raw_field "$child" mode | tr 'A-Z' 'a-z')" "$esp_mode"
c_encap=no; [ "$(mki_raw_field "$child" encap)" = yes ] && c_encap=yes
o_encap=no; case " $esp_line " in *" udp-encap "*) o_encap=yes ;; esac
expect "UDP encapsulation" "$c_encap" "$o_encap"
o_pfs=$(printf '%s\n' "$esp_line" | grep -o 'pfs=[^ ]*' | head -n1)
expect "PFS group" "pfs=$(mki_group_name "$(mki_raw_field "$child" dh-group)")" "$o_pfs"
expect "PFS as configured" "pfs=$pfs_group" "$o_pfs"

mki_log "charon: $(mki_swanctl gw --list-sas --noblock 2>/dev/null | sed -n '1p;4p;6p' | tr -s ' ' | tr '\n' '|')"
mki_log "modiked status:"; sed 's/^/    /' "$ST" >&2
[ $bad = 0 ] || fail "the two sides disagree (see mismatches above)"
mki_modiked_stop cl || fail "modiked did not stop on SIGTERM"
if [ "$AUTH" = rsa ]; then
  # Each side authenticated the other by its certificate.
  grep -q "peer authenticated with certificate 'CN=gw,O=modike'" "$MKI_DIR/cl/modiked.log" ||
    fail "modiked's log does not show charon's certificate accepted"
  grep -Eq "authentication of 'O=modike, CN=client' with RSA.* successful" "$MKI_DIR/gw/charon.log" ||
    fail "charon's log does not show modiked's RSA signature accepted"
fi
mki_log "PASS: $EX mode, modiked $ROLE, pfs=$PFS, auth=$AUTH"
exit 0
