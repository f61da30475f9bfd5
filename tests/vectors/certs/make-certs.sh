#!/bin/sh
# Makes the test PKI under tests/vectors/certs with certtool (Debian
# gnutls-bin): ca -> int -> gw/client/expired/revoked, a CRL from int that
# revokes "revoked", and a second root "other" with a leaf no one trusts.
# Fixed dates so the committed files are reproducible in meaning; rerun
# only to change the PKI (keys are fresh each run).
set -eu
cd "$(dirname "$0")"
umask 077
t=$(mktemp -d); trap 'rm -rf "$t"' EXIT

key () { certtool --generate-privkey --key-type rsa --bits 2048 --outfile "$1.key" 2>/dev/null; }
tmpl () { # name serial [lines...]
  f="$t/$1.tmpl"; shift; s=$1; shift
  { echo "serial = $s"; echo 'activation_date = "2024-01-01 00:00:00"'
    echo 'expiration_date = "2044-01-01 00:00:00"'; for l in "$@"; do echo "$l"; done; } > "$f"
  echo "$f"; }

key ca; certtool --generate-self-signed --load-privkey ca.key \
  --template "$(tmpl ca 1 'cn = modike test root' 'o = modike' ca cert_signing_key crl_signing_key)" \
  --outfile ca.pem 2>/dev/null
key int; certtool --generate-certificate --load-privkey int.key --load-ca-certificate ca.pem --load-ca-privkey ca.key \
  --template "$(tmpl int 2 'cn = modike test intermediate' 'o = modike' ca cert_signing_key crl_signing_key)" \
  --outfile int.pem 2>/dev/null
leaf () { # name serial template-lines...
  n=$1; key "$n"; f=$(tmpl "$@" signing_key encryption_key)
  certtool --generate-certificate --load-privkey "$n.key" --load-ca-certificate int.pem --load-ca-privkey int.key \
    --template "$f" --outfile "$n.pem" 2>/dev/null
  cat "$n.pem" int.pem > "$n-chain.pem"; }
leaf gw 10 'cn = gw' 'o = modike' 'dns_name = gw.example' 'ip_address = 192.0.2.1'
leaf client 11 'cn = client' 'o = modike' 'dns_name = client.example' 'email = client@example.org' 'ip_address = 192.0.2.2'
leaf revoked 12 'cn = revoked' 'o = modike' 'dns_name = revoked.example'
# expired: its own dates override the template's
key expired
sed -e 's/^activation_date.*/activation_date = "2020-01-01 00:00:00"/' \
    -e 's/^expiration_date.*/expiration_date = "2021-01-01 00:00:00"/' \
  "$(tmpl expired 13 'cn = expired' 'o = modike' 'dns_name = expired.example' signing_key)" > "$t/exp2.tmpl"
certtool --generate-certificate --load-privkey expired.key --load-ca-certificate int.pem --load-ca-privkey int.key \
  --template "$t/exp2.tmpl" --outfile expired.pem 2>/dev/null
cat expired.pem int.pem > expired-chain.pem
# The CRL of int revoking "revoked".
printf 'crl_number = 1\ncrl_this_update_date = "2024-01-02 00:00:00"\ncrl_next_update_date = "2044-01-01 00:00:00"\n' > "$t/crl.tmpl"
certtool --generate-crl --load-ca-privkey int.key --load-ca-certificate int.pem --load-certificate revoked.pem \
  --template "$t/crl.tmpl" --outfile int.crl 2>/dev/null
# An unrelated root and a leaf it signed.
key other-ca; certtool --generate-self-signed --load-privkey other-ca.key \
  --template "$(tmpl other-ca 1 'cn = other root' ca cert_signing_key)" --outfile other-ca.pem 2>/dev/null
key stranger; certtool --generate-certificate --load-privkey stranger.key --load-ca-certificate other-ca.pem \
  --load-ca-privkey other-ca.key --template "$(tmpl stranger 2 'cn = stranger' 'dns_name = stranger.example' signing_key)" \
  --outfile stranger.pem 2>/dev/null
rm -f ca.key int.key other-ca.key
chmod 644 *.pem *.crl; chmod 600 *.key
