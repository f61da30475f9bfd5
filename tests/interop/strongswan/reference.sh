#!/bin/bash
# Reference case: charon <-> charon in two namespaces, the harness checked
# against a peer known to work. Not a meson test: a tool to diagnose
# lib.sh when the interop suite fails for reasons other than modiked.
#
# usage: reference.sh [--exchange main|aggressive] [--pfs yes|no]
#                     [--ike PROPOSAL] [--esp PROPOSAL]
#                     [--capture FILE.pcapng] [--levels "default = 1; ike = 4"]
#                     [--logs DIR] [--keep]
# Without --exchange and --pfs it runs the four combinations, each in fresh
# namespaces. The cl charon initiates; exit 0 when both sides show the
# same IKE SA (cookies, algorithms) and one child with crosswise SPIs.
set -u
HERE=$(cd "$(dirname "$0")" && pwd)

EXCHANGE="" PFS="" IKE=aes128-sha256-modp2048 ESP=aes128-sha256 CAPTURE="" LEVELS="" KEEP=0 LOGS=""
ARGS=("$@")
while [ $# -gt 0 ]; do
  case $1 in
    --exchange) EXCHANGE=$2; shift 2 ;;
    --pfs) PFS=$2; shift 2 ;;
    --ike) IKE=$2; shift 2 ;;
    --esp) ESP=$2; shift 2 ;;
    --capture) CAPTURE=$2; shift 2 ;;
    --levels) LEVELS=$2; shift 2 ;;
    --logs) LOGS=$2; shift 2 ;;
    --keep) KEEP=1; shift ;;
    *) echo "usage: see the head of $0" >&2; exit 2 ;;
  esac
done

if [ -z "$EXCHANGE" ] && [ -z "$PFS" ]; then
  rc=0
  for ex in main aggressive; do
    for pfs in no yes; do
      if "$0" "${ARGS[@]}" --exchange $ex --pfs $pfs; then
        echo "ok   reference $ex pfs=$pfs"
      else
        echo "FAIL reference $ex pfs=$pfs"; rc=1
      fi
    done
  done
  exit $rc
fi
EXCHANGE=${EXCHANGE:-main} PFS=${PFS:-no}

# shellcheck source=../lib.sh
. "$HERE/../lib.sh"
MKI_KEEP=$KEEP
mki_require_prereqs charon
mki_setup "reference-$EXCHANGE-pfs$PFS"

esp=$ESP
if [ "$PFS" = yes ]; then
  # PFS group: the phase 1 group (last dash-separated word of IKE).
  esp=$ESP-${IKE##*-}
fi
aggr=no; [ "$EXCHANGE" = aggressive ] && aggr=yes

mki_swanctl_conf gw LOCAL_ADDR=$MKI_GW_V4 REMOTE_ADDR=$MKI_CL_V4 LOCAL_ID=gw REMOTE_ID=client \
  AGGRESSIVE=$aggr PROPOSALS="$IKE" ESP_PROPOSALS="$esp" \
  LOCAL_TS=$MKI_GW_NET REMOTE_TS=$MKI_CL_NET PSK=testpsk
mki_swanctl_conf cl LOCAL_ADDR=$MKI_CL_V4 REMOTE_ADDR=$MKI_GW_V4 LOCAL_ID=client REMOTE_ID=gw \
  AGGRESSIVE=$aggr PROPOSALS="$IKE" ESP_PROPOSALS="$esp" \
  LOCAL_TS=$MKI_CL_NET REMOTE_TS=$MKI_GW_NET PSK=testpsk
# What charon needs besides lib.sh's MKI_CHARON_PLUGINS.
charon_plugins=""
case "$IKE $ESP" in *gcm*) charon_plugins=gcm ;; esac
# shellcheck disable=SC2086  # a word list
mki_strongswan_conf gw "$LEVELS" $charon_plugins
# shellcheck disable=SC2086
mki_strongswan_conf cl "$LEVELS" $charon_plugins

mki_charon_start gw
mki_charon_start cl
mki_swanctl_load gw
mki_swanctl_load cl
[ -n "$CAPTURE" ] && mki_capture_start "$CAPTURE"

