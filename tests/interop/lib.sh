# shellcheck shell=bash disable=SC2034
# Interop harness: two network namespaces joined by a veth pair, charon and
# modiked started inside them. Source it from bash; every name starts with
# mki_ (functions) or MKI_ (variables).
#
#   mki_require_prereqs [charon] [modiked]  fails (exit 1), clear message
#   mki_setup NAME                    namespaces, veth, addresses, case dir
#   mki_strongswan_conf SIDE [LEVELS [PLUGIN...]]  charon's config; the
#                                     plugins it loads: MKI_CHARON_PLUGINS
#                                     + PLUGIN... (what the case needs)
#   mki_charon_start SIDE             SIDE = gw|cl; strongswan.conf and
#                                     swanctl.conf must be in $MKI_DIR/SIDE;
#                                     fails at once if a plugin of the
#                                     load line did not load
#   mki_swanctl SIDE ARGS...          swanctl against that charon
#   mki_modiked_start SIDE CFG        modiked -c CFG --foreground in SIDE
#   mki_modiked_status SIDE           SIGUSR1, wait for the status file
#   mki_charon_modiked_up             charon (gw) and modiked (cl) both show
#                                     an established IKE SA with a child
#   mki_capture_start / _stop         dumpcap on the gw side of the veth
#   cleanup runs on EXIT (trap set by mki_setup).
# A router between the two (issue 9: small MTUs, fragment drops, NAT):
#   mki_setup_routed NAME             namespaces cl - rt - gw (see there)
#   mki_rt_mtu MTU                    MTU of all four ends of both links
#   mki_rt_nft RULE...                nft rules in rt, before defragmenting
#   mki_rt_drop_ip_fragments          rt drops every IPv4/IPv6 fragment
# Traffic (issue 4, the datapath; see "Traffic" near the end):
#   mki_plugin_dir DEST NAME...       a directory holding NAME.so for each
#   mki_drop_lo_host SIDE             the inner /32 off lo (an adapter has it)
#   mki_libipsec_route SIDE           route the far net into charon's ipsec0
#   mki_ping SIDE COUNT [ARGS]        ping the far host from this side's host
#   mki_transfer FROM TO FILE ...     TCP transfer, SHA-256 checked at TO
#   mki_iperf3 FROM TO SECONDS        iperf3 TCP, prints receiver Mbit/s
#
# Only the documentation ranges are used, only inside our own namespaces:
# gw = 192.0.2.1/24 + 2001:db8::1/64, cl = 192.0.2.2/24 + 2001:db8::2/64 on
# veth0; behind them (on lo) the protected nets' first hosts, gw
# 198.51.100.1/32 and cl 203.0.113.1/32: charon's kernel-libipsec refuses a
# child ("error installing route with policy") without a local address
# inside its local traffic selector.

MKI_PREFIX=mkio                 # namespace names: mkio-<side>-<pid>
MKI_GW_V4=192.0.2.1
MKI_CL_V4=192.0.2.2
MKI_GW_V6=2001:db8::1
MKI_CL_V6=2001:db8::2
MKI_GW_NET=198.51.100.0/24      # protected net behind gw
MKI_CL_NET=203.0.113.0/24       # protected net behind cl
MKI_GW_HOST=198.51.100.1
MKI_CL_HOST=203.0.113.1
MKI_CHARON=${MKI_CHARON:-/usr/lib/ipsec/charon}
MKI_SWANCTL=${MKI_SWANCTL:-swanctl}
# The charon plugins every case loads (kernel-libipsec: this kernel has no
# ESP in XFRM; it forces UDP encapsulation). A case adds what it needs on
# top when it calls mki_strongswan_conf (e.g. gcm for AES-GCM): the load
# line written from both is the one list mki_charon_start checks.
MKI_CHARON_PLUGINS="random nonce openssl pem pkcs1 x509 pubkey curve25519 aes sha1 sha2 md5 hmac gmp kernel-libipsec kernel-netlink socket-default vici"
MKI_CHARON_PLUGIN_DIR=${MKI_CHARON_PLUGIN_DIR:-/usr/lib/ipsec/plugins}
MKI_HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
MKI_PIDS=()                     # every process we started, killed on exit
MKI_KEEP=${MKI_KEEP:-0}         # 1: keep the case directory for inspection

mki_log () { printf '[%s] %s\n' "${MKI_CASE:-interop}" "$*" >&2; }
mki_fail () { mki_log "FAIL: $*"; exit 1; }

# A missing prerequisite is a failure, never a skip. Arguments: what the
# caller runs, "charon" and/or "modiked" (MODIKED, MODIKE_PLUGIN_DIR set),
# "traffic" (ping, python3, /dev/net/tun), "iperf3".
mki_require_prereqs () {
  [ "$(id -u)" = 0 ] || mki_fail "must run as root (network namespaces)"
  local tool what
  for tool in ip unshare mount timeout ss; do
    command -v "$tool" >/dev/null 2>&1 ||
      mki_fail "missing prerequisite: $tool (scripts/deps.sh installs iproute2)"
  done
  for what in "$@"; do
    case $what in
      charon)
        for tool in "$MKI_CHARON" "$MKI_SWANCTL"; do
          command -v "$tool" >/dev/null 2>&1 ||
            mki_fail "missing prerequisite: $tool (scripts/deps.sh installs strongswan-charon strongswan-swanctl)"
        done ;;
      modiked)
        [ -n "${MODIKED:-}" ] || mki_fail "MODIKED is not set (path of the built modiked)"
        [ -x "$MODIKED" ] || mki_fail "modiked not found or not executable: $MODIKED"
        [ -n "${MODIKE_PLUGIN_DIR:-}" ] || mki_fail "MODIKE_PLUGIN_DIR is not set (build dir of plugins)"
        ;;
      traffic)  # ping and the python3 transfer script
        for tool in ping python3 sha256sum; do
          command -v "$tool" >/dev/null 2>&1 ||
            mki_fail "missing prerequisite: $tool (scripts/deps.sh installs iputils-ping python3 coreutils)"
        done
        [ -r "$MKI_HERE/xfer.py" ] || mki_fail "missing $MKI_HERE/xfer.py"
        [ -c /dev/net/tun ] || mki_fail "missing prerequisite: /dev/net/tun (TUN devices)"
        ;;
      iperf3)
        command -v iperf3 >/dev/null 2>&1 || mki_fail "missing prerequisite: iperf3 (scripts/deps.sh installs it)"
        ;;
    esac
  done
}

