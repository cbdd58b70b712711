#!/usr/bin/env bash
# SPDX-License-Identifier: Apache-2.0
# The /ui dashboard in headless Chromium shows the same totals as /metrics, against a real
# lastmiled forwarding traffic to a TLS backend. Exit 77 = skipped, with the reason on stderr.
# usage: dashboard_test.sh LASTMILED LASTMILECTL LM_TEST_BACKEND ARTIFACT_DIR
set -euo pipefail
lastmiled=$1
lastmilectl=$2
backend_bin=$3
artifacts=$4

chromium=$(command -v chromium || command -v chromium-browser || true)
if [ -z "$chromium" ]; then
    echo "SKIP: chromium is not installed (Debian package chromium; ./run deps installs it)" >&2
    exit 77
fi
for tool in openssl python3 timeout; do
    if ! command -v "$tool" >/dev/null; then
        echo "SKIP: $tool is not installed" >&2
        exit 77
    fi
done

dir=$(mktemp -d)
pids=()
cleanup() {
    local rc=$?
    for pid in "${pids[@]}"; do
        kill "$pid" 2>/dev/null || true
    done
    for pid in "${pids[@]}"; do
        wait "$pid" 2>/dev/null || true
    done
    if [ $rc -ne 0 ] && [ -f "$dir/lastmiled.log" ]; then
        echo "---- lastmiled log (tail) ----" >&2
        tail -40 "$dir/lastmiled.log" >&2
    fi
    rm -rf "$dir"
}
trap cleanup EXIT
trap 'exit 1' INT TERM

fail() {
    echo "FAIL: $*" >&2
    exit 1
}

# Polls `$@` every 0.1 s for at most 20 s: these are real processes, not an injectable clock.
eventually() {
    local _
    for _ in $(seq 200); do
        "$@" && return 0
        sleep 0.1
    done
    return 1
}

# --- PKI: a CA and a leaf for backend.example.test, made for this run only ---
hostname=backend.example.test
openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -days 30 \
    -subj "/CN=lastmile dashboard test CA" -keyout "$dir/ca.key" -out "$dir/ca.crt" \
    -addext basicConstraints=critical,CA:TRUE -addext keyUsage=critical,keyCertSign,cRLSign \
    2>/dev/null
openssl req -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -subj "/CN=$hostname" \
    -keyout "$dir/backend.key" -out "$dir/backend.csr" 2>/dev/null
printf 'subjectAltName=DNS:%s\nbasicConstraints=CA:FALSE\nextendedKeyUsage=serverAuth\n' "$hostname" \
    >"$dir/backend.ext"
openssl x509 -req -in "$dir/backend.csr" -CA "$dir/ca.crt" -CAkey "$dir/ca.key" -CAcreateserial \
    -days 20 -extfile "$dir/backend.ext" -out "$dir/backend.crt" 2>/dev/null

# --- the TLS backend ---
"$backend_bin" --listen 127.0.0.1:0 --cert "$dir/backend.crt" --key "$dir/backend.key" \
    --mode http >"$dir/backend.out" 2>"$dir/backend.err" &
pids+=($!)
eventually grep -q '^listening ' "$dir/backend.out" || fail "lm-test-backend did not start: $(cat "$dir/backend.err")"
backend_port=$(sed -n 's/^listening .*:\([0-9]*\)$/\1/p' "$dir/backend.out")

