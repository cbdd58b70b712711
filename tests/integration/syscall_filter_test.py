#!/usr/bin/python3
# SPDX-License-Identifier: Apache-2.0
"""lastmiled runs under the shipped unit's SystemCallFilter: start, apply, TLS traffic, SIGHUP
and a clean stop, with every system call outside the list killing the process.

PID 1 here is not systemd, so the filter is built the way systemd builds it (groups expanded
by `systemd-analyze syscall-filter`) and loaded with libseccomp before exec. The test is
stricter than the unit: the unit answers EPERM, the test kills, so nothing hides behind an
error path. Exit 77 = skipped, with the reason on stderr.

With --cryptodev, lastmiled also drives DPDK's software crypto_openssl device through a
queue pair per worker, and the policy sends its sessions there. With --interception DROPIN,
the filter is the unit's plus the interception drop-in's, lastmiled loads host-mode
interception for a cgroup of its own making, and the echo goes from a client in that cgroup
to the Gateway's virtual address. With --etcd, lastmiled is a fleet node: its store is a
single etcd member the test starts (libcurl, the node's lease and watches under the filter).

usage: syscall_filter_test.py UNIT LASTMILED LASTMILECTL LM_TEST_BACKEND
                              [--cryptodev | --interception DROPIN | --etcd]
"""
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request

try:
    import seccomp
except ImportError:
    print("SKIP: python3-seccomp is not installed (./run deps installs it)", file=sys.stderr)
    sys.exit(77)

unit, lastmiled, lastmilectl, backend_bin = sys.argv[1:5]
cryptodev = "--cryptodev" in sys.argv[5:]
etcd = "--etcd" in sys.argv[5:]
if etcd and shutil.which("etcd") is None:
    print("SKIP: etcd is not installed (./run deps installs etcd-server)", file=sys.stderr)
    sys.exit(77)
dropin = sys.argv[sys.argv.index("--interception") + 1] if "--interception" in sys.argv else None
VIP = "10.200.0.1"  # the Gateway's virtual address with --interception
if dropin and os.geteuid() != 0:
    print("SKIP: interception needs root (CAP_BPF, CAP_NET_ADMIN, a cgroup of its own)",
          file=sys.stderr)
    sys.exit(77)
for tool in ("systemd-analyze", "openssl"):
    if shutil.which(tool) is None:
        print(f"SKIP: {tool} is not installed", file=sys.stderr)
        sys.exit(77)


def unit_filter(path):
    """Every name on the file's SystemCallFilter= lines (an allow-list: no leading '~'); a
    drop-in's lines add to the unit's, as systemd merges them."""
    names = []
    with open(path) as f:
        for line in f:
            if line.startswith("SystemCallFilter="):
                value = line.split("=", 1)[1].split()
                assert value and not value[0].startswith("~"), "expected an allow-list"
                names += value
    assert names, f"{path} has no SystemCallFilter="
    return names


def cgroup2_mount():
    with open("/proc/self/mounts") as f:
        for line in f:
            fields = line.split()
            if fields[2] == "cgroup2":
                return fields[1]
    return None


def expand(names, seen=None):
    """System call names of `names`, groups (@name) expanded recursively by systemd."""
    seen = set() if seen is None else seen
    calls = set()
    for name in names:
        if not name.startswith("@"):
            calls.add(name)
            continue
        if name in seen:
            continue
        seen.add(name)
        out = subprocess.run(["systemd-analyze", "syscall-filter", name], check=True,
                             capture_output=True, text=True).stdout.splitlines()
        members = [l.strip() for l in out[1:] if l.strip() and not l.strip().startswith("#")]
        calls |= expand(members, seen)
    return calls


# Calls outside the filter that lastmiled makes on purpose and whose EPERM (the unit's answer)
# it handles: DPDK's EAL asks for I/O port access (iopl) at start, which only legacy virtio
# drivers use, and carries on without it.
ANSWERED_EPERM = ("iopl",)


def load_filter(calls):
    f = seccomp.SyscallFilter(defaction=seccomp.KILL_PROCESS)
    for call in sorted(calls):
        try:
            f.add_rule(seccomp.ALLOW, call)
        except (RuntimeError, ValueError):
            pass  # a name this architecture does not have (e.g. _newselect on x86-64)
    for call in ANSWERED_EPERM:
        f.add_rule(seccomp.ERRNO(1), call)
    f.load()


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def eventually(check, what, seconds=20):
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if check():
            return
        time.sleep(0.1)
    raise AssertionError(f"timed out waiting for {what}")