# Namespaces of earlier runs of this suite whose owner process is gone (a
# crashed or killed run): kill what still runs inside them and delete them.
# Those of a live run (another case running now) are left alone.
mki_cleanup_stale () {
  local ns owner pid
  for ns in $(ip netns list 2>/dev/null | awk '{print $1}' | grep "^${MKI_PREFIX}-" || true); do
    owner=${ns##*-}
    # Our own pid here means a dead run's pid came back to us: stale too.
    if [ -n "$owner" ] && [ "$owner" != $$ ] && kill -0 "$owner" 2>/dev/null; then
      continue
    fi
    for pid in $(ip netns pids "$ns" 2>/dev/null); do
      kill -KILL "$pid" 2>/dev/null || true
    done
    ip netns delete "$ns" 2>/dev/null || true
    mki_log "removed stale namespace $ns"
  done
}

mki_cleanup () {
  local rc=$? pid i
  trap - EXIT INT TERM
  # Ask nicely first, then force; only the processes this run started.
  for pid in "${MKI_PIDS[@]}"; do kill -TERM "$pid" 2>/dev/null || true; done
  for i in $(seq 1 30); do
    local alive=0
    for pid in "${MKI_PIDS[@]}"; do
      kill -0 "$pid" 2>/dev/null && alive=1
    done
    [ $alive = 0 ] && break
    sleep 0.1
  done
  for pid in "${MKI_PIDS[@]}"; do kill -KILL "$pid" 2>/dev/null || true; done
  wait 2>/dev/null || true
  [ -n "${MKI_NS_GW:-}" ] && ip netns delete "$MKI_NS_GW" 2>/dev/null
  [ -n "${MKI_NS_CL:-}" ] && ip netns delete "$MKI_NS_CL" 2>/dev/null
  [ -n "${MKI_NS_RT:-}" ] && ip netns delete "$MKI_NS_RT" 2>/dev/null
  for i in "${MKI_NS_EXTRA[@]}"; do ip netns delete "$i" 2>/dev/null; done
  if [ -n "${MKI_DIR:-}" ] && [ -d "$MKI_DIR" ]; then
    if [ "$MKI_KEEP" = 1 ] || [ $rc != 0 ]; then
      mki_log "case directory kept: $MKI_DIR"
    else
      rm -rf "$MKI_DIR"
    fi
  fi
  exit $rc
}

# The start of mki_setup and mki_setup_routed: stale namespaces gone, the
# gw and cl namespace names, cleanup on exit, the case directory.
mki_case_begin () {
  MKI_CASE=$1
  mki_cleanup_stale
  MKI_ID=$$
  MKI_NS_GW=$MKI_PREFIX-gw-$MKI_ID
  MKI_NS_CL=$MKI_PREFIX-cl-$MKI_ID
  trap mki_cleanup EXIT
  trap 'exit 1' INT TERM
  MKI_DIR=$(mktemp -d "${TMPDIR:-/tmp}/modike-interop-$MKI_CASE.XXXXXX")
  mkdir -p "$MKI_DIR/gw" "$MKI_DIR/cl"
}

# mki_setup CASE: namespaces mkio-gw-$$ and mkio-cl-$$, veth0 in each,
# addresses, loopback; a case directory with gw/ and cl/ below it.
mki_setup () {
  mki_case_begin "$1"
  ip netns add "$MKI_NS_GW" || mki_fail "ip netns add $MKI_NS_GW"
  ip netns add "$MKI_NS_CL" || mki_fail "ip netns add $MKI_NS_CL"
  # Created inside the namespaces: no interface ever appears on the host.
  ip -n "$MKI_NS_GW" link add veth0 type veth peer name veth0 netns "$MKI_NS_CL" ||
    mki_fail "veth pair"
  local ns v4 v6 inner
  for ns in "$MKI_NS_GW" "$MKI_NS_CL"; do
    if [ "$ns" = "$MKI_NS_GW" ]; then v4=$MKI_GW_V4 v6=$MKI_GW_V6 inner=$MKI_GW_HOST
    else v4=$MKI_CL_V4 v6=$MKI_CL_V6 inner=$MKI_CL_HOST; fi
    ip -n "$ns" link set lo up
    ip -n "$ns" addr add "$inner/32" dev lo
    ip -n "$ns" addr add "$v4/24" dev veth0
    ip -n "$ns" -6 addr add "$v6/64" dev veth0 nodad
    ip -n "$ns" link set veth0 up
  done
  # Both ends must have carrier before anyone sends (no ping on these
  # machines; LOWER_UP on a veth means the peer end is up too).
  local i
  for i in $(seq 1 50); do
    ip -n "$MKI_NS_GW" -o link show veth0 | grep -q LOWER_UP &&
      ip -n "$MKI_NS_CL" -o link show veth0 | grep -q LOWER_UP && return 0
    sleep 0.1
  done
  mki_fail "veth0 not up in $MKI_NS_CL and $MKI_NS_GW"
}

mki_ns () {
  case $1 in
    gw) echo "$MKI_NS_GW" ;;
    rt) echo "$MKI_NS_RT" ;;
    cl) echo "$MKI_NS_CL" ;;
    *) eval "echo \${MKI_NS_SIDE_$1:-$MKI_NS_CL}" ;;
  esac
}

# mki_add_client SIDE ADDR: one more client machine for gw (after
# mki_setup): namespace mkio-SIDE-<pid> with ADDR/32 on its veth0, linked
# to gw by a veth pair of its own (gw's end v-SIDE also holds
# $MKI_GW_V4/32) and host routes both ways, so gw sees a separate host on
# its subnet. mki_ns SIDE names it; $MKI_DIR/SIDE is its directory.
MKI_NS_EXTRA=()
mki_add_client () {
  local side=$1 addr=$2 ns=$MKI_PREFIX-$1-$MKI_ID i
  ip netns add "$ns" || mki_fail "ip netns add $ns"
  MKI_NS_EXTRA+=("$ns")
  eval "MKI_NS_SIDE_$side=$ns"
  mkdir -p "$MKI_DIR/$side"
  ip -n "$MKI_NS_GW" link add "v-$side" type veth peer name veth0 netns "$ns" || mki_fail "veth pair gw - $side"
  ip -n "$ns" link set lo up
  ip -n "$ns" addr add "$addr/32" dev veth0
  ip -n "$ns" link set veth0 up
  ip -n "$ns" route add "$MKI_GW_V4/32" dev veth0 || mki_fail "route to gw in $side"
  ip -n "$MKI_NS_GW" addr add "$MKI_GW_V4/32" dev "v-$side"
  ip -n "$MKI_NS_GW" link set "v-$side" up
  ip -n "$MKI_NS_GW" route add "$addr/32" dev "v-$side" || mki_fail "route to $side in gw"
  for i in $(seq 1 50); do
    ip -n "$ns" -o link show veth0 | grep -q LOWER_UP && return 0
    sleep 0.1
  done
  mki_fail "veth0 not up in $ns"
}

# Waits (5 s) until interface DEV in namespace NS has carrier.
mki_wait_carrier () {
  local i
  for i in $(seq 1 50); do
    ip -n "$1" -o link show "$2" | grep -q LOWER_UP && return 0
    sleep 0.1
  done
  mki_fail "$2 not up in $1"
}

