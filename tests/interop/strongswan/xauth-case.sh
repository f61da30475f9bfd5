#!/bin/bash
# Extended authentication (plugins/xauth) against charon's xauth-generic.
# modiked runs in cl (192.0.2.2, adapter mk0 with 203.0.113.1/32, plugins
# natt esp_user tun xauth), charon in gw (192.0.2.1, 198.51.100.1 on lo).
#
# usage: xauth-case.sh CASE
#   xauth-client: charon is the gateway (remote { auth = psk } plus
#       remote-xauth { auth = xauth }, no pools) and asks modiked, the
#       phase 1 initiator with <auth method="xauth-psk">, for user name and
#       password; modiked answers as alice from its password-file, gets
#       XAUTH_STATUS OK, then (and only then) runs Quick Mode: ping
#       198.51.100.1 through the tunnel.
#   xauth-client-wrong-password: the same with a wrong password: modiked's
#       log says "extended authentication failed for user 'alice'"; no ESP
#       SA on either side and no IKE SA left in modiked.
#   xauth-gateway-wrong-password: charon answers with a wrong password:
#       modiked asks 3 times (retries), then sends XAUTH_STATUS FAIL and logs
#       "extended authentication failed for user 'alice' (3 tries)"; no SA
#       left in modiked, no child in charon.
#   xauth-gateway: roles swapped: modiked in gw is the gateway checking a
#       users file (PBKDF2 hash made with modike-xauth-passwd), charon in cl
#       the client (local-xauth { auth = xauth xauth_id = alice }); charon
#       initiates; ping from cl through the tunnel.
#   xauth-prompt: as xauth-client, but modiked has a <control> socket and
#       no credentials: `modike connect SITE` runs on a pseudo-terminal
#       (pty-connect.py), the user name and password are typed at its
#       prompts (no MODIKE_* variables); ping through the tunnel, `modike
#       status` shows the SAs, Ctrl-C on the terminal disconnects: exit 0,
#       no SA left on either side.
#   xauth-prompt-wrong-password: a wrong password typed at the prompt:
#       `modike connect` exits 4 saying authentication failed; no SA left.
# Environment: MODIKED, MODIKE (the client, xauth-prompt only), MODIKE_PLUGIN_DIR (':'-separated directories of
# natt.so, esp_user.so, tun.so, xauth.so), MODIKE_XAUTH_PASSWD (the
# modike-xauth-passwd tool, xauth-gateway only).
#   xauth-gateway-pam: as xauth-gateway with <xauth pam-service=...>: a
#       throwaway system user with password alicepw and
#       /etc/pam.d/modike-xauth-ia-<pid> (pam_unix), both removed on exit;
#       modiked checks the login through PAM.
#   hybrid-client: hybrid authentication (HybridInitRSA): charon is the
#       gateway with the "gw" certificate of tests/vectors/certs (local {
#       auth = pubkey }, remote { auth = xauth }: one round, the client has
#       no certificate); modiked, <auth method="hybrid-rsa"> with only
#       trust anchors (<ca>: root and intermediate, as charon sends just its
#       own certificate), checks charon's certificate and DN, then answers
#       XAuth as in xauth-client; ping through the tunnel.
#   hybrid-client-am: as hybrid-client in Aggressive Mode (charon
#       aggressive = yes).
#   hybrid-gateway: roles swapped: modiked in gw is the hybrid gateway
#       (cert and key, users file), charon in cl the client (local { auth =
#       xauth }, remote { auth = pubkey }) initiates; ping from cl.
set -u
HERE=$(cd "$(dirname "$0")" && pwd)
# shellcheck source=../lib.sh
. "$HERE/../lib.sh"

CASE=${1:-}
XUSER=alice PAM=
WAIT=${MKI_WAIT:-30}
PASSWORD=alicepw SIDE_M=cl SIDE_C=gw PROMPT= HYBRID= EXCHANGE=main
CERTS=$HERE/../../vectors/certs
case $CASE in
  xauth-client) ;;
  xauth-prompt) PROMPT=yes ;;
  xauth-prompt-wrong-password) PROMPT=yes PASSWORD=wrongpw ;;
  xauth-client-wrong-password) PASSWORD=wrongpw ;;
  xauth-gateway) SIDE_M=gw SIDE_C=cl ;;
  xauth-gateway-wrong-password) SIDE_M=gw SIDE_C=cl PASSWORD=wrongpw ;;
  xauth-gateway-pam) SIDE_M=gw SIDE_C=cl PAM=modike-xauth-ia-$$ XUSER=mkxi$$ ;;
  hybrid-client) HYBRID=yes ;;
  hybrid-client-am) HYBRID=yes EXCHANGE=aggressive ;;
  hybrid-gateway) HYBRID=yes SIDE_M=gw SIDE_C=cl ;;
  *) echo "usage: $0 CASE (see the head of this file)" >&2; exit 2 ;;
