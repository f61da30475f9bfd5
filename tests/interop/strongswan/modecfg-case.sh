#!/bin/bash
# Mode config (plugins/modecfg) against charon, after XAuth, with traffic
# through the tunnel. gw is 192.0.2.1 with 198.51.100.1 (the protected
# host), cl is 192.0.2.2.
#
# usage: modecfg-case.sh CASE
#   modecfg-client: charon in gw is the gateway (xauth-generic, a pool
#       rw = 10.99.1.0/28 with dns 198.51.100.53, the unity plugin for the
#       split include 198.51.100.0/24); modiked in cl is the client (plugins
#       natt esp_user tun xauth modecfg, option modecfg.mode pull, policy
#       local="virtual" remote=198.51.100.0/24, adapter mk0 without an
#       address). modiked gets an address of the pool, mk0 has it, the log
#       shows the DNS server and split include, a ping from that address
#       to 198.51.100.1 goes through the tunnel; after modiked stops the
#       address is gone with mk0. With a tun plugin that sets DNS, its
#       resolv.conf is a file of the case's own: the server in it while
#       connected, the original back afterwards.
#   modecfg-split: as modecfg-client with two split networks (charon's
#       child local_ts = 198.51.100.0/25, 198.51.100.192/26): mk0 gets a
#       route for exactly those two (none for the /24 the policy template
#       names, none for 198.51.100.128/26), and the ping goes through.
#   modecfg-three-clients: as modecfg-gateway with three strongSwan clients
#       at once, each a machine of its own: charon in cl (192.0.2.2, alice),
#       in c2 (192.0.2.3, bob) and in c3 (192.0.2.4, carol), three
#       namespaces with their own links to gw (lib.sh mki_add_client). They
#       connect at the same time; each gets its own address and pings from
#       it; bob disconnects and reconnects (same address again) while alice
#       pings without a loss and carol stays up.
#   modecfg-gateway: roles swapped: modiked in gw is the gateway (users
#       file, <modecfg> with pool rw 10.99.2.10-10.99.2.20, dns, split
#       include 198.51.100.0/24, policy local=198.51.100.0/24
#       remote="virtual"), charon in cl the client (vips = 0.0.0.0,
#       local-xauth); charon gets 10.99.2.10 and pings 198.51.100.1 from it.
#   modecfg-connect: as modecfg-client, driven as a user would: modiked in
#       cl has only a <control> socket; `modike connect SITE` (the peer,
#       without an adapter, and the local="virtual" policy) runs on a
#       pseudo-terminal (pty-connect.py) where alice's user name and
#       password are typed at the prompts. It shows the xauth, adapter,
#       routes and modecfg stages; the adapter modike0 has the pool address,
#       the split include is routed into it, resolv.conf (the case's own)
#       has the gateway's DNS server first; ping through; Ctrl-C: exit 0,
#       modike0, its routes and the DNS change are gone. Then once more and
#       modiked is killed (SIGKILL) while connected: the adapter goes with
#       the process, and the restarted modiked puts resolv.conf back.
#   modecfg-connect-wrong-password: a wrong password typed at the prompt:
#       modike connect exits 4 saying authentication failed; no adapter,
#       no route and no DNS change are left behind.
# Environment: MODIKED, MODIKE (modecfg-connect*), MODIKE_PLUGIN_DIR (':'-separated directories of
# natt.so, esp_user.so, tun.so, xauth.so, modecfg.so), MODIKE_XAUTH_PASSWD
# (modike-xauth-passwd, modecfg-gateway only).
set -u
HERE=$(cd "$(dirname "$0")" && pwd)
# shellcheck source=../lib.sh
. "$HERE/../lib.sh"

