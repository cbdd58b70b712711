#!/usr/bin/python3
# SPDX-License-Identifier: Apache-2.0
"""The interop suite's Python ssl (OpenSSL) backend: a line echo over TLS.

usage: echo_peer.py CERT_CHAIN KEY VERSION   (VERSION: 1.2 or 1.3, pinned as min and max)

Same protocol as echo_peer.go: prints "PORT <n>" once it listens on 127.0.0.1, echoes every
complete line, and on a line "CLOSE" ends the session itself (close_notify, then FIN) after
echoing what came before it. Otherwise it echoes until the client's end and then closes too.
One line per session on stdout, after its end, is what the test reads:
"SESSION echoed=<bytes> close_notify=<1|0> closed_by=<peer|client>", where close_notify says
whether the client's end (when it ended first) came with a close_notify or was a bare FIN.
"""
import socket
import ssl
import sys
import threading

TERMINATOR = b"CLOSE\n"
stdout_lock = threading.Lock()


def report(line):
    with stdout_lock:
        print(line, flush=True)


def terminator_at(lines):
    """Where the line "CLOSE" starts in `lines` (whole lines), or -1."""
    if lines.startswith(TERMINATOR):
        return 0
    at = lines.find(b"\n" + TERMINATOR)
    return at + 1 if at >= 0 else -1


def serve(conn):
    echoed = 0
    close_notify = 0
    closed_by = "client"
    pending = b""
    try:
        while True:
            try:
                data = conn.recv(16384)
            except ssl.SSLError as e:
                if e.reason != "UNEXPECTED_EOF_WHILE_READING":
                    raise
                break  # a FIN without close_notify
            if not data:  # suppress_ragged_eofs=False: only a close_notify gives b""
                close_notify = 1
                break
            pending += data
            cut = pending.rfind(b"\n") + 1
            lines, pending = pending[:cut], pending[cut:]
            end = terminator_at(lines)
            if end >= 0:
                conn.sendall(lines[:end])
                echoed += end
                closed_by = "peer"
                break
            conn.sendall(lines)
            echoed += len(lines)
        if closed_by == "client" and pending:
            conn.sendall(pending)  # a last line without its newline
            echoed += len(pending)
        try:
            conn.unwrap()  # sends close_notify; waits for the client's only if it has not come
        except (ssl.SSLError, OSError):
            pass
    except (ssl.SSLError, OSError) as e:
        report(f"ERROR {e}")
    finally:
        conn.close()
        report(f"SESSION echoed={echoed} close_notify={close_notify} closed_by={closed_by}")


def main():
    chain, key, version = sys.argv[1:4]
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ctx.load_cert_chain(chain, key)
    # Python sets it by default; without it OpenSSL tells a bare FIN from a close_notify.
    ctx.options &= ~ssl.OP_IGNORE_UNEXPECTED_EOF
    pinned = ssl.TLSVersion.TLSv1_3 if version == "1.3" else ssl.TLSVersion.TLSv1_2
    ctx.minimum_version = pinned
    ctx.maximum_version = pinned
    listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    listener.bind(("127.0.0.1", 0))
    listener.listen(16)
    report(f"PORT {listener.getsockname()[1]}")
    while True:
        raw, _ = listener.accept()
        conn = ctx.wrap_socket(raw, server_side=True, suppress_ragged_eofs=False,
                               do_handshake_on_connect=False)
        threading.Thread(target=lambda c=conn: handshake_and_serve(c), daemon=True).start()


def handshake_and_serve(conn):
    try:
        conn.do_handshake()
    except (ssl.SSLError, OSError) as e:
        report(f"ERROR handshake: {e}")
        conn.close()
        return
    serve(conn)


if __name__ == "__main__":
    main()