mki_swanctl cl --initiate --child net --timeout 30 >"$MKI_DIR/cl/initiate.out" 2>&1 ||
  mki_log "swanctl --initiate returned non-zero (checked below)"

both_up () {
  GW=$(mki_sas_raw gw) CL=$(mki_sas_raw cl)
  [ "$(mki_raw_field "$GW" state)" = ESTABLISHED ] &&
  [ "$(mki_raw_field "$CL" state)" = ESTABLISHED ] &&
  [ "$(mki_raw_field "$(mki_raw_child "$GW")" state)" = INSTALLED ] &&
  [ "$(mki_raw_field "$(mki_raw_child "$CL")" state)" = INSTALLED ]
}
if ! mki_poll 30 both_up; then
  mki_swanctl gw --list-sas >&2; mki_swanctl cl --list-sas >&2
  mki_dump_logs
  mki_fail "SAs not established on both sides within 30 s"
fi
# Let the last Quick Mode message (and any INITIAL-CONTACT) pass the capture.
[ -n "$CAPTURE" ] && { sleep 1; mki_capture_stop; }
if [ -n "$LOGS" ]; then
  mkdir -p "$LOGS"
  cp "$MKI_DIR/gw/charon.log" "$LOGS/gw-charon.log"
  cp "$MKI_DIR/cl/charon.log" "$LOGS/cl-charon.log"
  cp "$MKI_DIR/gw/swanctl.conf" "$LOGS/gw-swanctl.conf"
fi

fail=0
check () { # what, gw value, cl value: equal and present
  if [ "$2" != "$3" ] || [ -z "$2" ]; then
    mki_log "mismatch: $1: gw='$2' cl='$3'"; fail=1
  fi
}
check_opt () { # equal, may be absent on both (encr-keysize of 3DES)
  [ "$2" = "$3" ] || { mki_log "mismatch: $1: gw='$2' cl='$3'"; fail=1; }
}
gi=$(mki_raw_ike "$GW") ci=$(mki_raw_ike "$CL")
gc=$(mki_raw_child "$GW") cc=$(mki_raw_child "$CL")
for k in initiator-spi responder-spi encr-alg integ-alg prf-alg dh-group version; do
  check "IKE $k" "$(mki_raw_field "$gi" "$k")" "$(mki_raw_field "$ci" "$k")"
done
check_opt "IKE encr-keysize" "$(mki_raw_field "$gi" encr-keysize)" "$(mki_raw_field "$ci" encr-keysize)"
check "IKE initiator role" "$(mki_raw_field "$ci" initiator)" yes
for k in mode protocol encap encr-alg integ-alg; do
  check "child $k" "$(mki_raw_field "$gc" "$k")" "$(mki_raw_field "$cc" "$k")"
done
check_opt "child encr-keysize" "$(mki_raw_field "$gc" encr-keysize)" "$(mki_raw_field "$cc" encr-keysize)"
check "child encap" "$(mki_raw_field "$gc" encap)" yes
check "gw spi-in = cl spi-out" "$(mki_raw_field "$gc" spi-in)" "$(mki_raw_field "$cc" spi-out)"
check "gw spi-out = cl spi-in" "$(mki_raw_field "$gc" spi-out)" "$(mki_raw_field "$cc" spi-in)"
if [ "$PFS" = yes ]; then
  check "child dh-group" "$(mki_raw_field "$gc" dh-group)" "$(mki_raw_field "$cc" dh-group)"
else
  nopfs="$(mki_raw_field "$gc" dh-group)$(mki_raw_field "$cc" dh-group)"
  [ -z "$nopfs" ] || { mki_log "child has a DH group without PFS: $nopfs"; fail=1; }
fi

mki_swanctl gw --list-sas
mki_swanctl cl --list-sas
printf 'gw raw: %s\ncl raw: %s\n' "$GW" "$CL"
if [ $fail != 0 ]; then
  mki_dump_logs
  exit 1
fi
mki_log "OK: $EXCHANGE mode, pfs=$PFS, $IKE / $esp"
exit 0