CASE=${1:-}
WAIT=${MKI_WAIT:-30}
THREE= CONNECT= PASSWORD=alicepw
USERS="alice bob carol"
CLIENT_SIDES=cl
three_side () { case $1 in 1) echo cl ;; 2) echo c2 ;; *) echo c3 ;; esac; }   # THREE: client 1..3
case $CASE in
  modecfg-client) SIDE_M=cl SIDE_C=gw POOL=10.99.1.0/28 SPLIT=$MKI_GW_NET ;;
  modecfg-split) SIDE_M=cl SIDE_C=gw POOL=10.99.1.0/28 SPLIT="198.51.100.0/25 198.51.100.192/26" ;;
  modecfg-connect) SIDE_M=cl SIDE_C=gw POOL=10.99.1.0/28 SPLIT=$MKI_GW_NET CONNECT=yes ;;
  modecfg-connect-wrong-password)
    SIDE_M=cl SIDE_C=gw POOL=10.99.1.0/28 SPLIT=$MKI_GW_NET CONNECT=yes PASSWORD=wrongpw ;;
  modecfg-gateway) SIDE_M=gw SIDE_C=cl POOL=10.99.2.0/24 ;;
  modecfg-three-clients) SIDE_M=gw SIDE_C=cl POOL=10.99.2.0/24 THREE=yes ;;
  *) echo "usage: $0 CASE (see the head of this file)" >&2; exit 2 ;;
esac
MKI_CASE=$CASE
mki_require_prereqs charon modiked traffic
mki_setup "$CASE"

fail () {
  mki_log "FAIL: $*"
  echo "----- charon ($SIDE_C) swanctl --list-sas -----" >&2
  mki_swanctl "$SIDE_C" --list-sas --noblock >&2 2>&1 || true
  mki_modiked_alive "$SIDE_M" && mki_modiked_status "$SIDE_M" >/dev/null
  mki_dump_logs
  exit 1
}

NS_M=$(mki_ns "$SIDE_M") NS_C=$(mki_ns "$SIDE_C")

# --- charon ------------------------------------------------------------------
if [ "$SIDE_C" = gw ]; then
  c_conn="    local_addrs = $MKI_GW_V4
    remote_addrs = $MKI_CL_V4
    pools = rw
    local {
      auth = psk
      id = gw
    }
    remote {
      auth = psk
      id = client
    }
    remote-xauth {
      auth = xauth
    }"
  c_child="        local_ts = ${SPLIT// /, }"
  c_pools="pools {
  rw {
    addrs = $POOL
    dns = 198.51.100.53
  }
}"
else
  c_conn="    local_addrs = $MKI_CL_V4
    remote_addrs = $MKI_GW_V4
    vips = 0.0.0.0
    local {
      auth = psk
      id = client
    }
    local-xauth {
      auth = xauth
      xauth_id = alice
    }
    remote {
      auth = psk
      id = gw
    }"
  c_child="        remote_ts = $MKI_GW_NET"
  c_pools=
fi
cat >"$MKI_DIR/$SIDE_C/swanctl.conf" <<EOF
connections {
  rw {
    version = 1
    proposals = aes128-sha256-modp2048
    rekey_time = 0
    dpd_delay = 0
$c_conn
    children {
      net {
        mode = tunnel
$c_child
        esp_proposals = aes128-sha256
        rekey_time = 0
        start_action = none
      }
    }
  }
}
$c_pools
secrets {
  ike-1 {
    secret = "testpsk"
  }
  xauth-1 {
    id = alice
    secret = "alicepw"
  }
}
EOF
if [ -n "$THREE" ]; then
  CLIENT_SIDES="cl c2 c3"
  mki_add_client c2 192.0.2.3
  mki_add_client c3 192.0.2.4
  i=0
  for u in $USERS; do
    i=$((i + 1))
    side=$(three_side $i)
    cat >"$MKI_DIR/$side/swanctl.conf" <<EOF
connections {
  rw {
    version = 1
    proposals = aes128-sha256-modp2048
    rekey_time = 0
    dpd_delay = 0
    local_addrs = 192.0.2.$((i + 1))
    remote_addrs = $MKI_GW_V4
    vips = 0.0.0.0
    local {
      auth = psk
      id = client$i
    }
    local-xauth {
      auth = xauth
      xauth_id = $u
    }
    remote {
      auth = psk
      id = gw
    }
    children {
      net {
        mode = tunnel
        remote_ts = $MKI_GW_NET
        esp_proposals = aes128-sha256
        rekey_time = 0
        start_action = none
      }
    }
  }
}
secrets {
  ike-1 {
    secret = "testpsk"
  }
  xauth-1 {
    id = $u
    secret = "${u}pw"
  }
}
EOF
  done