# --- lastmiled with the manifests ---
read -r tcp_port http_port < <(python3 -c '
import socket
socks = [socket.socket() for _ in range(2)]
for s in socks:
    s.bind(("127.0.0.1", 0))
print(*(s.getsockname()[1] for s in socks))')
mkdir "$dir/manifests"
{
    cat <<YAML
apiVersion: gateway.networking.k8s.io/v1
kind: Gateway
metadata:
  name: edge
spec:
  gatewayClassName: lastmile
  addresses:
  - type: IPAddress
    value: 127.0.0.1
  listeners:
  - name: tcp
    port: $tcp_port
    protocol: TCP
  - name: http
    port: $http_port
    protocol: HTTP
---
apiVersion: gateway.networking.k8s.io/v1alpha2
kind: TCPRoute
metadata:
  name: tcp-route
spec:
  parentRefs:
  - name: edge
    sectionName: tcp
  rules:
  - backendRefs:
    - name: dash-backend
      port: 443
---
apiVersion: gateway.networking.k8s.io/v1
kind: HTTPRoute
metadata:
  name: http-route
spec:
  parentRefs:
  - name: edge
    sectionName: http
  rules:
  - backendRefs:
    - name: dash-backend
      port: 443
---
apiVersion: v1
kind: Service
metadata:
  name: dash-backend
spec:
  ports:
  - name: https
    port: 443
---
apiVersion: discovery.k8s.io/v1
kind: EndpointSlice
metadata:
  name: dash-backend-1
  labels:
    kubernetes.io/service-name: dash-backend
addressType: IPv4
endpoints:
- addresses: ["127.0.0.1"]
ports:
- name: https
  port: $backend_port
---
apiVersion: v1
kind: ConfigMap
metadata:
  name: dash-ca
data:
  ca.crt: |
YAML
    sed 's/^/    /' "$dir/ca.crt"
    cat <<YAML
---
apiVersion: gateway.networking.k8s.io/v1
kind: BackendTLSPolicy
metadata:
  name: dash-policy
spec:
  targetRefs:
  - group: ""
    kind: Service
    name: dash-backend
  validation:
    hostname: $hostname
    caCertificateRefs:
    - group: ""
      kind: ConfigMap
      name: dash-ca
YAML
} >"$dir/manifests/dashboard.yaml"
printf 'workers: 2\nbindAddress: 127.0.0.1\nallowedBackendNetworks: ["127.0.0.0/8", "::1/128"]\n' \
    >"$dir/lastmiled.yaml"

"$lastmiled" --config "$dir/lastmiled.yaml" --state-dir "$dir/state" --api-socket "$dir/api.sock" \
    --admin-http 127.0.0.1:0 --manifests "$dir/manifests" 2>"$dir/lastmiled.log" &
pids+=($!)
eventually grep -q 'ready: ' "$dir/lastmiled.log" || fail "lastmiled did not become ready"
admin=$(sed -n 's/.*admin http:\/\/\([0-9.]*:[0-9]*\).*/\1/p' "$dir/lastmiled.log" | head -1)
[ -n "$admin" ] || fail "no admin address in the ready line"

programmed() {
    LASTMILE_SERVER="unix://$dir/api.sock" "$lastmilectl" get gateway edge -o json 2>/dev/null |
        python3 -c '
import json, sys
gw = json.load(sys.stdin)
ok = any(c.get("type") == "Programmed" and c.get("status") == "True"
         for c in gw.get("status", {}).get("conditions", []))
sys.exit(0 if ok else 1)' 2>/dev/null
}
eventually programmed || fail "Gateway edge was not Programmed"

# --- traffic: HTTP requests on fresh connections through both listeners ---
python3 - "$tcp_port" "$http_port" <<'PY' || fail "traffic through lastmiled failed"
import socket, sys
tcp_port, http_port = int(sys.argv[1]), int(sys.argv[2])

def request(port, size):
    with socket.create_connection(("127.0.0.1", port), timeout=10) as s:
        s.sendall(f"GET /{size} HTTP/1.1\r\nHost: backend.example.test\r\nConnection: close\r\n\r\n".encode())
        data = b""
        while True:
            chunk = s.recv(65536)
            if not chunk:
                break
            data += chunk
    head, _, body = data.partition(b"\r\n\r\n")
    if not head.startswith(b"HTTP/1.1 200") or len(body) != size:
        raise SystemExit(f"port {port}: unexpected answer {head[:80]!r}, {len(body)} body bytes")

for i in range(6):
    request(http_port, 1000 * (i + 1))
for i in range(4):
    request(tcp_port, 4096)
PY

metrics() {
    python3 -c '
import sys, urllib.request
print(urllib.request.urlopen("http://" + sys.argv[1] + "/metrics", timeout=10).read().decode(), end="")' "$admin"
}
# Counters settle once the last connection is closed on both sides.
settled() {
    metrics >"$dir/metrics.txt" && grep -q '^lastmile_connections_active 0$' "$dir/metrics.txt" &&
        grep -q '^lastmile_connections_accepted_total 10$' "$dir/metrics.txt"
}
eventually settled || fail "connections did not settle: $(grep -E '^lastmile_connections_(active|accepted)' "$dir/metrics.txt")"

# The page's assets come from the binary, with their types.
python3 - "$admin" <<'PY' || fail "dashboard assets"
import sys, urllib.request, urllib.error
base = "http://" + sys.argv[1]
for path, ctype in [("/ui", "text/html"), ("/ui/", "text/html"),
                    ("/ui/dashboard.js", "text/javascript"), ("/ui/dashboard.css", "text/css")]:
    r = urllib.request.urlopen(base + path, timeout=10)
    got = r.headers.get("Content-Type", "")
    if not got.startswith(ctype):
        raise SystemExit(f"{path}: Content-Type {got}, want {ctype}")
try:
    urllib.request.urlopen(base + "/ui/nope.js", timeout=10)
    raise SystemExit("/ui/nope.js: want 404")
except urllib.error.HTTPError as e:
    if e.code != 404:
        raise SystemExit(f"/ui/nope.js: {e.code}, want 404")
PY

# --- the page in headless Chromium: ~4 polls of virtual time ---
mkdir -p "$artifacts"
screenshot=$artifacts/dashboard.png
rm -f "$screenshot"
# shellcheck disable=SC2054 # the comma is inside --window-size's value
chrome=("$chromium" --headless --disable-gpu --no-sandbox --no-first-run --disable-extensions
    --disable-background-networking --disable-component-update --disable-sync
    --user-data-dir="$dir/chromium" --window-size=1400,1100 --virtual-time-budget=4500)
timeout 90 "${chrome[@]}" --dump-dom "http://$admin/ui" >"$dir/dom.html" 2>"$dir/chromium.log" ||
    fail "chromium --dump-dom failed: $(tail -5 "$dir/chromium.log")"
timeout 90 "${chrome[@]}" --screenshot="$screenshot" "http://$admin/ui" >>"$dir/chromium.log" 2>&1 ||
    fail "chromium --screenshot failed: $(tail -5 "$dir/chromium.log")"
[ -s "$screenshot" ] || fail "no screenshot written"
cp "$dir/dom.html" "$artifacts/dashboard.dom.html"
metrics >"$dir/metrics-after.txt"
cp "$dir/metrics-after.txt" "$artifacts/dashboard.metrics.txt"

# --- the DOM against /metrics ---
python3 - "$dir/dom.html" "$dir/metrics.txt" "$dir/metrics-after.txt" <<'PY'
import html.parser, re, sys, time

class Dom(html.parser.HTMLParser):
    """data-value by element id, and by (row key, data-field) inside keyed table rows."""
    def __init__(self):
        super().__init__()
        self.ids, self.rows, self.row = {}, {}, None
    def handle_starttag(self, tag, attrs):
        a = dict(attrs)
        if tag == "tr":
            for key in ("data-backend", "data-reason", "data-engine", "data-worker", "data-listener"):
                if key in a:
                    self.row = (key[5:], a[key])
                    self.rows[self.row] = {}
        if "id" in a and "data-value" in a:
            self.ids[a["id"]] = a["data-value"]
        if tag == "td" and self.row and "data-field" in a:
            self.rows[self.row][a["data-field"]] = a.get("data-value")

def parse_metrics(path):
    out = {}
    for line in open(path):
        if line.startswith("#") or not line.strip():
            continue
        m = re.match(r'^([a-zA-Z_:][a-zA-Z0-9_:]*)(\{.*\})?\s+(\S+)', line)
        if m:
            labels = dict(re.findall(r'([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\]|\\.)*)"', m.group(2) or ""))
            out.setdefault(m.group(1), []).append((labels, float(m.group(3))))
    return out

dom = Dom()
dom.feed(open(sys.argv[1]).read())
before, after = parse_metrics(sys.argv[2]), parse_metrics(sys.argv[3])
failures = []

def total(metrics, name):
    return sum(v for _, v in metrics.get(name, []))

def check(what, shown, want, tolerance=1e-9):
    if shown is None or shown == "" or abs(float(shown) - want) > tolerance * max(1.0, abs(want)):
        failures.append(f"{what}: page shows {shown!r}, /metrics says {want}")
    else:
        print(f"ok: {what} = {shown}")

if float(dom.ids.get("polls") or 0) < 1:
    failures.append("the page never rendered a poll of /metrics")
counters = {
    "total-accepted": "lastmile_connections_accepted_total",
    "total-closed": "lastmile_connections_closed_total",
    "total-backend-bytes": "lastmile_backend_sent_bytes_total",
    "total-client-bytes": "lastmile_client_sent_bytes_total",
    "total-handshakes-full": "lastmile_handshakes_full_total",
    "total-handshakes-resumed": "lastmile_handshakes_resumed_total",
    "total-failures": "lastmile_failures_total",
    "total-warm-hits": "lastmile_warm_pool_hits_total",
    "connections-active": "lastmile_connections_active",
    "backend-connections": "lastmile_backend_connections",
    "backend-connections-limit": "lastmile_backend_connections_limit",
    "buffer-memory-limit": "lastmile_buffer_memory_limit_bytes",
    "workers": "lastmile_workers",
}
for element, name in counters.items():
    # Counters do not move once traffic stopped; a change would make the comparison moot.
    if total(before, name) != total(after, name):
        failures.append(f"{name} changed while the page loaded")
    check(element, dom.ids.get(element), total(after, name))
# Buffers keep being given back after traffic stops (parking, trimming the pools), never
# taken: the page shows a value from between the two reads.
shown = dom.ids.get("buffer-memory")
low, high = total(after, "lastmile_buffer_memory_bytes"), total(before, "lastmile_buffer_memory_bytes")
if shown in (None, "") or not low <= float(shown) <= high:
    failures.append(f"buffer-memory: page shows {shown!r}, /metrics said {high} then {low}")
else:
    print(f"ok: buffer-memory = {shown}")
check("total-closed-policy", dom.ids.get("total-closed-policy"),
      sum(v for l, v in after.get("lastmile_connections_closed_total", []) if l.get("reason") == "policy_change"))
if total(after, "lastmile_buffer_memory_limit_bytes") <= 0 or total(after, "lastmile_backend_connections_limit") <= 0:
    failures.append("the budget limits are not exported")
full, resumed = total(after, "lastmile_handshakes_full_total"), total(after, "lastmile_handshakes_resumed_total")
check("total-handshakes", dom.ids.get("total-handshakes"), full + resumed)
if full + resumed < 1:
    failures.append("no backend handshake was counted")
if total(after, "lastmile_backend_sent_bytes_total") <= 0 or total(after, "lastmile_client_sent_bytes_total") <= 0:
    failures.append("no bytes were counted")
for labels, v in after.get("lastmile_failures_total", []):
    check(f"failures[{labels['reason']}]", dom.rows.get(("reason", labels["reason"]), {}).get("total"), v)
# Per backend Service port (once lastmiled exports the per-Service families).
def backend_key(labels):
    return ("backend", f"{labels['project']}/{labels['namespace']}/{labels['service']}:{labels['port']}")
for family, field in [("lastmile_service_connections_total", "connections"),
                      ("lastmile_service_connections_active", "active"),
                      ("lastmile_service_sent_bytes_total", "sent-bytes"),
                      ("lastmile_service_received_bytes_total", "received-bytes")]:
    for labels, v in after.get(family, []):
        key = backend_key(labels)
        check(f"backend {key[1]} {field}", dom.rows.get(key, {}).get(field), v)
results = {}
for labels, v in after.get("lastmile_service_handshakes_total", []):
    results.setdefault(backend_key(labels), {})[labels["result"]] = v
for key, r in results.items():
    done = r.get("full", 0) + r.get("resumed", 0)
    check(f"backend {key[1]} handshakes", dom.rows.get(key, {}).get("handshakes"), done)
    check(f"backend {key[1]} failed handshakes", dom.rows.get(key, {}).get("handshakes-failed"), r.get("failed", 0))
    if done > 0:
        check(f"backend {key[1]} resumed ratio", dom.rows.get(key, {}).get("resumed-percent"), r.get("resumed", 0) / done)
for labels, v in after.get("lastmile_service_certificate_expiry_timestamp_seconds", []):
    key = backend_key(labels)
    # Days from the page's clock at render time: equal to ours within a minute.
    check(f"backend {key[1]} certificate expiry (days)", dom.rows.get(key, {}).get("cert-expiry-days"),
          (v - time.time()) / 86400, tolerance=0.001)
for labels, v in after.get("lastmile_listener_connections_total", []):
    key = ("listener", "/".join(labels[k] for k in ("project", "namespace", "gateway", "listener")))
    check(f"listener {key[1]} connections", dom.rows.get(key, {}).get("total"), v)
for labels, v in after.get("lastmile_engine_sessions_total", []):
    check(f"engine {labels['engine']} sessions", dom.rows.get(("engine", labels["engine"]), {}).get("sessions"), v)
# Traffic has stopped, so every window's delta is empty and the page shows the quantiles of
# the cumulative histogram, interpolated inside the bucket as histogram_quantile() does.
def quantile(q, buckets):
    total = buckets[-1][1]
    rank, lower_bound, lower_count = q * total, 0.0, 0.0
    for le, c in buckets:
        if c >= rank:
            if le == float("inf"):
                return lower_bound
            return le if c == lower_count else lower_bound + (le - lower_bound) * (rank - lower_count) / (c - lower_count)
        lower_bound, lower_count = le, c
    return lower_bound
histogram = sorted((float(l["le"]), v) for l, v in after.get("lastmile_handshake_duration_seconds_bucket", []))
if histogram and histogram[-1][1] > 0:
    check("latency-p50", dom.ids.get("latency-p50"), quantile(0.5, histogram), tolerance=1e-6)
    check("latency-p99", dom.ids.get("latency-p99"), quantile(0.99, histogram), tolerance=1e-6)
    check("latency-count", dom.ids.get("latency-count"), histogram[-1][1])
for f in failures:
    print("FAIL:", f, file=sys.stderr)
sys.exit(1 if failures else 0)
PY
echo "screenshot: $screenshot"