# mki_setup_routed CASE: like mki_setup, but a router namespace
# mkio-rt-$$ sits between gw and cl, and 192.0.2.0/24 is split into two
# links: gw 192.0.2.1/25 -- rt veth-gw 192.0.2.126/25, rt veth-cl
# 192.0.2.254/25 -- cl 192.0.2.129/25 (IPv6: 2001:db8::/64 on the gw link,
# 2001:db8:1::/64 on the cl link, rt ::fe on both). MKI_CL_V4/V6 change
# accordingly; gw and cl route the other's address via rt, which
# forwards. Interfaces: veth0 in gw and cl, veth-gw and veth-cl in rt. The
# inner hosts on lo are as with mki_setup. Cases for small MTUs, fragment
# drops (mki_rt_mtu, mki_rt_drop_ip_fragments) and NAT (nft rules in rt:
# mki_rt_nft) build on it.
mki_setup_routed () {
  mki_case_begin "$1"
  MKI_NS_RT=$MKI_PREFIX-rt-$MKI_ID
  MKI_CL_V4=192.0.2.129
  MKI_CL_V6=2001:db8:1::2
  MKI_RT_GW_V4=192.0.2.126 MKI_RT_CL_V4=192.0.2.254
  MKI_RT_GW_V6=2001:db8::fe MKI_RT_CL_V6=2001:db8:1::fe
  mkdir -p "$MKI_DIR/rt"
  local ns
  for ns in "$MKI_NS_GW" "$MKI_NS_CL" "$MKI_NS_RT"; do
    ip netns add "$ns" || mki_fail "ip netns add $ns"
    ip -n "$ns" link set lo up
  done
  ip -n "$MKI_NS_RT" link add veth-gw type veth peer name veth0 netns "$MKI_NS_GW" || mki_fail "veth rt-gw"
  ip -n "$MKI_NS_RT" link add veth-cl type veth peer name veth0 netns "$MKI_NS_CL" || mki_fail "veth rt-cl"
  ip netns exec "$MKI_NS_RT" sysctl -qw net.ipv4.ip_forward=1 net.ipv6.conf.all.forwarding=1 ||
    mki_fail "forwarding in $MKI_NS_RT"
  ip -n "$MKI_NS_RT" addr add "$MKI_RT_GW_V4/25" dev veth-gw
  ip -n "$MKI_NS_RT" addr add "$MKI_RT_CL_V4/25" dev veth-cl
  ip -n "$MKI_NS_RT" -6 addr add "$MKI_RT_GW_V6/64" dev veth-gw nodad
  ip -n "$MKI_NS_RT" -6 addr add "$MKI_RT_CL_V6/64" dev veth-cl nodad
  ip -n "$MKI_NS_RT" link set veth-gw up
  ip -n "$MKI_NS_RT" link set veth-cl up
  ip -n "$MKI_NS_GW" addr add "$MKI_GW_HOST/32" dev lo
  ip -n "$MKI_NS_GW" addr add "$MKI_GW_V4/25" dev veth0
  ip -n "$MKI_NS_GW" -6 addr add "$MKI_GW_V6/64" dev veth0 nodad
  ip -n "$MKI_NS_CL" addr add "$MKI_CL_HOST/32" dev lo
  ip -n "$MKI_NS_CL" addr add "$MKI_CL_V4/25" dev veth0
  ip -n "$MKI_NS_CL" -6 addr add "$MKI_CL_V6/64" dev veth0 nodad
  for ns in "$MKI_NS_GW" "$MKI_NS_CL"; do ip -n "$ns" link set veth0 up; done
  ip -n "$MKI_NS_GW" route add 192.0.2.128/25 via "$MKI_RT_GW_V4"
  ip -n "$MKI_NS_GW" -6 route add 2001:db8:1::/64 via "$MKI_RT_GW_V6"
  ip -n "$MKI_NS_CL" route add 192.0.2.0/25 via "$MKI_RT_CL_V4"
  ip -n "$MKI_NS_CL" -6 route add 2001:db8::/64 via "$MKI_RT_CL_V6"
  mki_wait_carrier "$MKI_NS_RT" veth-gw
  mki_wait_carrier "$MKI_NS_RT" veth-cl
  mki_wait_carrier "$MKI_NS_GW" veth0
  mki_wait_carrier "$MKI_NS_CL" veth0
}

# mki_rt_mtu MTU: the MTU of both links, at all four ends (so gw and cl
# fragment locally what does not fit, as a host behind a small link does).
# Below 1280 the kernel takes IPv6 off the links (its minimum MTU).
mki_rt_mtu () {
  local ns dev
  for ns in "$MKI_NS_RT:veth-gw" "$MKI_NS_RT:veth-cl" "$MKI_NS_GW:veth0" "$MKI_NS_CL:veth0"; do
    dev=${ns#*:} ns=${ns%%:*}
    ip -n "$ns" link set "$dev" mtu "$1" || mki_fail "cannot set MTU $1 on $dev in $ns"
  done
}

# mki_rt_nft RULE...: each RULE (nft syntax) appended to the chain
# "inet mki pre" of rt, hooked at prerouting before connection tracking
# reassembles fragments (priority -500), so a rule sees every fragment.
mki_rt_nft () {
  command -v nft >/dev/null 2>&1 || mki_fail "missing prerequisite: nft (scripts/deps.sh installs nftables)"
  if ! ip netns exec "$MKI_NS_RT" nft list chain inet mki pre >/dev/null 2>&1; then
    ip netns exec "$MKI_NS_RT" nft add table inet mki || mki_fail "nft: cannot create a table in $MKI_NS_RT"
    ip netns exec "$MKI_NS_RT" nft add chain inet mki pre '{ type filter hook prerouting priority -500; }' ||
      mki_fail "nft: cannot create the chain in $MKI_NS_RT"
  fi
  local rule
  for rule in "$@"; do
    # shellcheck disable=SC2086  # a rule is a word list for nft
    ip netns exec "$MKI_NS_RT" nft add rule inet mki pre $rule || mki_fail "nft rule '$rule' refused"
  done
}

# rt drops IP fragments (first and later ones, v4 and v6), counting them:
# mki_rt_nft_counts prints "v4-later v4-first v6" packet counts.
mki_rt_drop_ip_fragments () {
  mki_rt_nft 'ip frag-off & 0x1fff != 0 counter drop' 'ip frag-off & 0x2000 != 0 counter drop'     'exthdr frag exists counter drop'
}

mki_rt_nft_counts () {
  ip netns exec "$MKI_NS_RT" nft list chain inet mki pre 2>/dev/null |
    grep -o 'packets [0-9]*' | awk '{ printf "%s%s", sep, $2; sep = " " } END { print "" }'
}

# mki_strongswan_conf SIDE [LOGLEVELS [PLUGIN...]]: writes
# $MKI_DIR/SIDE/strongswan.conf from the template. LOGLEVELS: filelog
# subsystem lines, "default = 1" style separated by ';' (e.g. "default = 1;
# ike = 4; enc = 2"; empty: the default). PLUGIN...: charon plugins the case
# needs besides MKI_CHARON_PLUGINS.
mki_strongswan_conf () {
  local side=$1 levels=${2:-"default = 1; ike = 2; cfg = 2; knl = 1; enc = 1"}
  local dir=$MKI_DIR/$side plugins=$MKI_CHARON_PLUGINS p
  shift; [ $# -gt 0 ] && shift
  for p in "$@"; do
    case " $plugins " in *" $p "*) ;; *) plugins="$plugins $p" ;; esac
  done
  levels=$(printf '%s' "$levels" | tr ';' '\n' | sed 's/^ */      /')
  awk -v dir="$dir" -v levels="$levels" -v plugins="$plugins" '
    { gsub(/@DIR@/, dir); gsub(/@PLUGINS@/, plugins) }
    /@LEVELS@/ { print levels; next }
    { print }' "$MKI_HERE/strongswan/strongswan.conf.in" > "$dir/strongswan.conf"
}

# The Debian 12 package that ships charon plugin NAME as
# $MKI_CHARON_PLUGIN_DIR/libstrongswan-NAME.so (strongSwan 5.9.8; dpkg -S,
# and dpkg -c for libcharon-extauth-plugins). Empty when none does.
mki_charon_plugin_package () {
  case $1 in
    aes|attr|constraints|dnskey|drbg|fips-prf|gmp|hmac|kdf|kernel-netlink|md5|mgf1|nonce|pem|pgp|\
    pkcs1|pkcs7|pkcs8|pkcs12|pubkey|random|rc2|resolve|revocation|sha1|sha2|sshkey|x509|xcbc)
      echo libstrongswan ;;
    aesni|agent|connmark|gcm|openssl)
      echo libstrongswan-standard-plugins ;;
    af-alg|ccm|chapoly|cmac|ctr|curl|curve25519|gcrypt|ldap|pkcs11|rdrand|test-vectors|tpm)
      echo libstrongswan-extra-plugins ;;
    addrblock|certexpire|dhcp|eap-aka|eap-gtc|eap-identity|eap-md5|eap-radius|eap-tls|eap-tnc|\
    eap-ttls|error-notify|farp|forecast|ha|kernel-libipsec|led|lookip|tnc-tnccs|unity|xauth-eap|xauth-pam)
      echo libcharon-extra-plugins ;;
    eap-mschapv2|xauth-generic)
      echo libcharon-extauth-plugins ;;
    bypass-lan|counters|socket-default|updown)
      echo strongswan-libcharon ;;
    stroke)
      echo strongswan-starter ;;
    vici)
      echo strongswan-swanctl ;;
  esac
}