fi
# unity only on charon's gateway (split include to Unity clients): as a
# client it would propose 0.0.0.0/0 and narrow later, as Cisco gateways
# expect.
if [ "$SIDE_C" = gw ]; then
  mki_strongswan_conf gw "" xauth-generic unity
  mki_charon_start gw
  mki_swanctl_load gw
else
  for side in $CLIENT_SIDES; do
    mki_strongswan_conf "$side" "" xauth-generic
    mki_charon_start "$side"
    mki_swanctl_load "$side"
  done
fi

# --- modiked -------------------------------------------------------------------
CFG=$MKI_DIR/$SIDE_M/modiked.xml
if [ "$SIDE_M" = cl ]; then
  printf 'alicepw\n' >"$MKI_DIR/cl/password"
  chmod 600 "$MKI_DIR/cl/password"
  section="  <xauth timeout=\"20\"><credentials peer=\"gw\" user=\"alice\" password-file=\"$MKI_DIR/cl/password\"/></xauth>"
  mki_modiked_conf "$CFG" LISTEN="$MKI_CL_V4" NAME=gw INITIATE=yes \
    LOCAL="$MKI_CL_V4" REMOTE="$MKI_GW_V4" LOCAL_ID=client REMOTE_ID=gw PSK=testpsk \
    EXCHANGE=main LOCAL_TS=virtual REMOTE_TS="$MKI_GW_NET" \
    STATUS="$MKI_DIR/cl/modiked.status" LOGLEVEL=debug \
    PLUGINS="natt esp_user tun xauth modecfg" ADAPTER=mk0
  option='    <option name="modecfg.mode" value="pull"/>'
  # The tun plugin writes a resolv.conf of this case's own, never the host's.
  DNS_FILE=$MKI_DIR/cl/resolv.conf
  printf 'nameserver 192.0.2.53\n' >"$DNS_FILE"
  section="$section
  <tun resolv-conf=\"$DNS_FILE\" state-dir=\"$MKI_DIR/cl/state\"/>"
else
  [ -x "${MODIKE_XAUTH_PASSWD:-}" ] || fail "MODIKE_XAUTH_PASSWD (modike-xauth-passwd) is not set or not executable"
  printf 'alicepw\n' | "$MODIKE_XAUTH_PASSWD" alice >"$MKI_DIR/gw/users" || fail "modike-xauth-passwd failed"
  if [ -n "$THREE" ]; then
    for u in bob carol; do
      printf '%spw\n' "$u" | "$MODIKE_XAUTH_PASSWD" "$u" >>"$MKI_DIR/gw/users" || fail "modike-xauth-passwd failed"
    done
  fi
  mki_drop_lo_host gw
  section="  <xauth users-file=\"$MKI_DIR/gw/users\" timeout=\"20\"/>
  <modecfg>
    <leases file=\"$MKI_DIR/gw/leases.db\"/>
    <pool name=\"rw\" range=\"10.99.2.10-10.99.2.20\"/>
    <gateway peer=\"cl\" pools=\"rw\" dns=\"198.51.100.53\" split-include=\"$MKI_GW_NET\" domain=\"corp.example\" banner=\"modike test gateway\"/>
  </modecfg>"
  # The gateway's entry serves any client: no remote address, no remote ID.
  mki_modiked_conf "$CFG" LISTEN="$MKI_GW_V4" NAME=cl INITIATE=no \
    LOCAL="$MKI_GW_V4" LOCAL_ID=gw PSK=testpsk \
    EXCHANGE=main LOCAL_TS="$MKI_GW_NET" REMOTE_TS=virtual \
    STATUS="$MKI_DIR/gw/modiked.status" LOGLEVEL=debug \
    PLUGINS="natt esp_user tun xauth modecfg" ADAPTER=mk0 ADAPTER_ADDR="$MKI_GW_HOST/32"
  option=
