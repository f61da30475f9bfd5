#!/usr/bin/env bash
# The main job: the remote-access flow with modiked on both ends, in two
# network namespaces.
#
#   gw (192.0.2.1): modiked as the gateway. One peer entry "clients" for
#     any client: pre-shared key, then XAuth against a users file (alice),
#     then mode config from an address pool (10.99.1.10-10.99.1.20) with a
#     DNS server, a domain and the split network 198.51.100.0/24 behind it;
#     a policy template local=198.51.100.0/24 remote="virtual" becomes one
#     policy per client; its adapter mk0 holds 198.51.100.1.
#   cl (192.0.2.2): modiked as the client, with nothing but a control
#     socket. `modike connect site.xml` uploads the site (the gateway, its
#     key, local="virtual"), shows each stage as it happens (phase 1,
#     xauth, modecfg, adapter, routes, phase 2), answers the XAuth prompt
#     from MODIKE_USERNAME/MODIKE_PASSWORD and stays attached.
#
# Then: ping 198.51.100.1 from the assigned address through the tunnel
# (phase 2 starts on that traffic), `modike status`, the DNS the client got
# (a resolv.conf of the demo's own), `modike disconnect gw`, and a check
# that the adapter, its routes and the DNS change are gone. Prints "OK: ..."
# or the failure with both logs. Exit 0/1.
#
# Installs what is missing (scripts/deps.sh) and builds into ./build if
# needed (MODIKE_BUILD=dir to build elsewhere). Needs root (network
# namespaces): sudo scripts/demo.sh.
set -uo pipefail
ROOT=$(cd "$(dirname "$0")/.." && pwd)
BUILD=${MODIKE_BUILD:-$ROOT/build}
WAIT=${MODIKE_DEMO_WAIT:-30}

[ "$(id -u)" = 0 ] || { echo "demo: needs root for network namespaces: sudo $0" >&2; exit 1; }
"$ROOT/scripts/deps.sh" || { echo "demo: installing dependencies failed" >&2; exit 1; }
if [ ! -f "$BUILD/build.ninja" ]; then
  meson setup "$BUILD" "$ROOT" >/dev/null || { echo "demo: meson setup failed" >&2; exit 1; }
fi
ninja -C "$BUILD" >/dev/null || { echo "demo: build failed (ninja -C $BUILD)" >&2; exit 1; }
export MODIKED=$BUILD/daemon/modiked
MODIKE=$BUILD/client/modike
PASSWD_TOOL=$BUILD/plugins/xauth/modike-xauth-passwd
export MODIKE_PLUGIN_DIR=$BUILD/plugins/natt
# shellcheck source=../tests/interop/lib.sh
. "$ROOT/tests/interop/lib.sh"
mki_require_prereqs modiked traffic
mki_setup demo
PLUGINS="natt esp_user tun xauth modecfg"

show_failure () {
  echo "FAILED: $*"
  local side
  for side in gw cl; do
    echo "----- $side: modiked log (last 40 lines) -----"
    tail -n 40 "$MKI_DIR/$side/modiked.log" 2>/dev/null
  done
  echo "----- modike connect -----"
  cat "$MKI_DIR/connect.out" 2>/dev/null
  exit 1
}

section () { echo; echo "----- $* -----"; }

# --- the gateway ---------------------------------------------------------------
mki_plugin_dir "$MKI_DIR/gw/plugins" $PLUGINS || show_failure "plugins not built"
printf 'alicepw\n' | "$PASSWD_TOOL" alice >"$MKI_DIR/gw/users" || show_failure "modike-xauth-passwd"
mki_drop_lo_host gw
cat >"$MKI_DIR/gw/modiked.xml" <<EOF
<?xml version="1.0"?>
<modike>
  <daemon>
    <listen address="$MKI_GW_V4"/>
    <plugins dir="$MKI_PLUGIN_DIR_OUT">
      <plugin name="natt"/> <plugin name="esp_user"/> <plugin name="tun"/>
      <plugin name="xauth"/> <plugin name="modecfg"/>
    </plugins>
    <log level="info"/>
    <status file="$MKI_DIR/gw/modiked.status"/>
  </daemon>
  <xauth users-file="$MKI_DIR/gw/users"/>
  <modecfg>
    <leases file="$MKI_DIR/gw/leases.db"/>
    <pool name="rw" range="10.99.1.10-10.99.1.20"/>
    <gateway peer="clients" pools="rw" dns="198.51.100.53" domain="corp.example"
             split-include="$MKI_GW_NET" banner="Welcome to the modike demo gateway."/>
  </modecfg>
  <peer name="clients" initiate="no">
    <local address="$MKI_GW_V4"/>
    <local-id type="fqdn" value="gw.example"/>
    <auth method="xauth-psk" secret="demo-secret"/>
    <phase1 exchange="main"><proposal encryption="aes128" hash="sha256" group="modp2048"/></phase1>
    <adapter name="mk0" address="$MKI_GW_HOST/32"/>
  </peer>
  <policy name="rw" peer="clients" action="protect" local="$MKI_GW_NET" remote="virtual">
    <proposal encryption="aes128gcm16"/>
  </policy>
</modike>
EOF

