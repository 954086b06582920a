#!/usr/bin/env bash
# Runs the whole test suite on a fresh Debian 12 machine: installs the
# system packages the tests use when missing (nats-server; promtool from
# prometheus; Python's websockets and msgpack; Chromium for the dashboard
# tests), the npm dependencies, then builds, typechecks and tests.
set -euo pipefail
cd "$(dirname "$0")/.."

need=()
command -v nats-server >/dev/null 2>&1 || need+=(nats-server)
command -v promtool >/dev/null 2>&1 || need+=(prometheus)
/usr/bin/python3 -c 'import websockets, msgpack' >/dev/null 2>&1 || need+=(python3-websockets python3-msgpack)
[ -x /usr/bin/chromium ] || need+=(chromium)
if [ ${#need[@]} -gt 0 ]; then
  echo "installing system packages: ${need[*]}"
  sudo=""
  [ "$(id -u)" -eq 0 ] || sudo="sudo"
  export DEBIAN_FRONTEND=noninteractive
  $sudo apt-get update -qq
  $sudo apt-get install -y -qq "${need[@]}"
fi

npm ci --no-audit --no-fund
npm test