# mki_charon_check_plugins SIDE: 0 when every plugin on the load line of
# SIDE's strongswan.conf is among those the running charon reports loaded
# (swanctl --stats). Otherwise 1, and one line per missing plugin on
# stderr: its name, the Debian package that ships it and why it is absent.
mki_charon_check_plugins () {
  local side=$1 dir=$MKI_DIR/$1 want have p pkg so why bad=0
  want=$(sed -n 's/^[[:space:]]*load[[:space:]]*=[[:space:]]*//p' "$dir/strongswan.conf" | head -n1 | tr -d '!')
  have=$(mki_swanctl "$side" --stats 2>/dev/null | sed -n 's/^loaded plugins: //p')
  [ -n "$have" ] || { mki_log "charon ($side): swanctl --stats lists no loaded plugins"; return 1; }
  for p in $want; do
    case " $have " in *" $p "*) continue ;; esac
    bad=1
    pkg=$(mki_charon_plugin_package "$p")
    so=$MKI_CHARON_PLUGIN_DIR/libstrongswan-$p.so
    if [ -z "$pkg" ]; then
      why="no Debian package is known to ship $so (misspelt in the case?)"
    elif [ ! -e "$so" ]; then
      why="$so is missing: install Debian package $pkg (apt-get install $pkg; scripts/deps.sh holds what the suites need)"
    else
      why="$so (Debian package $pkg) is there but did not load; charon said: $(grep -h "plugin '$p'" "$dir/charon.log" "$dir/charon.stderr" 2>/dev/null | head -n1)"
    fi
    mki_log "charon ($side) lacks plugin $p: $why"
  done
  return $bad
}

# mki_swanctl_conf SIDE KEY=VALUE...: writes $MKI_DIR/SIDE/swanctl.conf from
# strongswan/swanctl.conf.in. Keys (all required, see the template):
# LOCAL_ADDR REMOTE_ADDR LOCAL_ID REMOTE_ID AGGRESSIVE PROPOSALS
# ESP_PROPOSALS LOCAL_TS REMOTE_TS PSK. MKI_SWANCTL_TEMPLATE names another
# template in strongswan/ (swanctl-cert.conf.in: CERT CACERT KEY instead of
# the IDs and PSK).
mki_swanctl_conf () {
  local side=$1; shift
  local sed_args=() kv
  for kv in "$@"; do
    sed_args+=(-e "s|@${kv%%=*}@|${kv#*=}|g")
  done
  sed "${sed_args[@]}" "$MKI_HERE/strongswan/${MKI_SWANCTL_TEMPLATE:-swanctl.conf.in}" > "$MKI_DIR/$side/swanctl.conf"
  if grep -q '@[A-Z_]*@' "$MKI_DIR/$side/swanctl.conf"; then
    mki_fail "unset template keys in $side/swanctl.conf: $(grep -o '@[A-Z_]*@' "$MKI_DIR/$side/swanctl.conf" | sort -u | tr '\n' ' ')"
  fi
}

# Charon in SIDE with a private tmpfs /run (its pid file lives there, so two
# charons never see each other). Its vici socket is $MKI_DIR/SIDE/charon.vici
# (strongswan.conf says so), reachable from any mount namespace: swanctl
# runs with --uri and needs neither the netns nor the private /run.
mki_charon_start () {
  local side=$1 dir=$MKI_DIR/$1 ns
  ns=$(mki_ns "$side")
  [ -f "$dir/strongswan.conf" ] || mki_fail "$dir/strongswan.conf missing"
  rm -f "$dir/charon.vici"
  # ip netns exec, unshare and sh all exec: $! ends up as charon's pid.
  ip netns exec "$ns" unshare -m --propagation private \
    sh -c 'mount -t tmpfs none /run && mkdir -p /run/strongswan &&
           STRONGSWAN_CONF="$1/strongswan.conf" exec "$2"' sh "$dir" "$MKI_CHARON" \
    >"$dir/charon.stderr" 2>&1 &
  local pid=$!
  MKI_PIDS+=("$pid")
  eval "MKI_CHARON_PID_$side=$pid"
  local i
  for i in $(seq 1 100); do
    if [ -S "$dir/charon.vici" ] && mki_swanctl "$side" --stats >/dev/null 2>&1; then
      mki_log "charon ($side) up, pid $pid"
      # A plugin that did not load shows up much later as a refused
      # proposal or a timeout: fail here, naming it.
      mki_charon_check_plugins "$side" ||
        mki_fail "charon ($side) started without plugins this case needs (see above)"
      return 0
    fi
    kill -0 "$pid" 2>/dev/null || break
    sleep 0.1
  done
  cat "$dir/charon.stderr" >&2
  mki_fail "charon ($side) did not open its vici socket $dir/charon.vici"
}

mki_swanctl () {
  local side=$1; shift
  local dir=$MKI_DIR/$side cmd=$1; shift
  STRONGSWAN_CONF=$dir/strongswan.conf "$MKI_SWANCTL" "$cmd" --uri "unix://$dir/charon.vici" "$@"
}

mki_swanctl_load () {
  local side=$1
  [ -f "$MKI_DIR/$side/swanctl.conf" ] || mki_fail "no $MKI_DIR/$side/swanctl.conf to load"
  mki_swanctl "$side" --load-all --file "$MKI_DIR/$side/swanctl.conf" >"$MKI_DIR/$side/load.out" 2>&1 ||
    { cat "$MKI_DIR/$side/load.out" >&2; mki_fail "swanctl --load-all ($side)"; }
}

# modiked in SIDE, logging to $MKI_DIR/SIDE/modiked.log.
mki_modiked_start () {
  local side=$1 cfg=$2 ns dir=$MKI_DIR/$1
  ns=$(mki_ns "$side")
  ip netns exec "$ns" "$MODIKED" -c "$cfg" --foreground >"$dir/modiked.log" 2>&1 &
  local pid=$!
  MKI_PIDS+=("$pid")
  eval "MKI_MODIKED_PID_$side=$pid"
  mki_log "modiked ($side) started, pid $pid"
}

mki_modiked_pid () { eval "echo \${MKI_MODIKED_PID_$1:-}"; }

mki_modiked_alive () {
  local pid
  pid=$(mki_modiked_pid "$1")
  [ -n "$pid" ] && kill -0 "$pid" 2>/dev/null
}

# SIGUSR1, then wait (bounded) for a new status file; prints its path. The
# file may be empty (no SAs); modiked writes it whole (write and rename).
mki_modiked_status () {
  local side=$1 file=$MKI_DIR/$1/modiked.status pid i
  pid=$(mki_modiked_pid "$side")
  # modiked installs its SIGUSR1 handler at the end of its start (after
  # creating adapters and starting the datapath); before that SIGUSR1
  # kills it. So wait (5 s) until the kernel says it catches SIGUSR1.
  for i in $(seq 1 50); do
    mki_catches_usr1 "$pid" && break
    kill -0 "$pid" 2>/dev/null || return 1
    sleep 0.1
  done
  mki_catches_usr1 "$pid" || return 1
  rm -f "$file"
  kill -USR1 "$pid" 2>/dev/null || return 1
  for i in $(seq 1 30); do
    [ -e "$file" ] && { echo "$file"; return 0; }
    sleep 0.1
  done
  return 1
}

