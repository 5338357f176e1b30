#!/usr/bin/env bash
# Installs what the exporter (profile "run") or its tests (profile "test") need on Debian 12,
# and a .venv at the repository root with the package installed. Idempotent: a second run
# only checks. Run as root.
set -euo pipefail
profile=${1:-run}
cd "$(dirname "$0")/.."

run_pkgs=(clang llvm libbpf-dev libbpf1 bpftool make python3-venv python3-dev iproute2 kmod)
test_pkgs=(iperf3 iptables prometheus curl procps netcat-openbsd dnsmasq-base bind9-dnsutils unbound dnsperf libclang-rt-14-dev nginx-light wrk redis-server redis-tools postgresql postgresql-contrib mariadb-server mariadb-client memcached libmemcached-tools nghttp2-client libssl-dev)

want=("${run_pkgs[@]}")
[ "$profile" = test ] && want+=("${test_pkgs[@]}")
# Node and npm for the dashboard and PromQL checks of tests/ship (any Node >= 18 will do).
[ "$profile" = test ] && ! command -v npm >/dev/null && want+=(nodejs npm)

missing=()
for p in "${want[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "ok installed" || missing+=("$p")
done
if [ ${#missing[@]} -gt 0 ]; then
  echo "setup: installing ${missing[*]}"
  export DEBIAN_FRONTEND=noninteractive
  # Services from these packages are started by the tests themselves, never by the packages.
  printf '#!/bin/sh\nexit 101\n' > /usr/sbin/policy-rc.d && chmod +x /usr/sbin/policy-rc.d
  apt-get update -qq
  apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
  rm -f /usr/sbin/policy-rc.d
fi

stamp=.venv/.installed-$profile
if [ ! -f "$stamp" ] || [ pyproject.toml -nt "$stamp" ]; then
  [ -x .venv/bin/python ] || python3 -m venv .venv
  .venv/bin/pip install -q --upgrade pip >/dev/null
  if [ "$profile" = test ]; then
    .venv/bin/pip install -q -e '.[test]'
  else
    .venv/bin/pip install -q -e .
  fi
  touch "$stamp"
fi

# npm packages of tests/ship (Grafana's schema, TypeScript, the PromQL grammar), from its lockfile.
ship=tests/ship
if [ "$profile" = test ] && { [ ! -f "$ship/node_modules/.package-lock.json" ] ||
                              [ "$ship/package-lock.json" -nt "$ship/node_modules/.package-lock.json" ]; }; then
  if ! out=$(cd "$ship" && npm ci --no-audit --no-fund --loglevel=error 2>&1); then
    echo "$out" >&2
    exit 1
  fi
fi
