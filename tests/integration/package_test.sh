#!/usr/bin/env bash
# SPDX-License-Identifier: Apache-2.0
# Unpacks the .deb into a scratch root and runs lastmiled and lastmilectl from the installed
# files as plain processes (PID 1 here is not systemd). One "package: NAME ok|FAILED" line a check.
set -uo pipefail
deb=$1
scratch=$(mktemp -d)
daemon=
cleanup() {
    [ -n "$daemon" ] && kill "$daemon" 2>/dev/null && wait "$daemon" 2>/dev/null
    rm -rf "$scratch"
}
trap cleanup EXIT
status=0
check() {
    local name=$1
    shift
    if "$@"; then
        echo "package: $name ok"
    else
        echo "package: $name FAILED"
        status=1
    fi
}

fs=$scratch/fs
has_layout() {
    dpkg-deb -x "$deb" "$fs" &&
        [ -x "$fs/usr/sbin/lastmiled" ] && [ -x "$fs/usr/bin/lastmilectl" ] &&
        [ -f "$fs/etc/lastmile/lastmiled.yaml" ] && [ -d "$fs/etc/lastmile/manifests" ] &&
        [ -f "$fs/usr/lib/systemd/system/lastmiled.service" ] &&
        grep -qx tls "$fs/usr/lib/modules-load.d/lastmile.conf" &&
        [ "$(dpkg-deb -f "$deb" Package)" = lastmile ] &&
        dpkg-deb -f "$deb" Depends | grep -q libssl3 &&
        dpkg-deb -I "$deb" conffiles | grep -qx /etc/lastmile/lastmiled.yaml
}
check layout has_layout

runs_installed() {
    local socket=$scratch/api.sock
    "$fs/usr/sbin/lastmiled" --config "$fs/etc/lastmile/lastmiled.yaml" \
        --state-dir "$scratch/state" --api-socket "$socket" --admin-http 127.0.0.1:0 \
        --manifests "$fs/usr/share/doc/lastmile/examples" 2>"$scratch/lastmiled.log" &
    daemon=$!
    export LASTMILE_SERVER=unix://$socket
    # Readiness, bounded: at most 10 s.
    local i
    for i in $(seq 100); do
        "$fs/usr/bin/lastmilectl" get gateways >/dev/null 2>&1 && break
        sleep 0.1
    done
    "$fs/usr/bin/lastmilectl" describe backendtlspolicy secure-backend >"$scratch/describe" &&
        grep -Eq 'Accepted +True' "$scratch/describe" &&
        grep -Eq 'ResolvedRefs +True' "$scratch/describe" || {
        cat "$scratch/describe" "$scratch/lastmiled.log" >&2
        return 1
    }
}
check run-installed-files runs_installed
exit $status