# True when process PID has a handler for SIGUSR1 (signal 10: bit 9 of
# SigCgt in /proc/PID/status).
mki_catches_usr1 () {
  local mask
  mask=$(awk '/^SigCgt:/ { print $2 }' "/proc/$1/status" 2>/dev/null)
  [ -n "$mask" ] && (( (16#$mask >> 9) & 1 ))
}

mki_modiked_stop () {
  local side=$1 pid i
  pid=$(mki_modiked_pid "$side")
  [ -n "$pid" ] || return 0
  kill -TERM "$pid" 2>/dev/null || return 0
  for i in $(seq 1 50); do
    kill -0 "$pid" 2>/dev/null || { wait "$pid" 2>/dev/null; return 0; }
    sleep 0.1
  done
  kill -KILL "$pid" 2>/dev/null
  mki_log "modiked ($side) did not stop on SIGTERM"
  return 1
}

# A modiked config (the XML contract of core/policy/schema/modike.rng).
# mki_modiked_conf FILE KEY=VALUE...: keys LISTEN NAME INITIATE LOCAL REMOTE
# LOCAL_ID REMOTE_ID PSK EXCHANGE P1_ENCR P1_HASH P1_GROUP PFS LOCAL_TS
# REMOTE_TS ESP_ENCR ESP_INTEG STATUS LOGLEVEL; P1_FIRST ("encr-hash-group
# ...") and ESP_FIRST ("encr-integ ...") are offered before the main ones.
# AUTH_XML: the peer's <auth> element instead of the PSK one (certificates);
# ID_TYPE: the type of LOCAL_ID and REMOTE_ID (default fqdn).
# For the datapath (all optional; unset, the file is what it always was):
#   PLUGINS="natt esp_user tun"  plugins to load (default natt); the
#                                directory comes from mki_plugin_dir
#   ESP_USER='threads="2"'       attributes of <esp_user/> (written whenever
#                                esp_user is loaded)
#   NATT_FORCE=yes               <natt force-encap="yes"/>
#   ADAPTER=mk0 ADAPTER_ADDR=203.0.113.1/32 ADAPTER_MTU ADAPTER_QUEUES
#   ADAPTER_OFFLOAD              the peer's <adapter/> (only with ADAPTER)
#   P2_LIFE=3600                 the policy's lifetime in seconds
#   SECTIONS_XML='<frag mode="force"/>'  plugin sections, written as given
#   PEER_XML='<option name="natt.keepalive" value="20"/>'  more in <peer>
mki_modiked_conf () {
  local file=$1; shift
  local kv
  local LISTEN="" NAME=peer INITIATE=no LOCAL="" REMOTE="" LOCAL_ID="" REMOTE_ID="" PSK=testpsk
  local EXCHANGE=main P1_ENCR=aes128 P1_HASH=sha256 P1_GROUP=modp2048 PFS=none
  local LOCAL_TS="" REMOTE_TS="" ESP_ENCR=aes128 ESP_INTEG=sha256 STATUS="" LOGLEVEL=debug
  local P1_FIRST="" ESP_FIRST="" p e h g AUTH_XML="" ID_TYPE=fqdn
  local PLUGINS=natt ESP_USER="" NATT_FORCE="" P2_LIFE=3600 SECTIONS_XML="" PEER_XML=""
  local ADAPTER="" ADAPTER_ADDR="" ADAPTER_MTU=1400 ADAPTER_QUEUES=1 ADAPTER_OFFLOAD=yes
  for kv in "$@"; do local "$kv"; done
  local plugin_dir=$MODIKE_PLUGIN_DIR
  # Only natt from one directory: as before (fake-modiked.sh passes a
  # directory that does not exist).
  if [ "$PLUGINS" != natt ] || [ "${MODIKE_PLUGIN_DIR#*:}" != "$MODIKE_PLUGIN_DIR" ]; then
    # shellcheck disable=SC2086  # PLUGINS is a word list
    mki_plugin_dir "$(dirname "$file")/plugins" $PLUGINS
    plugin_dir=$MKI_PLUGIN_DIR_OUT
  fi
  {
    echo '<?xml version="1.0"?>'
    echo '<modike>'
    echo '  <daemon>'
    [ -n "$LISTEN" ] && echo "    <listen address=\"$LISTEN\"/>"
    echo "    <plugins dir=\"$plugin_dir\">"
    for p in $PLUGINS; do
      echo "      <plugin name=\"$p\"/>"
    done
    echo '    </plugins>'
    echo "    <log level=\"$LOGLEVEL\"/>"
    echo "    <status file=\"$STATUS\"/>"
    echo '  </daemon>'
    [ "$NATT_FORCE" = yes ] && echo '  <natt force-encap="yes"/>'
    [ -n "$SECTIONS_XML" ] && echo "  $SECTIONS_XML"
    case " $PLUGINS " in *" esp_user "*) echo "  <esp_user${ESP_USER:+ $ESP_USER}/>" ;; esac
    echo "  <peer name=\"$NAME\" initiate=\"$INITIATE\">"
    [ -n "$LOCAL" ] && echo "    <local address=\"$LOCAL\"/>"
    [ -n "$REMOTE" ] && echo "    <remote address=\"$REMOTE\"/>"
    [ -n "$LOCAL_ID" ] && echo "    <local-id type=\"$ID_TYPE\" value=\"$LOCAL_ID\"/>"
    [ -n "$REMOTE_ID" ] && echo "    <remote-id type=\"$ID_TYPE\" value=\"$REMOTE_ID\"/>"
    if [ -n "$AUTH_XML" ]; then echo "    $AUTH_XML"; else echo "    <auth method=\"psk\" secret=\"$PSK\"/>"; fi
    echo "    <phase1 exchange=\"$EXCHANGE\" lifetime=\"28800\">"
    for p in $P1_FIRST; do
      IFS=- read -r e h g <<<"$p"
      echo "      <proposal encryption=\"$e\" hash=\"$h\" group=\"$g\"/>"
    done
    echo "      <proposal encryption=\"$P1_ENCR\" hash=\"$P1_HASH\" group=\"$P1_GROUP\"/>"
    echo '    </phase1>'
    echo '    <retransmit interval="1000" tries="5" half-open="30"/>'
    [ -n "$PEER_XML" ] && echo "    $PEER_XML"
    if [ -n "$ADAPTER" ]; then
      echo "    <adapter name=\"$ADAPTER\"${ADAPTER_ADDR:+ address=\"$ADAPTER_ADDR\"} mtu=\"$ADAPTER_MTU\" queues=\"$ADAPTER_QUEUES\" offload=\"$ADAPTER_OFFLOAD\"/>"
    fi
    echo '  </peer>'
    echo "  <policy name=\"net\" peer=\"$NAME\" action=\"protect\" mode=\"tunnel\""
    echo "          local=\"$LOCAL_TS\" remote=\"$REMOTE_TS\" pfs=\"$PFS\" lifetime=\"$P2_LIFE\">"
    for p in $ESP_FIRST; do
      IFS=- read -r e h <<<"$p"
      echo "    <proposal encryption=\"$e\" integrity=\"$h\"/>"
    done
    if [ -n "$ESP_INTEG" ]; then
      echo "    <proposal encryption=\"$ESP_ENCR\" integrity=\"$ESP_INTEG\"/>"
    else
      echo "    <proposal encryption=\"$ESP_ENCR\"/>"
    fi
    echo '  </policy>'
    echo '</modike>'
  } > "$file"
}

# mki_site_split CFG SITE SOCK: moves CFG's peer and policy (initiate
# "no": `modike connect` starts them) into the site file SITE, for `modike
# connect`, and gives the daemon config a <control socket=SOCK> instead.
mki_site_split () {
  python3 - "$1" "$2" "$3" <<'PY'
import re, sys
cfg, site, sock = sys.argv[1:4]
text = open(cfg).read()
m = re.search(r"(  <peer .*</policy>\n)", text, re.S)
open(site, "w").write('<?xml version="1.0"?>\n<modike>\n' + m.group(1).replace('initiate="yes"', 'initiate="no"')
                      + "</modike>\n")
open(cfg, "w").write(text.replace(m.group(1), '  <control socket="%s"/>\n' % sock))
PY
}

# mki_plugin_dir DEST NAME...: sets MKI_PLUGIN_DIR_OUT to a directory that
# holds NAME.so for every NAME (modiked takes one plugin directory; meson
# builds each plugin in its own). MODIKE_PLUGIN_DIR is a ':'-separated list
# of directories; each NAME.so is looked up in every entry, in its NAME/
# subdirectory and in its sibling NAME/ (so the natt build directory alone,
# as the older cases pass it, finds plugins/esp_user/esp_user.so too). One
# entry holding them all is used as it is; otherwise DEST gets symlinks.
# A plugin not found fails the caller (a missing prerequisite).
mki_plugin_dir () {
  local dest=$1; shift
  local name d f found all_in="" entries=()
  IFS=: read -r -a entries <<<"$MODIKE_PLUGIN_DIR"
  for d in "${entries[@]}"; do
    [ -n "$d" ] || continue
    all_in=$d
    for name in "$@"; do [ -f "$d/$name.so" ] || { all_in=""; break; }; done
    [ -n "$all_in" ] && { MKI_PLUGIN_DIR_OUT=$all_in; return 0; }
  done
  mkdir -p "$dest" || mki_fail "cannot create $dest"
  for name in "$@"; do
    found=""
    for d in "${entries[@]}"; do
      [ -n "$d" ] || continue
      for f in "$d/$name.so" "$d/$name/$name.so" "$(dirname "$d")/$name/$name.so"; do
        [ -f "$f" ] && { found=$(cd "$(dirname "$f")" && pwd)/$name.so; break 2; }
      done
    done
    [ -n "$found" ] || mki_fail "missing prerequisite: plugin $name.so not found under MODIKE_PLUGIN_DIR=$MODIKE_PLUGIN_DIR (build it: ninja -C <build> plugins/$name/$name.so)"
    ln -sf "$found" "$dest/$name.so"
  done
  MKI_PLUGIN_DIR_OUT=$dest
}

# Packet capture on the gw end of the veth (all of IKE passes there).
mki_capture_start () {
  local file=$1
  command -v dumpcap >/dev/null 2>&1 || mki_fail "missing prerequisite: dumpcap (tshark)"
  ip netns exec "$MKI_NS_GW" dumpcap -q -i veth0 -f udp -w "$file" >"$MKI_DIR/dumpcap.log" 2>&1 &
  MKI_CAPTURE_PID=$!
  MKI_PIDS+=("$MKI_CAPTURE_PID")
  for _ in $(seq 1 50); do
    grep -q 'Capturing on' "$MKI_DIR/dumpcap.log" 2>/dev/null && return 0
    sleep 0.1
  done
  cat "$MKI_DIR/dumpcap.log" >&2
  mki_fail "dumpcap did not start"
}

mki_capture_stop () {
  [ -n "${MKI_CAPTURE_PID:-}" ] || return 0
  kill -INT "$MKI_CAPTURE_PID" 2>/dev/null
  wait "$MKI_CAPTURE_PID" 2>/dev/null || true
  MKI_CAPTURE_PID=
}

# --- swanctl --list-sas --raw parsing --------------------------------------
# The raw form is one vici message per line: "list-sa event {conn {k=v ...
# child-sas {name {k=v ...}}}}". mki_sa_field LINE KEY prints the first
# value of KEY (IKE-level keys come before child-sas in the message).
mki_sas_raw () { mki_swanctl "$1" --list-sas --raw --noblock 2>/dev/null | grep 'list-sa event'; }

mki_raw_field () {
  printf '%s\n' "$1" | grep -o "[{ ]$2=[^ }]*" | head -n1 | sed "s/^.$2=//"
}

# The part of a raw line after "child-sas {" (the first child).
mki_raw_child () { printf '%s\n' "$1" | sed -n 's/.*child-sas {//p'; }
mki_raw_ike () { printf '%s\n' "$1" | sed 's/child-sas {.*//'; }

# charon's algorithm names -> the config schema's names.
mki_encr_name () { # ALG KEYSIZE
  case $1 in AES_CBC) echo "aes$2" ;; 3DES_CBC) echo 3des ;;
    AES_GCM_16) echo "aes${2}gcm16" ;; *) echo "?$1" ;; esac
}
mki_hash_name () {
  case $1 in *MD5*) echo md5 ;; *SHA1*) echo sha1 ;; *SHA2_256*) echo sha256 ;;
    *SHA2_384*) echo sha384 ;; *SHA2_512*) echo sha512 ;; "") echo "" ;; *) echo "?$1" ;; esac
}
mki_group_name () {
  case $1 in MODP_*) echo "modp${1#MODP_}" ;; ECP_256) echo ecp256 ;; ECP_384) echo ecp384 ;;
    CURVE_25519) echo curve25519 ;; "") echo none ;; *) echo "?$1" ;; esac
}

