#!/bin/bash
# Re-makes tests/vectors/strongswan/: runs reference.sh (charon <-> charon)
# for a few proposals with a packet capture and charon's key derivation log
# (ike = 4), then writes every ISAKMP datagram as a raw .bin file, index.txt
# and keys.ini. Each key set is recomputed here from the packets and the PSK
# (openssl dgst) and must equal what both charons logged; MM5/AM3 must then
# decrypt (openssl enc) to the initiator's ID / HASH_I payload.
#
# usage: capture-vectors.sh [OUTDIR]     (default: tests/vectors/strongswan)
# needs: root, charon, swanctl, tshark/dumpcap, openssl, perl.
set -eu
HERE=$(cd "$(dirname "$0")" && pwd)
OUT=${1:-$(cd "$HERE/../../vectors" && pwd)/strongswan}
PSK=testpsk
LEVELS="default = 1; ike = 4; cfg = 1; enc = 1; knl = 1; net = 1"

# name exchange pfs ike-proposal esp-proposal
CASES="
main-aes128-sha256-modp2048 main yes aes128-sha256-modp2048 aes128-sha256
main-3des-sha1-modp1024 main no 3des-sha1-modp1024 3des-sha1
main-aes256-sha1-modp2048 main no aes256-sha1-modp2048 aes256-sha1
aggressive-aes128-sha256-modp2048 aggressive no aes128-sha256-modp2048 aes128-sha256
"

for tool in tshark openssl perl; do
  command -v $tool >/dev/null || { echo "missing prerequisite: $tool" >&2; exit 1; }