def make_pki(d, hostname):
    def run(*args):
        subprocess.run(["openssl", *args], check=True, capture_output=True)
    run("req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes",
        "-days", "2", "-subj", "/CN=syscall filter test CA", "-keyout", f"{d}/ca.key",
        "-out", f"{d}/ca.crt", "-addext", "basicConstraints=critical,CA:TRUE",
        "-addext", "keyUsage=critical,keyCertSign,cRLSign")
    run("req", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes",
        "-subj", f"/CN={hostname}", "-keyout", f"{d}/backend.key", "-out", f"{d}/backend.csr")
    with open(f"{d}/backend.ext", "w") as f:
        f.write(f"subjectAltName=DNS:{hostname}\nextendedKeyUsage=serverAuth\n")
    run("x509", "-req", "-in", f"{d}/backend.csr", "-CA", f"{d}/ca.crt", "-CAkey", f"{d}/ca.key",
        "-CAcreateserial", "-days", "1", "-extfile", f"{d}/backend.ext", "-out", f"{d}/backend.crt")


def manifests(port, backend_port, ca_pem, hostname):
    ca = "".join("    " + l + "\n" for l in ca_pem.splitlines())
    vip = f", {{type: IPAddress, value: {VIP}}}" if dropin else ""
    return f"""apiVersion: gateway.networking.k8s.io/v1
kind: Gateway
metadata: {{name: edge}}
spec:
  gatewayClassName: lastmile
  addresses: [{{type: IPAddress, value: 127.0.0.1}}{vip}]
  listeners: [{{name: tcp, port: {port}, protocol: TCP}}]
---
apiVersion: gateway.networking.k8s.io/v1alpha2
kind: TCPRoute
metadata: {{name: route}}
spec:
  parentRefs: [{{name: edge, sectionName: tcp}}]
  rules: [{{backendRefs: [{{name: backend, port: 443}}]}}]
---
apiVersion: v1
kind: Service
metadata: {{name: backend}}
spec: {{ports: [{{name: https, port: 443}}]}}
---
apiVersion: discovery.k8s.io/v1
kind: EndpointSlice
metadata:
  name: backend-1
  labels: {{kubernetes.io/service-name: backend}}
addressType: IPv4
endpoints: [{{addresses: ["127.0.0.1"]}}]
ports: [{{name: https, port: {backend_port}}}]
---
apiVersion: v1
kind: ConfigMap
metadata: {{name: ca}}
data:
  ca.crt: |
{ca}---
apiVersion: gateway.networking.k8s.io/v1
kind: BackendTLSPolicy
metadata: {{name: policy}}
spec:
  targetRefs: [{{group: "", kind: Service, name: backend}}]
  validation:
    hostname: {hostname}
    caCertificateRefs: [{{group: "", kind: ConfigMap, name: ca}}]
""" + ("""  options:
    lastmile.dev/offload: cryptodev
    lastmile.dev/session-resumption: "false"
""" if cryptodev else "")


def check_exit(rc, expected):
    if rc == -signal.SIGSYS:
        raise AssertionError("lastmiled made a system call outside the unit's SystemCallFilter "
                             "(killed by SIGSYS); find it with strace -f")
    assert rc == expected, f"lastmiled exited {rc}"


def echo_through(port, payload, cgroup=None):
    """The echo of `payload` through lastmiled: at its listener, or with `cgroup` from a client
    process in that cgroup dialling the virtual address."""
    if cgroup is None:
        with socket.create_connection(("127.0.0.1", port), timeout=10) as s:
            s.sendall(payload)
            s.shutdown(socket.SHUT_WR)
            got = b""
            while chunk := s.recv(65536):
                got += chunk
        return got
    client = ("import socket, sys\n"
              f"s = socket.create_connection(('{VIP}', {port}), timeout=10)\n"
              "s.sendall(sys.stdin.buffer.read()); s.shutdown(socket.SHUT_WR)\n"
              "while chunk := s.recv(65536): sys.stdout.buffer.write(chunk)\n")

    def join():
        with open(f"{cgroup}/cgroup.procs", "w") as f:
            f.write(str(os.getpid()))
    return subprocess.run([sys.executable, "-c", client], input=payload, capture_output=True,
                          timeout=30, preexec_fn=join, check=True).stdout