# Waits (bounded, seconds) until CMD succeeds; CMD is run with eval.
mki_poll () {
  local secs=$1; shift
  local end=$((SECONDS + secs))
  while [ $SECONDS -lt $end ]; do
    eval "$*" && return 0
    sleep 0.5
  done
  return 1
}

# True when charon in gw has an ESTABLISHED IKE SA with an INSTALLED child
# and modiked in cl (alive) an ESTABLISHED IKE SA with an ESP SA. Sets
# MKI_RAW (charon's raw SA line) and MKI_ST (modiked's status file).
mki_charon_modiked_up () {
  MKI_RAW=$(mki_sas_raw gw) MKI_ST=""
  [ "$(mki_raw_field "$MKI_RAW" state)" = ESTABLISHED ] || return 1
  [ "$(mki_raw_field "$(mki_raw_child "$MKI_RAW")" state)" = INSTALLED ] || return 1
  MKI_ST=$(mki_modiked_status cl) || return 1
  grep -Eq '^IKE [^ ]+ ESTABLISHED ' "$MKI_ST" && grep -Eq '^ +ESP ' "$MKI_ST"
}

# For failure output: the tails of every log of the case.
mki_dump_logs () {
  local f
  for f in "$MKI_DIR"/gw/charon.log "$MKI_DIR"/cl/charon.log \
           "$MKI_DIR"/gw/charon.stderr "$MKI_DIR"/cl/charon.stderr \
           "$MKI_DIR"/gw/modiked.log "$MKI_DIR"/cl/modiked.log \
           "$MKI_DIR"/gw/modiked.status "$MKI_DIR"/cl/modiked.status; do
    [ -s "$f" ] || continue
    echo "----- ${f#"$MKI_DIR"/} (last 60 lines, vici chatter left out) -----" >&2
    grep -v '\[CFG\] vici client' "$f" | tail -n 60 >&2
  done
}

