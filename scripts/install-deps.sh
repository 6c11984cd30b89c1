#!/bin/sh
# Install what building and testing Tide needs on Debian 12 (as root, or
# with sudo). Installs only what is missing; a no-op when all is there.
set -eu
pkgs="build-essential cmake ninja-build pkg-config clang libcmocka-dev libpmix-dev libnuma-dev libibverbs-dev ibverbs-providers openmpi-bin libopenmpi-dev"
missing=""
for p in $pkgs; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" ||
    missing="$missing $p"
done
[ -z "$missing" ] && exit 0
echo "install-deps: installing$missing"
sudo=""
[ "$(id -u)" -eq 0 ] || sudo="sudo"
$sudo apt-get update -qq
DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends $missing