def main():
    calls = expand(unit_filter(unit) + (unit_filter(dropin) if dropin else []))
    for needed in ("io_uring_setup", "io_uring_enter", "io_uring_register"):
        assert needed in calls, f"{needed} is missing from the unit's SystemCallFilter"
    d = tempfile.mkdtemp()
    procs = []
    cgroup = None
    if dropin:
        mount = cgroup2_mount()
        if mount is None:
            print("SKIP: no cgroup v2 mount in /proc/mounts", file=sys.stderr)
            sys.exit(77)
        cgroup = f"{mount}/lm-syscall-filter-{os.getpid()}"
        os.mkdir(cgroup)
    try:
        hostname = "backend.example.test"
        make_pki(d, hostname)
        backend = subprocess.Popen(
            [backend_bin, "--listen", "127.0.0.1:0", "--cert", f"{d}/backend.crt",
             "--key", f"{d}/backend.key", "--mode", "echo"],
            stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
        procs.append(backend)
        backend_port = int(backend.stdout.readline().strip().rsplit(":", 1)[1])

        if etcd:
            client, peer = free_port(), free_port()
            member = subprocess.Popen(
                ["etcd", "--name", "m0", "--data-dir", f"{d}/etcd",
                 "--listen-client-urls", f"http://127.0.0.1:{client}",
                 "--advertise-client-urls", f"http://127.0.0.1:{client}",
                 "--listen-peer-urls", f"http://127.0.0.1:{peer}",
                 "--initial-advertise-peer-urls", f"http://127.0.0.1:{peer}",
                 "--initial-cluster", f"m0=http://127.0.0.1:{peer}", "--logger=zap",
                 "--log-outputs", f"{d}/etcd.log"],
                stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
            procs.append(member)

            def healthy():
                try:
                    with urllib.request.urlopen(f"http://127.0.0.1:{client}/health",
                                                timeout=2) as r:
                        return b'"true"' in r.read()
                except OSError:
                    return False
            eventually(healthy, "the etcd member to be healthy")
        with open(f"{d}/lastmiled.yaml", "w") as f:
            # The backend is on loopback, which lastmiled refuses to dial by default.
            f.write("workers: 2\nbindAddress: 127.0.0.1\n"
                    "allowedBackendNetworks: [\"127.0.0.0/8\", \"::1/128\"]\n")
            if cryptodev:
                f.write("cryptodev: {eal: [--vdev=crypto_openssl0], devices: [crypto_openssl0]}\n")
            if dropin:
                f.write(f"interception: {{cgroups: [{cgroup}], addresses: [{VIP}/32]}}\n")
            if etcd:
                f.write("nodeName: filtered\nstore:\n  type: etcd\n"
                        f"  endpoints: [\"http://127.0.0.1:{client}\"]\n  leaseTtl: 2s\n")
        log = open(f"{d}/lastmiled.log", "w")
        # A sanitizer build's LeakSanitizer stops the world with ptrace at exit, which the
        # filter rightly forbids; the other suites check leaks.
        daemon_env = dict(os.environ)
        daemon_env["ASAN_OPTIONS"] = daemon_env.get("ASAN_OPTIONS", "") + ":detect_leaks=0"
        admin = free_port()
        daemon = subprocess.Popen(
            [lastmiled, "--config", f"{d}/lastmiled.yaml", "--state-dir", f"{d}/state",
             "--api-socket", f"{d}/api.sock", "--admin-http", f"127.0.0.1:{admin}"],
            stdout=log, stderr=log, env=daemon_env, preexec_fn=lambda: load_filter(calls))
        procs.append(daemon)

        def logged(text):
            with open(f"{d}/lastmiled.log") as f:
                return text in f.read()
        eventually(lambda: logged("ready: ") or daemon.poll() is not None, "lastmiled to start")
        check_exit(daemon.poll(), None)

        env = dict(os.environ, LASTMILE_SERVER=f"unix://{d}/api.sock")
        port = free_port()
        with open(f"{d}/ca.crt") as f:
            ca_pem = f.read()
        subprocess.run([lastmilectl, "apply", "-f", "-"], env=env, check=True, capture_output=True,
                       input=manifests(port, backend_port, ca_pem, hostname).encode())

        def programmed():
            out = subprocess.run([lastmilectl, "get", "gateway", "edge", "-o", "json"], env=env,
                                 capture_output=True, text=True)
            conds = json.loads(out.stdout or "{}").get("status", {}).get("conditions", [])
            return any(c["type"] == "Programmed" and c["status"] == "True" for c in conds)
        eventually(programmed, "Gateway edge to be Programmed")

        payload = os.urandom(256 * 1024)
        assert echo_through(port, payload) == payload, "the echo through lastmiled differs"
        if dropin:
            assert echo_through(port, payload, cgroup) == payload, \
                "the echo through the virtual address differs"
        if cryptodev:
            with urllib.request.urlopen(f"http://127.0.0.1:{admin}/metrics", timeout=10) as r:
                metrics = r.read().decode()
            assert 'lastmile_engine_sessions_total{engine="cryptodev"} 1' in metrics, \
                "the session did not go to the cryptodev engine"
        if etcd:
            # Heartbeats rewrite the node's key: a few of them run under the filter too.
            time.sleep(2)
            out = subprocess.run([lastmilectl, "get", "nodes"], env=env, capture_output=True,
                                 text=True, check=True)
            assert "filtered" in out.stdout, out.stdout
        daemon.send_signal(signal.SIGHUP)
        eventually(lambda: logged("reloaded configuration"), "the SIGHUP reload")
        assert echo_through(port, payload) == payload, "the echo after SIGHUP differs"

        daemon.send_signal(signal.SIGTERM)
        check_exit(daemon.wait(timeout=60), 0)
        print(f"lastmiled ran under the unit's filter ({len(calls)} system calls allowed)")
    except BaseException:
        if os.path.exists(f"{d}/lastmiled.log"):
            with open(f"{d}/lastmiled.log") as f:
                sys.stderr.write(f.read()[-4000:])
        raise
    finally:
        for p in procs:
            if p.poll() is None:
                p.kill()
                p.wait()
        shutil.rmtree(d, ignore_errors=True)
        if cgroup:
            os.rmdir(cgroup)


main()