# --- the client ------------------------------------------------------------------
mki_plugin_dir "$MKI_DIR/cl/plugins" $PLUGINS || show_failure "plugins not built"
SOCK=$MKI_DIR/cl/modiked.sock
printf 'nameserver 192.0.2.53\nsearch home.example\n' >"$MKI_DIR/cl/resolv.conf"
cp "$MKI_DIR/cl/resolv.conf" "$MKI_DIR/cl/resolv.conf.before"
cat >"$MKI_DIR/cl/modiked.xml" <<EOF
<?xml version="1.0"?>
<modike>
  <daemon>
    <listen address="$MKI_CL_V4"/>
    <plugins dir="$MKI_PLUGIN_DIR_OUT">
      <plugin name="natt"/> <plugin name="esp_user"/> <plugin name="tun"/>
      <plugin name="xauth"/> <plugin name="modecfg"/>
    </plugins>
    <log level="info"/>
    <status file="$MKI_DIR/cl/modiked.status"/>
  </daemon>
  <control socket="$SOCK"/>
  <xauth/>
  <tun resolv-conf="$MKI_DIR/cl/resolv.conf" state-dir="$MKI_DIR/cl/run"/>
</modike>
EOF
# What a user gets from the gateway's admin: the site.
cat >"$MKI_DIR/cl/site.xml" <<EOF
<?xml version="1.0"?>
<modike>
  <peer name="gw" initiate="no">
    <local address="$MKI_CL_V4"/>
    <remote address="$MKI_GW_V4"/>
    <remote-id type="fqdn" value="gw.example"/>
    <auth method="xauth-psk" secret="demo-secret"/>
    <phase1 exchange="main"><proposal encryption="aes128" hash="sha256" group="modp2048"/></phase1>
    <option name="modecfg.mode" value="pull"/>
  </peer>
  <policy name="vpn" peer="gw" action="protect" local="virtual" remote="any">
    <proposal encryption="aes128gcm16"/>
  </policy>
</modike>
EOF

for side in gw cl; do
  ip netns exec "$(mki_ns $side)" timeout 20 "$MODIKED" -c "$MKI_DIR/$side/modiked.xml" --check \
    >"$MKI_DIR/$side/modiked.log" 2>&1 || show_failure "modiked --check ($side)"
done
mki_modiked_start gw "$MKI_DIR/gw/modiked.xml"
mki_modiked_start cl "$MKI_DIR/cl/modiked.xml"
mki_poll 10 "[ -S '$SOCK' ]" || show_failure "no control socket $SOCK"

section "modike connect site.xml (in cl)"
OUT=$MKI_DIR/connect.out
MODIKE_USERNAME=alice MODIKE_PASSWORD=alicepw \
  ip netns exec "$MKI_NS_CL" "$MODIKE" --socket "$SOCK" connect "$MKI_DIR/cl/site.xml" >"$OUT" 2>&1 &
CONNECT=$!
MKI_PIDS+=("$CONNECT")
mki_poll "$WAIT" "grep -Eq '^routes +up' '$OUT'" || show_failure "no 'routes up' from modike connect"
IFNAME=$(ip -n "$MKI_NS_CL" -o link show | grep -o 'modike[0-9]*' | head -n1)
VIP=$(ip -n "$MKI_NS_CL" -o -4 addr show dev "${IFNAME:-none}" 2>/dev/null | awk '{print $4}' | head -n1)
[ -n "$VIP" ] || show_failure "the client's adapter has no address"
cat "$OUT"
SHOWN=$(wc -l <"$OUT")

section "ping $MKI_GW_HOST from $VIP (cl) through the tunnel"
MKI_PING_FROM=${VIP%/*} mki_ping cl 5 -i 0.2 -W 2 2>/dev/null
cat "$MKI_DIR/cl/ping.out"
# The first packet waits for phase 2, which it starts (acquire).
[ "$MKI_PING_RX" -ge 4 ] || show_failure "ping through the tunnel: $MKI_PING_RX of 5 replies"
mki_poll 10 "grep -Eq '^phase2 +up' '$OUT'" || show_failure "modike connect shows no phase 2"
section "modike connect, since"
tail -n +$((SHOWN + 1)) "$OUT"

section "modike status (cl)"
"$MODIKE" --socket "$SOCK" status || show_failure "modike status"
section "client adapter $IFNAME and its routes"
ip -n "$MKI_NS_CL" -4 addr show dev "$IFNAME" | grep inet
ip -n "$MKI_NS_CL" route show dev "$IFNAME"
section "resolv.conf while connected"
cat "$MKI_DIR/cl/resolv.conf"
grep -q '^nameserver 198.51.100.53' "$MKI_DIR/cl/resolv.conf" || show_failure "the gateway's DNS server is not in resolv.conf"
section "gateway status (one IKE SA for alice, its ESP SAs and policy instance)"
mki_modiked_status gw >/dev/null && cat "$MKI_DIR/gw/modiked.status"

section "modike disconnect gw"
"$MODIKE" --socket "$SOCK" disconnect gw || show_failure "modike disconnect"
mki_poll 10 "! kill -0 $CONNECT 2>/dev/null" || show_failure "modike connect still attached"
wait "$CONNECT"; rc=$?
tail -n 2 "$OUT"
# 7: the connection ended while attached (here: modike disconnect from another shell).
[ $rc = 7 ] || show_failure "modike connect exited $rc after the disconnect, want 7 (ended)"
ip -n "$MKI_NS_CL" -o link show | grep -q "$IFNAME" && show_failure "adapter $IFNAME is still there"
cmp -s "$MKI_DIR/cl/resolv.conf" "$MKI_DIR/cl/resolv.conf.before" || show_failure "resolv.conf was not restored"
echo "adapter $IFNAME, its routes and the DNS change are gone; resolv.conf is as before"
mki_modiked_stop cl || show_failure "modiked (cl) did not stop"
mki_modiked_stop gw || show_failure "modiked (gw) did not stop"
echo
echo "OK: connected as alice, got $VIP, ping crossed the tunnel ($MKI_PING_RX/$MKI_PING_TX replies), disconnected cleanly"
exit 0