fi
# The generic config with the XAuth method, the plugins' sections and the
# client's mode config option.
python3 - "$CFG" "$section" "$option" <<'PY' || fail "could not make the config"
import sys
cfg, section, option = sys.argv[1:4]
text = open(cfg).read().replace('method="psk"', 'method="xauth-psk"')
text = text.replace("  <peer ", section + "\n  <peer ", 1)
if option:
    text = text.replace("  </peer>", option + "\n  </peer>", 1)
open(cfg, "w").write(text)
PY
if [ -n "$CONNECT" ]; then
  # The peer and its policy become the site `modike connect` uploads, with
  # no <adapter> (one is made for the result) and no stored credentials;
  # the daemon keeps the rest and gets a control socket.
  SOCK=$MKI_DIR/cl/ctl.sock SITE=$MKI_DIR/cl/site.xml
  python3 - "$CFG" "$SITE" "$SOCK" <<'PY' || fail "could not split the config into daemon and site"
import re, sys
cfg, site, sock = sys.argv[1:4]
text = open(cfg).read()
m = re.search(r"(  <peer .*</policy>\n)", text, re.S)
peer = re.sub(r"\n *<adapter [^>]*/>", "", m.group(1).replace('initiate="yes"', 'initiate="no"'))
open(site, "w").write('<?xml version="1.0"?>\n<modike>\n' + peer + "</modike>\n")
text = text.replace(m.group(1), '  <control socket="%s"/>\n' % sock)
text = re.sub(r"<xauth [^>]*>.*?</xauth>", '<xauth timeout="20"/>', text, flags=re.S)
open(cfg, "w").write(text)
PY
  grep -q '<credentials' "$CFG" && fail "the daemon config still holds credentials"
fi
ip netns exec "$NS_M" timeout 20 "$MODIKED" -c "$CFG" --check >"$MKI_DIR/$SIDE_M/check.out" 2>&1 ||
  { cat "$MKI_DIR/$SIDE_M/check.out" "$CFG" >&2; fail "modiked --check rejected the configuration"; }
mki_modiked_start "$SIDE_M" "$CFG"
sleep 1
mki_modiked_alive "$SIDE_M" || fail "modiked exited at start"
LOG=$MKI_DIR/$SIDE_M/modiked.log

