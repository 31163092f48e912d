#!/bin/sh
# Installs every Debian package hegate needs to build, run, test and benchmark.
# Idempotent: only missing packages are fetched. Uses sudo when not root.
set -eu
PKGS="build-essential pkg-config clang-14 libclang-rt-14-dev
libh2o-evloop-dev libjwt-dev libhiredis-dev libqrencode-dev libssl-dev libyaml-dev
libjansson-dev libcmocka-dev zlib1g-dev libuv1-dev libwslay-dev
redis-server nghttp2-client zbar-tools haproxy h2o nginx-light faketime curl openssl
python3 python3-pytest python3-httpx python3-h2 python3-jwt python3-cryptography
python3-redis python3-yaml python3-selenium chromium chromium-driver procps iproute2 psmisc
gnuplot-nox"
# Node.js and npm run the interop tests' npm packages (tests/rp: openid-client); a machine that has
# them already (e.g. from NodeSource) keeps its own, Debian's are installed otherwise
command -v node >/dev/null 2>&1 || PKGS="$PKGS nodejs"
command -v npm >/dev/null 2>&1 || PKGS="$PKGS npm"
missing=""
for p in $PKGS; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "ok installed" || missing="$missing $p"
done
SUDO=""
[ "$(id -u)" -eq 0 ] || SUDO=sudo
if [ -n "$missing" ]; then
  echo "deps: installing$missing"
  export DEBIAN_FRONTEND=noninteractive
  $SUDO apt-get update -qq
  $SUDO apt-get install -y -qq --no-install-recommends $missing
  # Debian starts these as system services on install; hegate runs its own private copies.
  for s in redis-server nginx haproxy h2o; do
    $SUDO systemctl disable --now "$s" >/dev/null 2>&1 || $SUDO service "$s" stop >/dev/null 2>&1 || true
  done
fi
# npm packages of the tests, exactly as their lockfiles pin them (into the folder's node_modules/)
here=$(cd "$(dirname "$0")/.." && pwd)
for d in "$here/tests/rp"; do
  if [ ! -d "$d/node_modules" ] || [ "$d/package-lock.json" -nt "$d/node_modules" ]; then
    echo "deps: npm ci in ${d#$here/}"
    (cd "$d" && npm ci --no-audit --no-fund --silent) && touch "$d/node_modules"
  fi
done
