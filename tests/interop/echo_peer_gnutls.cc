// SPDX-License-Identifier: Apache-2.0
// The interop suite's GnuTLS library backend: the line echo of echo_peer.py, for the cells
// gnutls-serv cannot play (it never ends a session itself).
//
// usage: interop-gnutls-peer CERT_CHAIN KEY VERSION   (VERSION: 1.2 or 1.3, the only one)
//
// Prints "PORT <n>" once it listens on 127.0.0.1:0, echoes every complete line, and on a
// line "CLOSE" ends the session itself (close_notify, then FIN) after echoing what came
// before it; otherwise it echoes until the client's end and then closes too. After each
// session one line on stdout: "SESSION echoed=<bytes> close_notify=<1|0> closed_by=<peer|client>".
#include <arpa/inet.h>
#include <netinet/in.h>
#include <signal.h>
#include <sys/socket.h>
#include <unistd.h>

#include <gnutls/gnutls.h>

#include <cstdio>
#include <cstring>
#include <string>
#include <string_view>

namespace {

constexpr std::string_view kTerminator = "CLOSE\n";

// One whole line per write(2), so that sessions served by different children never
// interleave their reports.
void report(const std::string& line) {
    const std::string out = line + "\n";
    if (::write(STDOUT_FILENO, out.data(), out.size()) != static_cast<ssize_t>(out.size())) {
        _exit(1);
    }
}

// Where the line "CLOSE" starts in `lines` (whole lines), or npos.
std::size_t terminatorAt(std::string_view lines) {
    if (lines.substr(0, kTerminator.size()) == kTerminator) {
        return 0;
    }
    const std::size_t at = lines.find(std::string("\n") + std::string(kTerminator));
    return at == std::string_view::npos ? at : at + 1;
}

bool sendAll(gnutls_session_t session, std::string_view data) {
    while (!data.empty()) {
        const ssize_t n = gnutls_record_send(session, data.data(), data.size());
        if (n < 0) {
            if (n == GNUTLS_E_AGAIN || n == GNUTLS_E_INTERRUPTED) {
                continue;
            }
            report(std::string("ERROR send: ") + gnutls_strerror(static_cast<int>(n)));
            return false;
        }
        data.remove_prefix(static_cast<std::size_t>(n));
    }
    return true;
}

void serve(gnutls_session_t session) {
    std::size_t echoed = 0;
    bool closeNotify = false;
    const char* closedBy = "client";
    std::string pending;
    char buf[16384];
    for (;;) {
        const ssize_t n = gnutls_record_recv(session, buf, sizeof(buf));
        if (n == GNUTLS_E_AGAIN || n == GNUTLS_E_INTERRUPTED) {
            continue;
        }
        if (n == 0) {  // the client's close_notify
            closeNotify = true;
            break;
        }
        if (n < 0) {  // GNUTLS_E_PREMATURE_TERMINATION: a FIN without close_notify
            if (n != GNUTLS_E_PREMATURE_TERMINATION) {
                report(std::string("ERROR recv: ") + gnutls_strerror(static_cast<int>(n)));
            }
            break;
        }
        pending.append(buf, static_cast<std::size_t>(n));
        const std::size_t cut = pending.rfind('\n') + 1;  // 0 when there is no newline
        const std::string_view lines(pending.data(), cut);
        if (const std::size_t end = terminatorAt(lines); end != std::string_view::npos) {
            if (sendAll(session, lines.substr(0, end))) {
                echoed += end;
            }
            closedBy = "peer";
            pending.clear();
            break;
        }
        if (!sendAll(session, lines)) {
            break;
        }
        echoed += cut;
        pending.erase(0, cut);
    }
    if (!pending.empty() && sendAll(session, pending)) {
        echoed += pending.size();  // a last line without its newline
    }
    // Our close_notify; the TCP close that follows is the FIN.
    gnutls_bye(session, GNUTLS_SHUT_WR);
    report("SESSION echoed=" + std::to_string(echoed) + " close_notify=" +
           (closeNotify ? "1" : "0") + " closed_by=" + closedBy);
}

}  // namespace

int main(int argc, char** argv) {
    if (argc != 4) {
        std::fprintf(stderr, "usage: %s CERT_CHAIN KEY VERSION\n", argv[0]);
        return 2;
    }
    const std::string priority =
        std::string("NORMAL:-VERS-ALL:+VERS-TLS") + (std::string(argv[3]) == "1.3" ? "1.3" : "1.2");
    gnutls_certificate_credentials_t creds;
    int rc = gnutls_certificate_allocate_credentials(&creds);
    if (rc >= 0) {
        rc = gnutls_certificate_set_x509_key_file(creds, argv[1], argv[2], GNUTLS_X509_FMT_PEM);
    }
    if (rc < 0) {
        std::fprintf(stderr, "loading the certificate: %s\n", gnutls_strerror(rc));
        return 1;
    }
    const int listener = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    sockaddr_in a{};
    a.sin_family = AF_INET;
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    socklen_t len = sizeof(a);
    if (listener == -1 || ::bind(listener, reinterpret_cast<sockaddr*>(&a), sizeof(a)) == -1 ||
        ::listen(listener, 16) == -1 ||
        ::getsockname(listener, reinterpret_cast<sockaddr*>(&a), &len) == -1) {
        std::perror("listening on 127.0.0.1");
        return 1;
    }
    ::signal(SIGCHLD, SIG_IGN);  // children are never waited for
    ::signal(SIGPIPE, SIG_IGN);  // a reset peer is an error return, not a death
    report("PORT " + std::to_string(ntohs(a.sin_port)));
    for (;;) {
        const int fd = ::accept4(listener, nullptr, nullptr, SOCK_CLOEXEC);
        if (fd == -1) {
            continue;
        }
        if (::fork() != 0) {  // the parent (or a failed fork) only accepts
            ::close(fd);
            continue;
        }
        ::close(listener);
        gnutls_session_t session;
        gnutls_init(&session, GNUTLS_SERVER);
        gnutls_priority_set_direct(session, priority.c_str(), nullptr);
        gnutls_credentials_set(session, GNUTLS_CRD_CERTIFICATE, creds);
        gnutls_transport_set_int(session, fd);
        do {
            rc = gnutls_handshake(session);
        } while (rc < 0 && gnutls_error_is_fatal(rc) == 0);
        if (rc < 0) {
            report(std::string("ERROR handshake: ") + gnutls_strerror(rc));
        } else {
            serve(session);
        }
        gnutls_deinit(session);
        ::close(fd);
        _exit(0);
    }
}