if [ -n "$CONNECT" ]; then
  [ -x "${MODIKE:-}" ] || fail "MODIKE (the modike client) is not set or not executable"
  mki_poll 10 "[ -S '$SOCK' ]" || fail "no control socket $SOCK"
  ORIG_DNS=$(cat "$DNS_FILE")
  # modike connect on a terminal; the credentials are typed, not taken
  # from the environment or a file.
  connect () { # OUT CTRLC
    env -u MODIKE_USERNAME -u MODIKE_PASSWORD -u MODIKE_PASSCODE \
      python3 "$HERE/pty-connect.py" "$1" "$2" alice "$PASSWORD" -- "$MODIKE" --socket "$SOCK" connect "$SITE" &
    DRIVER=$!
    MKI_PIDS+=("$DRIVER")
  }
  driver_exit () { # SECONDS OUT: modike's exit status (fails when it still runs)
    mki_poll "$1" "! kill -0 $DRIVER 2>/dev/null" || { cat "$2" >&2; fail "modike connect still runs"; }
    wait "$DRIVER"
  }
  adapter () { ip -n "$NS_M" -o link show | grep -o 'modike[0-9]*' | head -n1; }
  nothing_left () { # WHEN: no adapter, no route into one, resolv.conf as it was
    [ -z "$(adapter)" ] || fail "$1: adapter $(adapter) is still there"
    ip -n "$NS_M" -4 route show | grep -q modike && fail "$1: a route into the adapter is left: $(ip -n "$NS_M" -4 route show)"
    [ "$(cat "$DNS_FILE")" = "$ORIG_DNS" ] || fail "$1: resolv.conf is not as before: $(cat "$DNS_FILE")"
  }
  OUT=$MKI_DIR/connect.out CTRLC=$MKI_DIR/ctrl-c
  connect "$OUT" "$CTRLC"
  if [ "$PASSWORD" != alicepw ]; then
    driver_exit "$WAIT" "$OUT"; rc=$?
    cat "$OUT" >&2
    [ $rc = 4 ] || fail "modike connect: exit $rc after a wrong password, want 4 (authentication failed)"
    grep -Eq '^xauth +failed .*extended authentication failed for user .alice.' "$OUT" ||
      fail "modike connect did not say that extended authentication failed"
    grep -Eq '^(adapter|routes|modecfg) +up' "$OUT" && fail "mode config went on after the failed XAuth"
    nothing_left "after the wrong password"
    grep -q "$PASSWORD" "$OUT" "$LOG" && fail "the password was echoed or logged"
    mki_modiked_stop cl || fail "modiked did not stop on SIGTERM"
    mki_log "PASS: $CASE"
    exit 0
  fi
  mki_poll "$WAIT" "grep -Eq '^modecfg +up' '$OUT' 2>/dev/null" || { cat "$OUT" >&2; fail "modike connect: no modecfg up"; }
  for st in phase1 xauth adapter routes modecfg; do
    grep -Eq "^$st +up +[0-9]+\.[0-9]{3} s" "$OUT" || { cat "$OUT" >&2; fail "modike connect: no '$st up' line"; }
  done
  IF=$(adapter)
  VIP=$(ip -n "$NS_M" -4 -o addr show dev "${IF:-none}" 2>/dev/null | awk '{ print $4 }' | cut -d/ -f1 | head -n1)
  [ -n "$VIP" ] || fail "adapter ${IF:-(none)} has no address"
  python3 -c "import ipaddress,sys; sys.exit(0 if ipaddress.ip_address('$VIP') in ipaddress.ip_network('$POOL') else 1)" ||
    fail "address $VIP is not from the pool $POOL"
  routes=$(ip -n "$NS_M" -4 route show dev "$IF" | awk '$1 ~ /\// { print $1 }' | sort | tr '\n' ' ')
  [ "$routes" = "$MKI_GW_NET " ] || fail "routes into $IF: '$routes', want '$MKI_GW_NET '"
  [ "$(grep -m1 '^nameserver' "$DNS_FILE")" = "nameserver 198.51.100.53" ] ||
    fail "resolv.conf does not have the gateway's server first: $(cat "$DNS_FILE")"
  grep -q '^nameserver 192.0.2.53' "$DNS_FILE" || fail "resolv.conf lost the original server: $(cat "$DNS_FILE")"
  mki_log "$IF has $VIP, route $MKI_GW_NET, DNS 198.51.100.53"
  mki_poll 5 "ip -n '$NS_C' link show ipsec0 >/dev/null 2>&1" || fail "no ipsec0 in gw"
  ip -n "$NS_C" route replace "$POOL" dev ipsec0 || fail "cannot route $POOL into ipsec0"
  # The first packet starts Quick Mode (acquire); then 5 of 5.
  ip netns exec "$NS_M" ping -n -c 3 -i 0.5 -W 2 -I "$VIP" "$MKI_GW_HOST" >/dev/null 2>&1
  ip netns exec "$NS_M" ping -n -c 5 -i 0.2 -W 2 -I "$VIP" "$MKI_GW_HOST" >"$MKI_DIR/ping.out" 2>&1
  sed 's/^/    /' "$MKI_DIR/ping.out" >&2
  grep -q ' 5 received' "$MKI_DIR/ping.out" || fail "ping through the tunnel from $VIP: not 5 of 5"
  grep -Eq '^phase2 +up' "$OUT" || { cat "$OUT" >&2; fail "modike connect: no phase2 up line"; }
  st=$("$MODIKE" --socket "$SOCK" status 2>&1) || fail "modike status: $st"
  printf '%s\n' "$st" >&2
  printf '%s\n' "$st" | grep -Eq "^gw +POLICY +protect +$VIP/32 <-> " || fail "modike status: no policy instance for $VIP"
  touch "$CTRLC"
  driver_exit 15 "$OUT"; rc=$?
  cat "$OUT" >&2
  [ $rc = 0 ] || fail "modike connect: exit $rc after Ctrl-C, want 0"
  grep -q 'prompts answered: 2' "$OUT" || fail "not asked for user name and password once each"
  grep -q alicepw "$OUT" "$LOG" && fail "the password was echoed or logged"
  mki_poll 10 'nothing_left "after Ctrl-C" 2>/dev/null' || nothing_left "after Ctrl-C"
  mki_log "Ctrl-C: adapter, route and DNS change gone"

  # Killed while connected: the adapter goes with the process; the next
  # modiked restores resolv.conf from its state file.
  OUT=$MKI_DIR/connect2.out
  connect "$OUT" "$MKI_DIR/ctrl-c2"
  mki_poll "$WAIT" "grep -Eq '^modecfg +up' '$OUT' 2>/dev/null" || { cat "$OUT" >&2; fail "second connect: no modecfg up"; }
  grep -q '^nameserver 198.51.100.53' "$DNS_FILE" || fail "second connect: no DNS in resolv.conf"
  kill -KILL "$(mki_modiked_pid cl)"
  driver_exit 15 "$OUT"
  mki_poll 10 '[ -z "$(adapter)" ]' || fail "the adapter outlived the killed modiked"
  grep -q '^nameserver 198.51.100.53' "$DNS_FILE" || fail "resolv.conf changed without a modiked to change it"
  mki_modiked_start cl "$CFG"
  mki_poll 10 "[ \"\$(cat '$DNS_FILE')\" = '$ORIG_DNS' ]" || fail "the restarted modiked did not restore resolv.conf: $(cat "$DNS_FILE")"
  grep -q 'the original is back from .*which stopped with DNS set' "$LOG" ||
    fail "the restarted modiked did not say it put resolv.conf back"
  mki_log "modiked after the kill: $(grep -m1 'the original is back' "$LOG" | sed 's/^.*: \//\//')"
  nothing_left "after the restart"
  mki_modiked_stop cl || fail "modiked did not stop on SIGTERM"
  mki_log "PASS: $CASE"
  exit 0