esac
MKI_CASE=$CASE
mki_require_prereqs charon modiked traffic
mki_setup "$CASE"
if [ -n "$PAM" ]; then
  # The user and service file go on exit, before the namespaces do.
  pam_cleanup () {
    userdel "$XUSER" 2>/dev/null
    rm -f "/etc/pam.d/$PAM"
  }
  trap 'rc=$?; pam_cleanup; (exit $rc); mki_cleanup' EXIT
fi

fail () {
  mki_log "FAIL: $*"
  echo "----- charon ($SIDE_C) swanctl --list-sas -----" >&2
  mki_swanctl "$SIDE_C" --list-sas --noblock >&2 2>&1 || true
  mki_modiked_alive "$SIDE_M" && mki_modiked_status "$SIDE_M" >/dev/null
  mki_dump_logs
  exit 1
}

# --- charon ------------------------------------------------------------------
if [ "$SIDE_C" = gw ]; then
  c_local=$MKI_GW_V4 c_remote=$MKI_CL_V4 c_lts=$MKI_GW_NET c_rts=$MKI_CL_NET
  c_auth="    local {
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
  c_secret="  xauth-1 {
    id = $XUSER
    secret = \"alicepw\"
  }"
else
  c_local=$MKI_CL_V4 c_remote=$MKI_GW_V4 c_lts=$MKI_CL_NET c_rts=$MKI_GW_NET
  c_auth="    local {
      auth = psk
      id = client
    }
    local-xauth {
      auth = xauth
      xauth_id = $XUSER
    }
    remote {
      auth = psk
      id = gw
    }"
  c_secret="  xauth-1 {
    id = $XUSER
    secret = \"$PASSWORD\"
  }"
fi
if [ -n "$HYBRID" ]; then
  # The gateway proves itself with its certificate; the client has only
  # trust anchors and authenticates with XAuth (one round each).
  if [ "$SIDE_C" = gw ]; then
    install -m 0700 -d "$MKI_DIR/gw/private"
    install -m 0600 "$CERTS/gw.key" "$MKI_DIR/gw/private/gw.key"
    c_auth="    send_cert = always
    local {
      auth = pubkey
      certs = $CERTS/gw-chain.pem
    }
    remote {
      auth = xauth
    }"
  else
    c_auth="    send_certreq = yes
    local {
      auth = xauth
      xauth_id = $XUSER
    }
    remote {
      auth = pubkey
      id = \"O=modike, CN=gw\"
      cacerts = $CERTS/ca.pem
    }"
  fi
