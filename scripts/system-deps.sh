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
  # the network lab (tests/netlab/): namespaces, NAT, shaped links, NAT mappings flushed
  [/usr/sbin/ip]=iproute2
  [/usr/sbin/tc]=iproute2
  [/usr/sbin/nft]=nftables
  [/usr/sbin/conntrack]=conntrack
)

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
[ ${#missing[@]} -eq 0 ] && exit 0

echo "installing Debian packages: ${missing[*]}" >&2
sudo=""
[ "$(id -u)" -eq 0 ] || sudo="sudo"
export DEBIAN_FRONTEND=noninteractive
$sudo apt-get update -qq
mapfile -t packages < <(printf '%s\n' "${missing[@]}" | sort -u)
$sudo apt-get install -y -qq --no-install-recommends "${packages[@]}" fonts-liberation >/dev/null
