#!/usr/bin/env bash
# SPDX-License-Identifier: Apache-2.0
# ./run demo: lastmiled with the example policy, state kept in .state/demo, until Ctrl-C.
set -euo pipefail
cd "$(dirname "$0")/.."
state=$PWD/.state/demo
mkdir -p "$state"
socket=$state/api.sock
export LASTMILE_SERVER=unix://$socket
ctl=build/ctrl/lastmilectl/lastmilectl

build/ctrl/lastmiled/lastmiled --state-dir "$state" --api-socket "$socket" \
    --admin-http 127.0.0.1:9090 --manifests packaging/examples 2>"$state/lastmiled.log" &
daemon=$!
trap 'kill $daemon 2>/dev/null; wait $daemon 2>/dev/null || true' EXIT

for _ in $(seq 50); do
    [ -S "$socket" ] && "$ctl" get gateways >/dev/null 2>&1 && break
    sleep 0.1
done
echo "== lastmilectl get gateways,services,backendtlspolicies"
"$ctl" get gateways
"$ctl" get services
"$ctl" get backendtlspolicies
echo
echo "== lastmilectl describe backendtlspolicy secure-backend"
"$ctl" describe backendtlspolicy secure-backend
echo
echo "lastmiled is running (log: $state/lastmiled.log, health: http://127.0.0.1:9090/healthz)."
echo "Try: LASTMILE_SERVER=$LASTMILE_SERVER $ctl explain backendtlspolicies --recursive"
echo "Traffic forwarding and the live dashboard arrive with the dataplane and appliance issues."
echo "Press Ctrl-C to stop."
wait $daemon
