#!/bin/bash
# A stand-in for modiked that is really charon: it reads the modiked.xml
# that lib.sh writes, runs charon with the same settings and answers
# SIGUSR1 with a status file in modiked's format. It proves run-case.sh's
# pass path (and its parsing) while modiked cannot negotiate yet:
#
#   MODIKED=tests/interop/strongswan/fake-modiked.sh MODIKE_PLUGIN_DIR=/nonexistent \
#     tests/interop/strongswan/run-case.sh mm-initiator-pfs
#
# Not a modiked replacement: only the config shape mki_modiked_conf writes.
set -u
[ -n "${FAKE_DEBUG:-}" ] && set -x
HERE=$(cd "$(dirname "$0")" && pwd)
CFG="" CHECK=0
while [ $# -gt 0 ]; do
  case $1 in
    -c) CFG=$2; shift 2 ;;
    --check) CHECK=1; shift ;;
    --foreground) shift ;;
    --plugin-dir) shift 2 ;;
    *) echo "fake-modiked: unknown option $1" >&2; exit 2 ;;
  esac
done
[ -r "$CFG" ] || { echo "fake-modiked: cannot read $CFG" >&2; exit 1; }
[ $CHECK = 1 ] && exit 0

XML=$(tr '\n' ' ' < "$CFG")
# attr ELEMENT ATTRIBUTE [N]: the value in the Nth such element (default 1).
attr () {
  printf '%s\n' "$XML" | grep -o "<$1 [^>]*" | sed -n "${3:-1}p" |
    grep -o "[[:space:]]$2=\"[^\"]*\"" | sed 's/.*="//; s/"$//'
}

# shellcheck source=../lib.sh
. "$HERE/../lib.sh"
MKI_DIR=$(mktemp -d "${TMPDIR:-/tmp}/modike-fake.XXXXXX")
mkdir -p "$MKI_DIR/fake"
STATUS=$(attr status file)
EX=$(attr phase1 exchange) INITIATE=$(attr peer initiate) PEER=$(attr peer name)
PFS=$(attr policy pfs)
p1="$(attr proposal encryption)-$(attr proposal hash)-$(attr proposal group)"
# The second <proposal> is the policy's.
esp_encr=$(attr proposal encryption 2) esp_integ=$(attr proposal integrity 2)
esp=$esp_encr${esp_integ:+-$esp_integ}
[ "${PFS:-none}" != none ] && esp=$esp-$PFS
aggr=no; [ "$EX" = aggressive ] && aggr=yes
lts=$(attr policy local) rts=$(attr policy remote)

mki_swanctl_conf fake LOCAL_ADDR="$(attr local address)" REMOTE_ADDR="$(attr remote address)" \
  LOCAL_ID="$(attr local-id value)" REMOTE_ID="$(attr remote-id value)" AGGRESSIVE=$aggr \
  PROPOSALS="$p1" ESP_PROPOSALS="$esp" LOCAL_TS="$lts" REMOTE_TS="$rts" \
  PSK="$(attr auth secret)"
charon_plugins=""
case $esp in *gcm*) charon_plugins=gcm ;; esac
# shellcheck disable=SC2086  # a word list
mki_strongswan_conf fake "" $charon_plugins
dir=$MKI_DIR/fake

unshare -m --propagation private sh -c 'mount -t tmpfs none /run && mkdir -p /run/strongswan &&
  STRONGSWAN_CONF="$1/strongswan.conf" exec "$2"' sh "$dir" "$MKI_CHARON" >"$dir/charon.stderr" 2>&1 &
CHARON=$!
tail -n +1 -F "$dir/charon.log" >&2 2>/dev/null &
TAIL=$!
stop () { kill "$CHARON" "$TAIL" 2>/dev/null; wait; rm -rf "$MKI_DIR"; exit 0; }
trap stop TERM INT

write_status () {
  local raw ike child tmp=$STATUS.tmp
  : > "$tmp"
  raw=$(mki_sas_raw fake)
  if [ -n "$raw" ]; then
    ike=$(mki_raw_ike "$raw") child=$(mki_raw_child "$raw")
    local role=responder
    [ "$(mki_raw_field "$ike" initiator)" = yes ] && role=initiator
    printf 'IKE %s %s i=%s r=%s %s-%s-%s %s %s life=28800s\n' "$PEER" \
      "$(mki_raw_field "$ike" state)" "$(mki_raw_field "$ike" initiator-spi)" \
      "$(mki_raw_field "$ike" responder-spi)" \
      "$(mki_encr_name "$(mki_raw_field "$ike" encr-alg)" "$(mki_raw_field "$ike" encr-keysize)")" \
      "$(mki_hash_name "$(mki_raw_field "$ike" prf-alg)")" \
      "$(mki_group_name "$(mki_raw_field "$ike" dh-group)")" "$EX" "$role" >> "$tmp"
    if [ -n "$child" ] && [ "$(mki_raw_field "$child" state)" = INSTALLED ]; then
      local integ encap=""
      integ=$(mki_hash_name "$(mki_raw_field "$child" integ-alg)")
      [ "$(mki_raw_field "$child" encap)" = yes ] && encap=" udp-encap"
      printf '  ESP %s in=%s out=%s %s%s %s%s pfs=%s life=3600s\n' "$PEER" \
        "$(mki_raw_field "$child" spi-in)" "$(mki_raw_field "$child" spi-out)" \
        "$(mki_encr_name "$(mki_raw_field "$child" encr-alg)" "$(mki_raw_field "$child" encr-keysize)")" \
        "${integ:+-$integ}" "$(mki_raw_field "$child" mode | tr 'A-Z' 'a-z')" "$encap" \
        "$(mki_group_name "$(mki_raw_field "$child" dh-group)")" >> "$tmp"
    fi
  fi
  mv "$tmp" "$STATUS"
}
trap write_status USR1

for _ in $(seq 1 100); do
  mki_swanctl fake --stats >/dev/null 2>&1 && break
  sleep 0.1
done
mki_charon_check_plugins fake ||
  { echo "fake-modiked: charon started without plugins it needs (see above)" >&2; kill "$CHARON" "$TAIL" 2>/dev/null; wait; rm -rf "$MKI_DIR"; exit 1; }
mki_swanctl fake --load-all --file "$dir/swanctl.conf" >/dev/null 2>&1 ||
  { echo "fake-modiked: swanctl --load-all failed" >&2; stop; }
if [ "$INITIATE" = yes ]; then
  mki_swanctl fake --initiate --child net --timeout 20 >/dev/null 2>&1 &
fi
# wait returns on each signal; keep waiting while charon lives.
while kill -0 "$CHARON" 2>/dev/null; do wait "$CHARON"; done
stop
