#!/usr/bin/env bash
# Installs the Debian packages the test suite drives for real, when they are missing.
# Runs as root (CI) or through sudo; does nothing when everything is there.
set -euo pipefail

# command that must exist -> Debian package that provides it
declare -A needed=(
  [/usr/bin/chromium]=chromium
  [/usr/bin/turnserver]=coturn
  [/usr/bin/redis-server]=redis-server
  [/usr/sbin/haproxy]=haproxy
  [/usr/bin/janus]=janus
  # the network lab (tests/netlab/): namespaces, NAT, shaped links, NAT mappings flushed
  [/usr/sbin/ip]=iproute2
  [/usr/sbin/tc]=iproute2
  [/usr/sbin/nft]=nftables
  [/usr/sbin/conntrack]=conntrack
)

# Janus is driven by hubbub with its own config (the tests start one as nobody on free
# ports). The package's service runs as root, listens on every interface and ships demo
# rooms with known secrets: it must never run here, so it is kept from starting while the
# package installs, then stopped, disabled and masked when systemd is there.
janus_service_off() {
  [ -x /usr/bin/janus ] || return 0
  if command -v systemctl >/dev/null && [ -d /run/systemd/system ]; then
    $sudo systemctl disable --now janus.service >/dev/null 2>&1 || true
    $sudo systemctl mask janus.service >/dev/null 2>&1 || true
  fi
  return 0
}
sudo=""
[ "$(id -u)" -eq 0 ] || sudo="sudo"

missing=()
for path in "${!needed[@]}"; do
  [ -x "$path" ] || missing+=("${needed[$path]}")
done
# Node.js runs the npm clients the front-end tests bundle (tests/browser/compat) and
# the reference servers of the benchmarks; any install on the PATH will do.
command -v node >/dev/null && command -v npm >/dev/null || missing+=(nodejs npm)
# PostgreSQL's server binaries live under a versioned folder; the store tests start
# their own server from them.
compgen -G "/usr/lib/postgresql/*/bin/postgres" >/dev/null || missing+=(postgresql)
# npm packs hubbub.js and installs the TypeScript that checks its declarations
# (tests/packaging/test_npm_package.py).
command -v npm >/dev/null || missing+=(nodejs npm)
[ ${#missing[@]} -eq 0 ] && { janus_service_off; exit 0; }

echo "installing Debian packages: ${missing[*]}" >&2
export DEBIAN_FRONTEND=noninteractive
# policy-rc.d answering 101 keeps every package's service from starting during the install
# (Janus's above all); one already in place is left as it was.
policy=/usr/sbin/policy-rc.d
own_policy=""
if [ ! -e "$policy" ]; then
  printf '#!/bin/sh\nexit 101\n' | $sudo tee "$policy" >/dev/null
  $sudo chmod 755 "$policy"
  own_policy=1
fi
cleanup() { [ -z "$own_policy" ] || $sudo rm -f "$policy"; }
trap cleanup EXIT
$sudo apt-get update -qq
mapfile -t packages < <(printf '%s\n' "${missing[@]}" | sort -u)
$sudo apt-get install -y -qq --no-install-recommends "${packages[@]}" fonts-liberation >/dev/null
janus_service_off