# ---- Two modiked instances (the demo and the daemon suite) ----

# mki_pair_conf KEY=VALUE...: writes gw/modiked.xml (responder 192.0.2.1)
# and cl/modiked.xml (initiator 192.0.2.2) protecting the nets behind them;
# extra keys go to mki_modiked_conf (EXCHANGE, PFS, ESP_ENCR, ...).
# OUTER=6: IKE and ESP between the IPv6 addresses of the veth.
# DATAPATH=yes: both load natt, esp_user and tun and get an adapter mk0
# holding their own inner host (gw 198.51.100.1/32, cl 203.0.113.1/32);
# take that address off lo with mki_drop_lo_host.
mki_pair_conf () {
  local side me peer myid peerid name initiate lnet rnet host kv datapath=no extra=() dp=() outer=4
  for kv in "$@"; do
    case $kv in
      DATAPATH=yes) datapath=yes ;;
      OUTER=6) outer=6 ;;   # IKE and ESP over the IPv6 veth addresses
      *) extra+=("$kv") ;;
    esac
  done
  for side in gw cl; do
    if [ $side = gw ]; then
      me=$MKI_GW_V4 peer=$MKI_CL_V4 myid=gw peerid=client name=client initiate=no
      [ $outer = 6 ] && me=$MKI_GW_V6 peer=$MKI_CL_V6
      lnet=$MKI_GW_NET rnet=$MKI_CL_NET host=$MKI_GW_HOST
    else
      me=$MKI_CL_V4 peer=$MKI_GW_V4 myid=client peerid=gw name=gw initiate=yes
      [ $outer = 6 ] && me=$MKI_CL_V6 peer=$MKI_GW_V6
      lnet=$MKI_CL_NET rnet=$MKI_GW_NET host=$MKI_CL_HOST
    fi
    dp=()
    [ $datapath = yes ] && dp=(PLUGINS="natt esp_user tun" ADAPTER=mk0 ADAPTER_ADDR="$host/32")
    mki_modiked_conf "$MKI_DIR/$side/modiked.xml" LISTEN="$me" NAME=$name INITIATE=$initiate \
      LOCAL="$me" REMOTE="$peer" LOCAL_ID=$myid REMOTE_ID=$peerid PSK=demo-secret \
      EXCHANGE=main P1_ENCR=aes128 P1_HASH=sha256 P1_GROUP=modp2048 PFS=modp2048 \
      LOCAL_TS=$lnet REMOTE_TS=$rnet ESP_ENCR=aes128 ESP_INTEG=sha256 \
      STATUS="$MKI_DIR/$side/modiked.status" LOGLEVEL=info "${dp[@]}" "${extra[@]}"
  done
}

# Starts gw, waits until it listens, starts cl. Returns 1 if gw died.
mki_pair_start () {
  mki_modiked_start gw "$MKI_DIR/gw/modiked.xml"
  for _ in $(seq 1 50); do
    ip netns exec "$MKI_NS_GW" ss -Hlun 'sport = :500' | grep -q . && break
    mki_modiked_alive gw || break
    sleep 0.1
  done
  mki_modiked_alive gw || return 1
  mki_modiked_start cl "$MKI_DIR/cl/modiked.xml"
}

# True when both status files show an established IKE SA and an ESP SA.
mki_pair_up () {
  local side st
  for side in gw cl; do
    mki_modiked_alive $side || return 1
    st=$(mki_modiked_status $side) || return 1
    grep -Eq '^IKE [^ ]+ ESTABLISHED ' "$st" && grep -Eq '^ +ESP ' "$st" || return 1
  done
}

# mki_status_field LINE KEY: the value of " KEY=value" in a status line.
mki_status_field () { printf '%s\n' "$1" | grep -o " $2=[^ ]*" | head -n1 | cut -d= -f2; }

# Fails unless gw and cl show the same cookies and crosswise SPIs.
mki_pair_agree () {
  local g_ike c_ike g_esp c_esp
  g_ike=$(grep -E '^IKE ' "$MKI_DIR/gw/modiked.status" | head -n1)
  c_ike=$(grep -E '^IKE ' "$MKI_DIR/cl/modiked.status" | head -n1)
  g_esp=$(grep -E '^ +ESP ' "$MKI_DIR/gw/modiked.status" | head -n1)
  c_esp=$(grep -E '^ +ESP ' "$MKI_DIR/cl/modiked.status" | head -n1)
  [ "$(mki_status_field "$g_ike" i)" = "$(mki_status_field "$c_ike" i)" ] &&
    [ "$(mki_status_field "$g_ike" r)" = "$(mki_status_field "$c_ike" r)" ] || return 1
  [ "$(mki_status_field "$g_esp" in)" = "$(mki_status_field "$c_esp" out)" ] &&
    [ "$(mki_status_field "$g_esp" out)" = "$(mki_status_field "$c_esp" in)" ]
}

# ---- Traffic (issue 4: the datapath) ----
# Inside the tunnel the hosts are gw 198.51.100.1 and cl 203.0.113.1 (the
# first hosts of the protected nets). With modiked's datapath they live on
# its adapter; with charon's kernel-libipsec on lo, and a route sends the
# far net into charon's TUN device ipsec0 (the template sets
# install_routes = no).

mki_host () { if [ "$1" = gw ]; then echo "$MKI_GW_HOST"; else echo "$MKI_CL_HOST"; fi; }
mki_far_host () { if [ "$1" = gw ]; then echo "$MKI_CL_HOST"; else echo "$MKI_GW_HOST"; fi; }
mki_far_net () { if [ "$1" = gw ]; then echo "$MKI_CL_NET"; else echo "$MKI_GW_NET"; fi; }

# The inner host's /32 off lo in SIDE: the adapter that modiked creates
# holds it (and must, for the test to mean anything).
mki_drop_lo_host () {
  ip -n "$(mki_ns "$1")" addr del "$(mki_host "$1")/32" dev lo 2>/dev/null || true
}

# Waits (5 s) for charon's ipsec0 in SIDE and routes the far net into it,
# source address the inner host on lo.
mki_libipsec_route () {
  local side=$1 ns i
  ns=$(mki_ns "$side")
  for i in $(seq 1 50); do
    ip -n "$ns" link show ipsec0 >/dev/null 2>&1 && break
    sleep 0.1
  done
  ip -n "$ns" route replace "$(mki_far_net "$side")" dev ipsec0 src "$(mki_host "$side")" ||
    mki_fail "no ipsec0 (kernel-libipsec) in $side to route $(mki_far_net "$side") into"
}

# mki_ping SIDE COUNT [PING ARGS...]: from SIDE's inner host to the far
# one; output in $MKI_DIR/SIDE/ping.out (and on stderr); sets MKI_PING_TX,
# MKI_PING_RX and MKI_PING_SUMMARY (the two summary lines). Returns ping's
# status (0: at least one reply).
mki_ping () {
  local side=$1 count=$2 out=$MKI_DIR/$1/ping.out rc from=${MKI_PING_FROM:-}; shift 2
  [ -n "$from" ] || from=$(mki_host "$side")
  ip netns exec "$(mki_ns "$side")" ping -n -c "$count" -I "$from" "$@" \
    "$(mki_far_host "$side")" >"$out" 2>&1
  rc=$?
  sed 's/^/    /' "$out" >&2
  MKI_PING_SUMMARY=$(grep -A1 'packets transmitted' "$out")
  MKI_PING_TX=$(grep -o '^[0-9]* packets transmitted' "$out" | cut -d' ' -f1)
  MKI_PING_RX=$(grep -o '[0-9]* received' "$out" | cut -d' ' -f1)
  MKI_PING_TX=${MKI_PING_TX:-0} MKI_PING_RX=${MKI_PING_RX:-0}
  return $rc
}