done
VERSION=$(/usr/lib/ipsec/charon --version 2>/dev/null | awk '{print $NF}')
WORK=$(mktemp -d "${TMPDIR:-/tmp}/modike-vectors.XXXXXX")
trap 'rm -rf "$WORK"' EXIT
mkdir -p "$OUT"
rm -f "$OUT"/*.bin
INDEX=$OUT/index.txt KEYS=$OUT/keys.ini
: > "$INDEX"   # no comments: every line is "<file> ok <description>"
cat > "$KEYS" <<EOF
# Phase 1 key material of the exchanges in index.txt, as charon $VERSION
# derived and logged it (ike = 4) and capture-vectors.sh recomputed it.
# One group per exchange; hex values; ni/nr/gxi/gxr are payload data
# (generic payload header removed); psk is the hex of the secret.
EOF

hexbin () { perl -e 'print pack("H*", $ARGV[0])' "$1"; }
tohex () { od -An -v -tx1 | tr -d ' \n'; }

# prf/hash with openssl; $1 = md5|sha1|sha256|..., $2 = hex key, $3 = hex data
prf () { hexbin "$3" | openssl dgst -"$1" -mac HMAC -macopt "hexkey:$2" | awk '{print $NF}'; }
hash () { hexbin "$2" | openssl dgst -"$1" | awk '{print $NF}'; }

# The first hex dump labelled LABEL in a charon log (lower-case hex).
logged () {
  awk -v lab=" $2 => " '
    !on && index($0, lab) { on = 1; split(substr($0, index($0, lab) + length(lab)), a, " "); want = a[1]; next }
    on {
      p = index($0, ": ")
      if (p == 0 || $0 !~ /\[IKE\] <[^>]*> +[0-9]+: /) { exit }
      hex = hex substr($0, p + 2, 47)
    }
    END { gsub(/ /, "", hex); print tolower(substr(hex, 1, 2 * want)) }' "$1"
}

# "TYPE BODYOFFSET BODYLEN" for each payload of a plaintext ISAKMP message.
walk () {
  local h=$1 np off total next plen
  np=$((16#${h:32:2})) off=28 total=$((${#h} / 2))
  while [ "$np" != 0 ] && [ $((off + 4)) -le "$total" ]; do
    next=$((16#${h:off*2:2})) plen=$((16#${h:off*2+4:4}))
    [ "$plen" -ge 4 ] || break
    echo "$np $((off + 4)) $((plen - 4))"
    np=$next off=$((off + plen))
  done
}
same () { [ "$2" = "$3" ] || { echo "$name: recomputed $1 differs from charon's" >&2; exit 1; }; }
payload_name () {
  case $1 in
    1) echo sa ;; 4) echo ke ;; 5) echo id ;; 8) echo hash ;; 10) echo nonce ;;
    11) echo n ;; 12) echo d ;; 13) echo vid ;; 20) echo natd ;; 130) echo natd ;;
    *) echo "p$1" ;;
  esac
}
# sa-vid-vid-vid -> sa-vid3 (keeps file names short).
collapse () {
  echo "$1" | tr - '\n' | uniq -c | awk '{ printf "%s%s%s", (NR > 1 ? "-" : ""), $2, ($1 > 1 ? $1 : "") }'
}
exchange_name () {
  case $1 in 2) echo mm ;; 4) echo am ;; 5) echo info ;; 32) echo qm ;; *) echo "x$1" ;; esac
}
exchange_long () {
  case $1 in mm) echo "Main Mode" ;; am) echo "Aggressive Mode" ;; qm) echo "Quick Mode" ;;
    info) echo "Informational" ;; *) echo "exchange $1" ;; esac
}

set -- $CASES
while [ $# -ge 5 ]; do
  name=$1 ex=$2 pfs=$3 ike=$4 esp=$5; shift 5
  echo "== $name" >&2
  pcap=$WORK/$name.pcapng logs=$WORK/$name
  "$HERE/reference.sh" --exchange "$ex" --pfs "$pfs" --ike "$ike" --esp "$esp" \
    --levels "$LEVELS" --capture "$pcap" --logs "$logs" > "$WORK/$name.out" 2>&1 ||
    { cat "$WORK/$name.out" >&2; echo "reference run failed: $name" >&2; exit 1; }

  declare -A seen=() count=()
  files="" ni="" nr="" gxi="" gxr="" icookie="" rcookie=""
  while read -r src sport dport hex; do
    [ "$sport" = 4500 ] || [ "$dport" = 4500 ] && {
      [ "${hex:0:8}" = 00000000 ] || continue   # ESP in UDP or keepalive
      hex=${hex:8}
    }
    [ ${#hex} -ge 56 ] || continue
    [ -z "${seen[$hex]:-}" ] || continue        # a retransmission
    [ $((16#${hex:48:8})) = $((${#hex} / 2)) ] ||
      { echo "$name: ISAKMP length field differs from the datagram" >&2; exit 1; }
    seen[$hex]=1
    icookie=${hex:0:16} rcookie_pkt=${hex:16:16}
    [ "$rcookie_pkt" != 0000000000000000 ] && rcookie=$rcookie_pkt
    exn=$(exchange_name $((16#${hex:36:2})))
    flags=$((16#${hex:38:2})) msgid=${hex:40:8}
    key=$exn-$msgid
    count[$key]=$(( ${count[$key]:-0} + 1 ))
    n=${count[$key]}
    if [ "$src" = 192.0.2.2 ]; then dir="initiator -> responder"; else dir="responder -> initiator"; fi
    if [ $((flags & 1)) = 1 ]; then
      parts=enc
      desc="encrypted, body opaque without keys.ini [$name]"
    else
      parts="" list=""
      while read -r t o l; do
        parts="$parts-$(payload_name "$t")"
        list="$list $(payload_name "$t" | tr a-z A-Z)"
        body=${hex:o*2:l*2}
        if [ "$t" = 10 ]; then
          if [ "$src" = 192.0.2.2 ]; then ni=$body; else nr=$body; fi
        elif [ "$t" = 4 ]; then
          if [ "$src" = 192.0.2.2 ]; then gxi=$body; else gxr=$body; fi
        fi
      done < <(walk "$hex")
      parts=$(collapse "${parts#-}")
      desc="plaintext:$list"
    fi
    suffix=""
    [ "$exn" = qm ] || [ "$exn" = info ] && [ "$msgid" != 00000000 ] && suffix="-$msgid"
    file=$name.$exn$n$suffix-$parts.bin
    hexbin "$hex" > "$OUT/$file"
    files="$files $file"
    printf '%s ok %s msg %d (%s) from charon %s, %s; %s\n' "$file" "$(exchange_long "$exn")" "$n" \
      "$dir" "$VERSION" "$ike" "$desc" >> "$INDEX"
  done < <(tshark -r "$pcap" -Y udp -T fields -e ip.src -e udp.srcport -e udp.dstport -e udp.payload 2>/dev/null)
  unset seen count

  # Key material: both charons must have logged the same values.
  for side in gw cl; do
    for lab in "shared Diffie Hellman secret" SKEYID SKEYID_d SKEYID_a SKEYID_e "encryption key Ka" "initial IV"; do
      v=$(logged "$logs/$side-charon.log" "$lab")
      [ -n "$v" ] || { echo "$name: '$lab' not in the $side log" >&2; exit 1; }
      eval "L_${side}_$(echo "$lab" | tr ' ' _)=\$v"
    done
  done
  for v in shared_Diffie_Hellman_secret SKEYID SKEYID_d SKEYID_a SKEYID_e encryption_key_Ka initial_IV; do
    eval "a=\$L_gw_$v b=\$L_cl_$v"
    [ "$a" = "$b" ] || { echo "$name: $v differs between gw and cl" >&2; exit 1; }
  done
  gxy=$L_cl_shared_Diffie_Hellman_secret skeyid=$L_cl_SKEYID skeyid_d=$L_cl_SKEYID_d
  skeyid_a=$L_cl_SKEYID_a skeyid_e=$L_cl_SKEYID_e enc_key=$L_cl_encryption_key_Ka iv=$L_cl_initial_IV

  # Names as in the config schema; the PRF is the HMAC of the hash.
  encr=$(echo "$ike" | cut -d- -f1) prfn=$(echo "$ike" | cut -d- -f2) group=$(echo "$ike" | cut -d- -f3)
  case $encr in 3des) keybits=192 block=8 ;; aes128) keybits=128 block=16 ;;
    aes192) keybits=192 block=16 ;; aes256) keybits=256 block=16 ;; esac
  psk=$(printf %s "$PSK" | tohex)

  # Recompute (RFC 2409 5 and Appendix B) from the packets and the PSK.
  c_skeyid=$(prf "$prfn" "$psk" "$ni$nr")
  c_d=$(prf "$prfn" "$c_skeyid" "$gxy$icookie${rcookie}00")
  c_a=$(prf "$prfn" "$c_skeyid" "$c_d$gxy$icookie${rcookie}01")
  c_e=$(prf "$prfn" "$c_skeyid" "$c_a$gxy$icookie${rcookie}02")
  need=$((keybits / 4)) ka=$c_e
  expanded=no
  if [ ${#ka} -lt $need ]; then
    expanded=yes k=$(prf "$prfn" "$c_e" 00) ka=$k
    while [ ${#ka} -lt $need ]; do k=$(prf "$prfn" "$c_e" "$k"); ka=$ka$k; done
  fi
  ka=${ka:0:need}
  c_iv=$(hash "$prfn" "$gxi$gxr") c_iv=${c_iv:0:block*2}
  same skeyid "$skeyid" "$c_skeyid"; same skeyid_d "$skeyid_d" "$c_d"
  same skeyid_a "$skeyid_a" "$c_a"; same skeyid_e "$skeyid_e" "$c_e"
  same enc_key "$enc_key" "$ka"; same iv "$iv" "$c_iv"

  # The first encrypted message must decrypt with enc_key and the initial
  # IV: MM5 to the initiator's ID payload ("client"), AM3 to HASH_I (a
  # payload of 4 + hash length bytes).
  case $encr in 3des) cipher=des-ede3-cbc ;; *) cipher=aes-$keybits-cbc ;; esac
  first=$(printf '%s\n' $files | grep -E '\.(mm5|am3)-enc\.bin$')
  plain=$(tail -c +29 "$OUT/$first" | openssl enc -d -"$cipher" -K "$enc_key" -iv "$iv" -nopad | tohex)
  if [ "$ex" = main ]; then
    [ "${plain:16:12}" = "$(printf client | tohex)" ] ||
      { echo "$name: $first does not decrypt to the ID payload" >&2; exit 1; }
  else
    [ $((16#${plain:4:4})) = $((4 + ${#skeyid} / 2)) ] ||
      { echo "$name: $first does not decrypt to HASH_I" >&2; exit 1; }
  fi

  {
    echo
    echo "[$name]"
    echo "# $ex mode PSK, charon $VERSION; RFC 2409 Appendix B key expansion: $expanded"
    echo "exchange=$ex"
    echo "prf=$prfn"
    echo "encr=$encr"
    echo "keybits=$keybits"
    echo "group=$group"
    echo "pfs=$pfs"
    echo "psk=$psk"
    echo "icookie=$icookie"
    echo "rcookie=$rcookie"
    echo "ni=$ni"
    echo "nr=$nr"
    echo "gxi=$gxi"
    echo "gxr=$gxr"
    echo "gxy=$gxy"
    echo "skeyid=$skeyid"
    echo "skeyid_d=$skeyid_d"
    echo "skeyid_a=$skeyid_a"
    echo "skeyid_e=$skeyid_e"
    echo "enc_key=$enc_key"
    echo "iv=$iv"
    echo "files=$(echo $files | tr ' ' ';')"
  } >> "$KEYS"
  echo "$name: $(echo $files | wc -w) datagrams, keys verified (expansion: $expanded)" >&2
done