fi
cat >"$MKI_DIR/$SIDE_C/swanctl.conf" <<EOF
connections {
  rw {
    version = 1
    local_addrs = $c_local
    remote_addrs = $c_remote
    proposals = aes128-sha256-modp2048
    rekey_time = 0
    dpd_delay = 0
    aggressive = $([ "$EXCHANGE" = aggressive ] && echo yes || echo no)
$c_auth
    children {
      net {
        mode = tunnel
        local_ts = $c_lts
        remote_ts = $c_rts
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
$c_secret
}
EOF
mki_strongswan_conf "$SIDE_C" "" xauth-generic ${HYBRID:+revocation constraints}
mki_charon_start "$SIDE_C"
mki_swanctl_load "$SIDE_C"
mki_libipsec_route "$SIDE_C"

# --- modiked -------------------------------------------------------------------
mki_drop_lo_host "$SIDE_M"
CFG=$MKI_DIR/$SIDE_M/modiked.xml
if [ "$SIDE_M" = cl ]; then
  printf '%s\n' "$PASSWORD" >"$MKI_DIR/cl/password"
  chmod 600 "$MKI_DIR/cl/password"
  m_addr=$MKI_CL_V4 m_far=$MKI_GW_V4 m_name=gw m_init=yes m_id=client m_rid=gw
  m_lts=$MKI_CL_NET m_rts=$MKI_GW_NET m_host=$MKI_CL_HOST
  section="  <xauth timeout=\"20\"><credentials peer=\"gw\" user=\"alice\" password-file=\"$MKI_DIR/cl/password\"/></xauth>"
  [ -n "$PROMPT" ] && section="  <xauth timeout=\"20\"/>"
else
  [ -x "${MODIKE_XAUTH_PASSWD:-}" ] || fail "MODIKE_XAUTH_PASSWD (modike-xauth-passwd) is not set or not executable"
  printf 'alicepw\n' | "$MODIKE_XAUTH_PASSWD" alice >"$MKI_DIR/gw/users" || fail "modike-xauth-passwd failed"
  grep -q '^alice:pbkdf2-sha256:' "$MKI_DIR/gw/users" || fail "users file: $(cat "$MKI_DIR/gw/users")"
  grep -q alicepw "$MKI_DIR/gw/users" && fail "the users file holds the password in plaintext"
  m_addr=$MKI_GW_V4 m_far=$MKI_CL_V4 m_name=cl m_init=no m_id=gw m_rid=client
  m_lts=$MKI_GW_NET m_rts=$MKI_CL_NET m_host=$MKI_GW_HOST
  section="  <xauth users-file=\"$MKI_DIR/gw/users\" timeout=\"20\"/>"
  if [ -n "$PAM" ]; then
    useradd -M -N -d /nonexistent -s /usr/sbin/nologin "$XUSER" || fail "useradd $XUSER failed"
    printf '%s:alicepw\n' "$XUSER" | chpasswd || fail "chpasswd failed"
    printf 'auth required pam_unix.so\naccount required pam_unix.so\n' >"/etc/pam.d/$PAM" ||
      fail "cannot write /etc/pam.d/$PAM"
    section="  <xauth pam-service=\"$PAM\" timeout=\"20\"/>"
  fi
fi
METHOD=xauth-psk m_auth="" m_idtype=fqdn
if [ -n "$HYBRID" ]; then
  # The gateway: its certificate's subject, any client; the client: only
  # the root as trust anchor, and it wants the gateway's DN.
  METHOD=hybrid-rsa m_idtype=dn m_id=""
  if [ "$SIDE_M" = gw ]; then
    install -m 0600 "$CERTS/gw.key" "$MKI_DIR/gw/gw.key"
    m_rid="" m_auth="<auth method=\"$METHOD\" cert=\"$CERTS/gw-chain.pem\" key=\"$MKI_DIR/gw/gw.key\"/>"
  else
    # charon sends only its own certificate here (no intermediate): the
    # trust anchors are a directory with the root and the intermediate.
    mkdir -p "$MKI_DIR/cl/ca.d" && cp "$CERTS/ca.pem" "$CERTS/int.pem" "$MKI_DIR/cl/ca.d/"
    m_rid="CN=gw,O=modike" m_auth="<auth method=\"$METHOD\"><ca path=\"$MKI_DIR/cl/ca.d\"/></auth>"
  fi
fi
mki_modiked_conf "$CFG" LISTEN="$m_addr" NAME=$m_name INITIATE=$m_init \
  LOCAL="$m_addr" REMOTE="$m_far" LOCAL_ID=$m_id REMOTE_ID=$m_rid PSK=testpsk \
  ID_TYPE=$m_idtype AUTH_XML="$m_auth" \
  EXCHANGE=$EXCHANGE LOCAL_TS="$m_lts" REMOTE_TS="$m_rts" \
  STATUS="$MKI_DIR/$SIDE_M/modiked.status" LOGLEVEL=debug \
  PLUGINS="natt esp_user tun xauth" ADAPTER=mk0 ADAPTER_ADDR="$m_host/32"
# The generic config with the XAuth method and the plugin's section.
sed -i -e 's/method="psk"/method="xauth-psk"/' -e "s|^  <peer |$section\n  <peer |" "$CFG"
grep -q "method=\"$METHOD\"" "$CFG" && grep -q '<xauth' "$CFG" || fail "could not make the XAuth config: $(cat "$CFG")"
ip netns exec "$(mki_ns "$SIDE_M")" timeout 20 "$MODIKED" -c "$CFG" --check >"$MKI_DIR/$SIDE_M/check.out" 2>&1 ||
  { cat "$MKI_DIR/$SIDE_M/check.out" "$CFG" >&2; fail "modiked --check rejected the configuration"; }
if [ -n "$PROMPT" ]; then
  # The peer and its policy become the site `modike connect` uploads; the
  # daemon keeps the rest and gets a control socket.
  SOCK=$MKI_DIR/cl/ctl.sock SITE=$MKI_DIR/cl/site.xml
  mki_site_split "$CFG" "$SITE" "$SOCK" || fail "could not split the config into daemon and site"
fi
mki_modiked_start "$SIDE_M" "$CFG"
sleep 1
mki_modiked_alive "$SIDE_M" || fail "modiked exited at start"

if [ "$SIDE_C" = cl ]; then
  mki_swanctl cl --initiate --child net --timeout "$WAIT" >"$MKI_DIR/cl/initiate.out" 2>&1 &
  MKI_PIDS+=("$!")
fi

LOG=$MKI_DIR/$SIDE_M/modiked.log
m_no_sa () { local st; st=$(mki_modiked_status "$SIDE_M") || return 1; ! grep -Eq '^IKE |^ +ESP ' "$st"; }
c_no_sa () { [ -z "$(mki_sas_raw "$SIDE_C")" ]; }
m_esp () {
  local st; st=$(mki_modiked_status "$SIDE_M") || return 1
  grep -Eq '^ +ESP ' "$st"
}
both_up () {
  local raw; raw=$(mki_sas_raw "$SIDE_C")
  [ "$(mki_raw_field "$raw" state)" = ESTABLISHED ] &&
    [ "$(mki_raw_field "$(mki_raw_child "$raw")" state)" = INSTALLED ] && m_esp
}

if [ -n "$PROMPT" ]; then
  [ -x "${MODIKE:-}" ] || fail "MODIKE (the modike client) is not set or not executable"
  mki_poll 10 "[ -S '$SOCK' ]" || fail "no control socket $SOCK"
  OUT=$MKI_DIR/connect.out CTRLC=$MKI_DIR/ctrl-c
  # Typed, not from the environment or a file.
  env -u MODIKE_USERNAME -u MODIKE_PASSWORD -u MODIKE_PASSCODE \
    python3 "$HERE/pty-connect.py" "$OUT" "$CTRLC" alice "$PASSWORD" -- "$MODIKE" --socket "$SOCK" connect "$SITE" &
  DRIVER=$!
  MKI_PIDS+=("$DRIVER")
  driver_exit () { # SECONDS: modike's exit status (fails when it still runs)
    mki_poll "$1" "! kill -0 $DRIVER 2>/dev/null" || { cat "$OUT" >&2; fail "modike connect still runs"; }
    wait "$DRIVER"
  }
  if [ "$PASSWORD" != alicepw ]; then
    driver_exit "$WAIT"; rc=$?
    cat "$OUT" >&2
    [ $rc = 4 ] || fail "modike connect: exit $rc after a wrong password, want 4 (authentication failed)"
    grep -Eq '^xauth +failed .*extended authentication failed for user .alice.' "$OUT" ||
      fail "modike connect did not say that extended authentication failed"
    # The teardown after it is not news: no phase 1/phase 2 failure lines.
    grep -Eq '^phase[12] +failed' "$OUT" && fail "modike connect printed follow-on failures after xauth failed"
    grep -q 'prompts answered: 2' "$OUT" || fail "not asked for user name and password once each"
  else
    mki_poll "$WAIT" "grep -Eq '^phase2 +up' '$OUT' 2>/dev/null" || { cat "$OUT" >&2; fail "modike connect: no phase 2"; }
    grep -Eq '^xauth +up +[0-9]+\.[0-9]{3} s' "$OUT" || { cat "$OUT" >&2; fail "modike connect: no xauth up line"; }
    mki_poll 10 both_up || fail "no SA on both sides after modike connect"
    mki_ping "$SIDE_M" 5 -i 0.2 -W 2
    [ "$MKI_PING_RX" = 5 ] || fail "ping through the tunnel: $MKI_PING_RX of 5 replies"
    mki_log "ping through the tunnel after the typed password: $MKI_PING_RX/$MKI_PING_TX"
    st=$("$MODIKE" --socket "$SOCK" status 2>&1) || fail "modike status: $st"
    printf '%s\n' "$st" >&2
    printf '%s\n' "$st" | grep -Eq '^gw +IKE +ESTABLISHED ' || fail "modike status: no IKE SA"
    printf '%s\n' "$st" | grep -Eq '^gw +ESP +[0-9a-f]{8}/[0-9a-f]{8} ' || fail "modike status: no ESP SA"
    touch "$CTRLC"
    driver_exit 15; rc=$?
    cat "$OUT" >&2
    [ $rc = 0 ] || fail "modike connect: exit $rc after Ctrl-C, want 0"
    grep -q 'prompts answered: 2' "$OUT" || fail "not asked for user name and password once each"
  fi
  grep -q '^Extended authentication for gw' "$OUT" || fail "no prompt naming the gateway on the terminal"
  grep -q "$PASSWORD" "$OUT" && fail "the password was echoed on the terminal"
  grep -q "$PASSWORD" "$LOG" && fail "the password reached modiked's log"
  mki_poll 10 m_no_sa || fail "modiked still has an SA: $(cat "$MKI_DIR/$SIDE_M/modiked.status")"
  mki_poll 10 c_no_sa || fail "charon still has an SA: $(mki_sas_raw "$SIDE_C")"
  st=$("$MODIKE" --socket "$SOCK" disconnect gw 2>&1) && fail "the site is still there: $st"
  mki_modiked_stop "$SIDE_M" || fail "modiked did not stop on SIGTERM"
  mki_log "PASS: $CASE"
  exit 0
fi

if [ "$PASSWORD" != alicepw ]; then
  want="extended authentication failed for user '$XUSER'"
  [ "$SIDE_M" = gw ] && want="$want (3 tries)"
  mki_poll "$WAIT" 'grep -qF "$want" "$LOG"' ||
    fail "modiked did not report the failed extended authentication within $WAIT s"
  mki_log "modiked: $(grep -m1 -F "$want" "$LOG")"
  mki_poll 10 m_no_sa || fail "modiked still has an SA after the failure: $(cat "$MKI_DIR/$SIDE_M/modiked.status")"
  mki_sas_raw "$SIDE_C" | grep -q 'state=INSTALLED' && fail "charon has a child SA: $(mki_sas_raw "$SIDE_C")"
  grep -q wrongpw "$LOG" && fail "the password reached modiked's log"
  mki_modiked_stop "$SIDE_M" || fail "modiked did not stop on SIGTERM"
  mki_log "PASS: $CASE"
  exit 0
fi

mki_poll "$WAIT" both_up || fail "no SA on both sides within $WAIT s"
grep -q "extended authentication succeeded for user '$XUSER'" "$LOG" ||
  fail "modiked's log does not show the extended authentication"
if [ -n "$HYBRID" ]; then
  # HybridInitRSA on both sides; the client checked the gateway's chain.
  grep -q "authenticated with $METHOD (method 64221" "$LOG" || fail "modiked's log does not show method $METHOD"
  if [ "$EXCHANGE" = aggressive ]; then
    grep -q "initiating Aggressive Mode" "$LOG" || fail "modiked did not start Aggressive Mode"
  fi
  grep -q "XAuth authentication of '$XUSER'.* successful" "$MKI_DIR/$SIDE_C/charon.log" ||
    fail "charon's log does not show the XAuth round"
  if [ "$SIDE_M" = cl ]; then
    grep -q "peer authenticated with certificate 'CN=gw,O=modike'" "$LOG" ||
      fail "modiked's log does not show charon's certificate accepted"
  else
    grep -q "authentication of 'O=modike, CN=gw' with RSA_EMSA_PKCS1_NULL successful" "$MKI_DIR/cl/charon.log" ||
      fail "charon's log does not show modiked's certificate and signature accepted"
  fi
fi
grep -q alicepw "$LOG" && fail "the password reached modiked's log"
mki_ping "$SIDE_M" 5 -i 0.2 -W 2
[ "$MKI_PING_RX" = 5 ] || fail "ping through the tunnel: $MKI_PING_RX of 5 replies"
mki_log "ping through the tunnel after XAuth: $MKI_PING_RX/$MKI_PING_TX"
mki_modiked_stop "$SIDE_M" || fail "modiked did not stop on SIGTERM"
mki_log "PASS: $CASE"
exit 0