# mki_make_data FILE MBYTES: random data for a transfer (new every run).
mki_make_data () {
  head -c "$(($2 * 1024 * 1024))" /dev/urandom > "$1" || mki_fail "cannot write $1"
}

# mki_transfer_start FROM TO FILE [RATE_BYTES_PER_S] [TIMEOUT_S] [PORT]:
# a receiver on TO's inner host, then a sender from FROM's inner host, both
# python3 (xfer.py), in the background. mki_transfer_wait checks the result.
mki_transfer_start () {
  local from=$1 to=$2 file=$3 rate=${4:-0} tmo=${5:-60} port=${6:-5001} i
  MKI_XFER_TAG=$MKI_DIR/xfer-$from-$to-$port
  MKI_XFER_FILE=$file MKI_XFER_FROM=$from MKI_XFER_TO=$to
  rm -f "$MKI_XFER_TAG".*
  ip netns exec "$(mki_ns "$to")" python3 "$MKI_HERE/xfer.py" recv --bind "$(mki_host "$to")" \
    --port "$port" --ready "$MKI_XFER_TAG.ready" --timeout "$tmo" \
    >"$MKI_XFER_TAG.recv" 2>"$MKI_XFER_TAG.recv.err" &
  MKI_XFER_RECV_PID=$!
  MKI_PIDS+=("$MKI_XFER_RECV_PID")
  for i in $(seq 1 50); do
    [ -e "$MKI_XFER_TAG.ready" ] && break
    kill -0 "$MKI_XFER_RECV_PID" 2>/dev/null || break
    sleep 0.1
  done
  [ -e "$MKI_XFER_TAG.ready" ] ||
    { cat "$MKI_XFER_TAG.recv.err" >&2; mki_log "the receiver in $to did not start"; return 1; }
  ip netns exec "$(mki_ns "$from")" python3 "$MKI_HERE/xfer.py" send --src "$(mki_host "$from")" \
    --dst "$(mki_host "$to")" --port "$port" --file "$file" --rate "$rate" --timeout "$tmo" \
    >"$MKI_XFER_TAG.send" 2>"$MKI_XFER_TAG.send.err" &
  MKI_XFER_SEND_PID=$!
  MKI_PIDS+=("$MKI_XFER_SEND_PID")
  MKI_XFER_T0=$SECONDS
}

mki_transfer_running () { kill -0 "$MKI_XFER_SEND_PID" 2>/dev/null; }

# Waits for both ends; 0 when the receiver read exactly FILE (size and
# SHA-256). Sets MKI_XFER_RESULT (a line for the log).
mki_transfer_wait () {
  local s_rc r_rc want size got_sum got_len secs gap mbit
  wait "$MKI_XFER_SEND_PID"; s_rc=$?
  wait "$MKI_XFER_RECV_PID"; r_rc=$?
  want=$(sha256sum "$MKI_XFER_FILE" | cut -d' ' -f1)
  size=$(stat -c %s "$MKI_XFER_FILE")
  read -r got_sum got_len secs gap < "$MKI_XFER_TAG.recv" 2>/dev/null
  if [ $s_rc != 0 ] || [ $r_rc != 0 ]; then
    cat "$MKI_XFER_TAG.send.err" "$MKI_XFER_TAG.recv.err" >&2
    MKI_XFER_RESULT="$MKI_XFER_FROM->$MKI_XFER_TO: sender status $s_rc, receiver status $r_rc"
    return 1
  fi
  if [ "$got_sum" != "$want" ] || [ "$got_len" != "$size" ]; then
    MKI_XFER_RESULT="$MKI_XFER_FROM->$MKI_XFER_TO: received $got_len bytes sha256 $got_sum, sent $size bytes sha256 $want"
    return 1
  fi
  mbit=$(awk -v b="$size" -v s="$secs" 'BEGIN { if (s > 0) printf "%.1f", b * 8 / s / 1e6; else print "?" }')
  MKI_XFER_RESULT="$MKI_XFER_FROM->$MKI_XFER_TO: $size bytes in $secs s ($mbit Mbit/s, longest stall $gap s), sha256 $want matches"
  return 0
}

mki_transfer () {
  mki_transfer_start "$@" || return 1
  mki_transfer_wait
}

# mki_esp_counters LINE: the counters modiked appends to an ESP status line
# ("packets=<in>/<out> bytes=<in>/<out> drops=<n>") into MKI_PKT_IN,
# MKI_PKT_OUT, MKI_BYTES_IN, MKI_BYTES_OUT, MKI_DROPS. 1 if absent.
mki_esp_counters () {
  local p b d
  p=$(mki_status_field "$1" packets) b=$(mki_status_field "$1" bytes) d=$(mki_status_field "$1" drops)
  [ -n "$p" ] && [ -n "$b" ] && [ -n "$d" ] || return 1
  MKI_PKT_IN=${p%/*} MKI_PKT_OUT=${p#*/} MKI_BYTES_IN=${b%/*} MKI_BYTES_OUT=${b#*/} MKI_DROPS=$d
}

# mki_iperf3 FROM TO SECONDS [IPERF ARGS...]: iperf3 TCP from FROM's inner
# host to TO's (a one-shot server there); prints the receiver's Mbit/s.
# FROM/TO "gw-veth"/"cl-veth": the veth addresses instead (no tunnel).
mki_iperf3 () {
  local from=$1 to=$2 secs=$3 src dst i out; shift 3
  case $from in *-veth) src=$([ "${from%-veth}" = gw ] && echo "$MKI_GW_V4" || echo "$MKI_CL_V4") ;;
    *) src=$(mki_host "$from") ;; esac
  case $to in *-veth) dst=$([ "${to%-veth}" = gw ] && echo "$MKI_GW_V4" || echo "$MKI_CL_V4") ;;
    *) dst=$(mki_host "$to") ;; esac
  local server rc
  out=$MKI_DIR/iperf3-$from-$to
  ip netns exec "$(mki_ns "${to%-veth}")" iperf3 -s -1 -B "$dst" -p 5201 >"$out.server" 2>&1 &
  server=$!
  MKI_PIDS+=("$server")   # (lost when called in $(...): hence the kill below)
  for i in $(seq 1 50); do
    ip netns exec "$(mki_ns "${to%-veth}")" ss -Hltn 'sport = :5201' 2>/dev/null | grep -q . && break
    sleep 0.1
  done
  timeout $((secs + 30)) ip netns exec "$(mki_ns "${from%-veth}")" iperf3 -c "$dst" -B "$src" -p 5201 \
    -t "$secs" -J "$@" >"$out.json" 2>"$out.err"
  rc=$?
  kill "$server" 2>/dev/null; wait "$server" 2>/dev/null
  [ $rc = 0 ] || { cat "$out.err" "$out.json" >&2; return 1; }
  python3 -c '
import json, sys
d = json.load(open(sys.argv[1]))
if "error" in d:
    sys.exit("iperf3: " + d["error"])
print("%.1f" % (d["end"]["sum_received"]["bits_per_second"] / 1e6))' "$out.json"
}
