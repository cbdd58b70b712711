#!/usr/bin/env bash
# SPDX-License-Identifier: Apache-2.0
# The shipped unit passes `systemd-analyze verify`, pointed at the binary this build made
# (verify checks that ExecStart exists). Exit 77 = skipped, with the reason on stderr.
set -euo pipefail
unit=$1
lastmiled=$2
if ! command -v systemd-analyze >/dev/null; then
    echo "SKIP: systemd-analyze is not installed (package systemd)" >&2
    exit 77
fi
dir=$(mktemp -d)
trap 'rm -rf "$dir"' EXIT
sed "s|/usr/sbin/lastmiled|$lastmiled|" "$unit" >"$dir/lastmiled.service"
# Clean means exit 0 and not one warning.
if ! out=$(systemd-analyze verify "$dir/lastmiled.service" 2>&1) || [ -n "$out" ]; then
    echo "$out" >&2
    exit 1
fi
echo "systemd-analyze verify: clean"
