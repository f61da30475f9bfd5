#!/usr/bin/env bash
# Installs the Debian 12 packages modike needs to build, test and run its
# interop tests and benchmark (iperf3, ping; dbus-daemon for the tun DNS
# tests' private bus), if any is missing. Runs as
# root (or through sudo); idempotent and non-interactive.
set -euo pipefail

pkgs=(
  meson ninja-build pkg-config gcc binutils
  libglib2.0-dev libglib2.0-dev-bin libgnutls28-dev nettle-dev libgmp-dev libxml2-dev
  libjson-glib-dev libpam0g-dev libsqlite3-dev libsqlite3-0
  clang libclang-rt-14-dev gnutls-bin
  iproute2 procps psmisc tshark python3 coreutils
  iputils-ping iperf3 nftables
  dbus-daemon
  strongswan-charon strongswan-swanctl libcharon-extra-plugins libstrongswan-extra-plugins libstrongswan-standard-plugins libcharon-extauth-plugins
)

missing=()
for p in "${pkgs[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed' || missing+=("$p")
done
[ ${#missing[@]} -eq 0 ] && exit 0

echo "deps: installing ${missing[*]}"
sudo=""
[ "$(id -u)" -eq 0 ] || sudo="sudo"
export DEBIAN_FRONTEND=noninteractive
$sudo apt-get update -qq
$sudo apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