fi

if [ -n "$THREE" ]; then
  # A client's virtual IP (empty while it has none) and its child SA.
  vip_of () { mki_sas_raw "$1" | grep -o 'local-vips=\[[0-9.]*' | cut -d[ -f2 | head -n1; }
  up_of () { mki_sas_raw "$1" | grep -q 'state=INSTALLED'; }
  initiate () {
    mki_swanctl "$1" --initiate --child net --timeout "$WAIT" >"$MKI_DIR/$1/initiate.out" 2>&1 &
    MKI_PIDS+=("$!")
  }
  # All three at once.
  for side in $CLIENT_SIDES; do initiate "$side"; done
  declare -A VIPS=()
  for side in $CLIENT_SIDES; do
    mki_poll "$WAIT" "[ -n \"\$(vip_of $side)\" ] && up_of $side" || fail "client $side: no address and child SA within $WAIT s"
    VIPS[$side]=$(vip_of "$side")
    mki_log "client $side: ${VIPS[$side]}"
  done
  [ "$(printf '%s\n' "${VIPS[@]}" | sort -u | wc -l)" = 3 ] || fail "the three clients do not have three addresses"
  st=$(mki_modiked_status gw) || fail "no status from modiked"
  [ "$(grep -c '^IKE cl ESTABLISHED' "$st")" = 3 ] || { cat "$st" >&2; fail "modiked does not show three IKE SAs"; }
  for side in $CLIENT_SIDES; do
    ns=$(mki_ns "$side")
    mki_poll 5 "ip -n '$ns' link show ipsec0 >/dev/null 2>&1" || fail "no ipsec0 in $side"
    ip -n "$ns" route replace "$MKI_GW_NET" dev ipsec0 || fail "cannot route $MKI_GW_NET into ipsec0 in $side"
    ip netns exec "$ns" ping -n -c 3 -i 0.2 -W 2 -I "${VIPS[$side]}" "$MKI_GW_HOST" >"$MKI_DIR/$side/ping.out" 2>&1
    grep -q ' 3 received' "$MKI_DIR/$side/ping.out" ||
      { cat "$MKI_DIR/$side/ping.out" >&2; fail "client $side: ping from ${VIPS[$side]}"; }
  done
  mki_log "each client pings from its own address"
  # alice pings on while bob leaves and comes back; carol stays.
  ip netns exec "$(mki_ns cl)" ping -n -c 40 -i 0.2 -W 2 -I "${VIPS[cl]}" "$MKI_GW_HOST" >"$MKI_DIR/ping-long.out" 2>&1 &
  LONG=$!
  MKI_PIDS+=("$LONG")
  mki_swanctl c2 --terminate --ike rw --timeout 10 >"$MKI_DIR/c2/terminate.out" 2>&1 || fail "terminate bob (c2)"
  mki_poll 10 "[ -z \"\$(vip_of c2)\" ]" || fail "bob (c2) still has an SA"
  mki_poll 5 "grep -q \"10.99.2.* back from user 'bob'\" '$LOG'" || fail "bob's lease did not go back"
  initiate c2
  mki_poll "$WAIT" "[ -n \"\$(vip_of c2)\" ] && up_of c2" || fail "bob (c2) did not come back"
  [ "$(vip_of c2)" = "${VIPS[c2]}" ] || fail "bob came back with $(vip_of c2), had ${VIPS[c2]}"
  ip -n "$(mki_ns c2)" route replace "$MKI_GW_NET" dev ipsec0 || fail "cannot route $MKI_GW_NET into ipsec0 in c2"
  ip netns exec "$(mki_ns c2)" ping -n -c 3 -i 0.2 -W 2 -I "${VIPS[c2]}" "$MKI_GW_HOST" >"$MKI_DIR/c2/ping2.out" 2>&1
  grep -q ' 3 received' "$MKI_DIR/c2/ping2.out" || fail "bob (c2): no ping after reconnecting"
  wait "$LONG"
  sed 's/^/    /' "$MKI_DIR/ping-long.out" | tail -n 3 >&2
  grep -q ' 40 received' "$MKI_DIR/ping-long.out" || fail "alice lost packets while bob reconnected"
  up_of c3 || fail "carol (c3) lost her SA while bob reconnected"
  ip netns exec "$(mki_ns c3)" ping -n -c 3 -i 0.2 -W 2 -I "${VIPS[c3]}" "$MKI_GW_HOST" >"$MKI_DIR/c3/ping2.out" 2>&1
  grep -q ' 3 received' "$MKI_DIR/c3/ping2.out" || fail "carol (c3): no ping after bob reconnected"
  mki_log "alice 40/40 and carol up while bob left and came back with ${VIPS[c2]}"
  mki_modiked_stop gw || fail "modiked did not stop on SIGTERM"
  mki_log "PASS: $CASE"
  exit 0
fi

if [ "$SIDE_C" = cl ]; then
  mki_swanctl cl --initiate --child net --timeout "$WAIT" >"$MKI_DIR/cl/initiate.out" 2>&1 &
  MKI_PIDS+=("$!")
fi

# The client's assigned address: modiked's adapter, or charon's virtual IP.
client_vip () {
  if [ "$SIDE_M" = cl ]; then
    ip -n "$NS_M" -4 -o addr show dev mk0 2>/dev/null | awk '{ print $4 }' | cut -d/ -f1 | head -n1
  else
    mki_sas_raw cl | grep -o 'local-vips=\[[0-9.]*' | cut -d[ -f2 | head -n1
  fi
}
mki_poll "$WAIT" '[ -n "$(client_vip)" ]' || fail "no address from mode config within $WAIT s"
VIP=$(client_vip)
mki_log "client address: $VIP"
python3 -c "import ipaddress,sys; sys.exit(0 if ipaddress.ip_address('$VIP') in ipaddress.ip_network('$POOL') else 1)" ||
  fail "address $VIP is not from the pool $POOL"

if [ "$SIDE_M" = cl ]; then
  grep -q "mode config: address $VIP" "$LOG" || fail "modiked's log does not show the mode config"
  grep -q "mode config: address $VIP.* dns 198.51.100.53" "$LOG" || fail "no DNS server 198.51.100.53 in the result"
  # Where the tun plugin sets DNS: the server first, the original after it.
  if [ -n "$DNS_FILE" ]; then
    mki_poll 5 "grep -q '^nameserver 198.51.100.53' '$DNS_FILE'" || fail "resolv.conf: $(cat "$DNS_FILE")"
    grep -q '^nameserver 192.0.2.53' "$DNS_FILE" || fail "resolv.conf lost the original server: $(cat "$DNS_FILE")"
    mki_log "resolv.conf has the gateway's DNS server"
  else
    mki_log "this tun plugin sets no DNS: the server was checked in modiked's log"
  fi
  grep -q "extended authentication succeeded" "$LOG" || fail "no XAuth before mode config"
  # charon's unity plugin: the child's local_ts as UNITY_SPLIT_INCLUDE,
  # and exactly those networks routed into mk0
  routes=$(ip -n "$NS_M" -4 route show dev mk0 | awk '$1 ~ /\// { print $1 }' | sort | tr '\n' ' ')
  want=$(printf '%s\n' $SPLIT | sort | tr '\n' ' ')
  mki_log "routes into mk0: $routes"
  for net in $SPLIT; do
    grep -q "mode config: address $VIP.* include $net" "$LOG" || fail "no split include $net in the result"
  done
  [ "$routes" = "$want" ] || fail "routes into mk0: '$routes', want '$want'"
  SRC_NS=$NS_M
else
  [ "$VIP" = 10.99.2.10 ] || fail "charon got $VIP, want the pool's first 10.99.2.10"
  grep -q "user 'alice' gets 10.99.2.10 from pool rw" "$LOG" || fail "modiked's log does not show the lease"
  # charon's virtual IP on its libipsec TUN device; the far net into it
  mki_poll 5 "ip -n '$NS_C' link show ipsec0 >/dev/null 2>&1" || fail "no ipsec0 in cl"
  ip -n "$NS_C" route replace "$MKI_GW_NET" dev ipsec0 src "$VIP" || fail "cannot route $MKI_GW_NET into ipsec0"
  SRC_NS=$NS_C
fi
if [ "$SIDE_C" = gw ]; then
  # charon's replies to the client's address go into its TUN device.
  mki_poll 5 "ip -n '$NS_C' link show ipsec0 >/dev/null 2>&1" || fail "no ipsec0 in gw"
  ip -n "$NS_C" route replace "$POOL" dev ipsec0 || fail "cannot route $POOL into ipsec0"
fi

# The first packet starts Quick Mode (acquire) on modiked's side; then 5 of 5.
ip netns exec "$SRC_NS" ping -n -c 3 -i 0.5 -W 2 -I "$VIP" "$MKI_GW_HOST" >/dev/null 2>&1
ip netns exec "$SRC_NS" ping -n -c 5 -i 0.2 -W 2 -I "$VIP" "$MKI_GW_HOST" >"$MKI_DIR/ping.out" 2>&1
sed 's/^/    /' "$MKI_DIR/ping.out" >&2
grep -q ' 5 received' "$MKI_DIR/ping.out" || fail "ping through the tunnel from $VIP: not 5 of 5"
mki_log "ping through the tunnel from $VIP: 5/5"

mki_modiked_stop "$SIDE_M" || fail "modiked did not stop on SIGTERM"
if [ "$SIDE_M" = cl ]; then
  ip -n "$NS_M" link show mk0 >/dev/null 2>&1 && fail "mk0 is still there after modiked stopped"
  if [ -n "$DNS_FILE" ]; then
    [ "$(cat "$DNS_FILE")" = "nameserver 192.0.2.53" ] || fail "resolv.conf not restored: $(cat "$DNS_FILE")"
  fi
fi
mki_log "PASS: $CASE"
exit 0
