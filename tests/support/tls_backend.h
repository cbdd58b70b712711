// SPDX-License-Identifier: Apache-2.0
// TlsBackend: an event-driven TLS (or plaintext) backend on loopback that records what it saw.
#pragma once

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstddef>
#include <cstdint>
#include <functional>
#include <memory>
#include <mutex>
#include <optional>
#include <span>
#include <string>
#include <thread>
#include <vector>

#include "base/result.h"
#include "base/unique_fd.h"
#include "dataplane/tls/openssl_handles.h"
#include "dataplane/tls/profile_spec.h"
#include "tests/support/test_pki.h"

namespace lastmile::test {

// What the backend does with a connection once the handshake is done.
enum class BackendMode {
    // Echo every byte back. On the client's close_notify (or EOF) flush, send close_notify,
    // then shut down the TCP write side, so a proxy's half-close is observable end to end.
    Echo,
    // Read to EOF, then answer one line "sha256=<hex> bytes=<n>\n" and close.
    Sink,
    // Write `sourceBytes` bytes of the source pattern (see sourcePatternByte), then
    // close_notify and close. sourceBytes == 0 streams until the client goes away.
    Source,
    // HTTP/1.1 keep-alive: "GET /<n>" is answered 200 with n pattern bytes (Content-Length);
    // any other path gets "ok\n". "Connection: close" closes after the response; the
    // client's EOF closes once the requests already received are answered. No request bodies.
    Http,
};

// One entry per accepted connection, added when its handshake completes or fails (plain
// mode: when it is accepted). byte counters and `closed` keep updating until it closes.
struct Observation {
    std::string sni;       // empty if the client sent none
    std::string alpn;      // negotiated protocol, empty if none
    std::string version;   // "TLSv1.3", "TLSv1.2"; empty in plain mode or on handshake failure
    std::string cipher;    // OpenSSL cipher name, e.g. "TLS_AES_256_GCM_SHA384"
    std::string clientCn;  // subject CN of the verified client certificate, empty if none
    bool resumed = false;  // SSL_session_reused
    bool handshakeOk = false;
    std::string handshakeError;  // why the handshake failed; empty when handshakeOk
    std::uint64_t bytesReceived = 0;  // application (plaintext) bytes from the client
    std::uint64_t bytesSent = 0;      // application bytes we wrote
    bool closeNotifyReceived = false;  // the client ended with close_notify, not a bare EOF
    bool closed = false;
};

struct TlsBackendOptions {
    // Listen address: an IPv4 or IPv6 literal. Port 0 picks an ephemeral port (see port()).
    std::string host = "127.0.0.1";
    std::uint16_t port = 0;

    // Server certificate: chainPem (leaf first) and keyPem are used. Ignored when `plain`.
    IssuedCert serverCert;
    // Trusted CAs for client certificates (PEM, may hold several). Empty: no client certs
    // are requested.
    std::string clientCaPem;
    // Fail the handshake without a valid client certificate (needs clientCaPem).
    bool requireClientCert = false;

    std::optional<tls::TlsVersion> minVersion;  // default: OpenSSL's (TLS 1.2 on Debian 12)
    std::optional<tls::TlsVersion> maxVersion;  // default: TLS 1.3
    std::string cipherList;    // TLS <= 1.2 OpenSSL cipher string; empty = default
    std::string cipherSuites;  // TLS 1.3 suites ("TLS_AES_128_GCM_SHA256:..."); empty = default
    std::string groups;        // "X25519:P-256"; empty = default
    // ALPN protocols the server supports, in preference order. The first protocol in the
    // client's list that we support is chosen; no overlap (or empty) -> no ALPN.
    std::vector<std::string> alpn;
    // Session tickets (TLS 1.2 and 1.3), so clients can resume. false: no tickets, hence no
    // TLS 1.3 resumption; TLS 1.2 session-ID resumption (server cache) still works.
    bool sessionTickets = true;

    // No TLS at all: a plaintext TCP backend (observations carry empty TLS fields).
    bool plain = false;

    BackendMode mode = BackendMode::Echo;
    std::uint64_t sourceBytes = 0;  // Source mode: 0 = unlimited
    // false: end every stream with a bare TCP FIN, no close_notify (a truncation attack).
    bool closeNotify = true;
    // After sending close_notify, read on until the client's EOF (a TLS half-close). false:
    // close the socket at once, so bytes the client sends later draw a TCP reset.
    bool readAfterCloseNotify = true;
    // Echo and Source modes over TLS 1.3: once this many application bytes were sent, send
    // one KeyUpdate (update_not_requested) and carry on under the new keys. 0 = never.
    std::uint64_t keyUpdateAfterBytes = 0;
    // That KeyUpdate asks the client to update its keys too (update_requested).
    bool keyUpdateRequested = false;
    // TLS 1.3 record padding: records are padded to a multiple of this many bytes
    // (SSL_CTX_set_block_padding). 0 = none.
    std::size_t blockPadding = 0;

    // Event-loop threads, each with its own SO_REUSEPORT listener on the same port.
    unsigned workers = 1;

    // Called on a loop thread (concurrently from several workers) when a connection closes,
    // with its final observation. Must not throw and must not call back into the backend.
    std::function<void(const Observation&)> onConnectionClosed;
};

// The Source/Http body byte at stream offset `offset`: (offset % 251), a prime period so
// that shifted or dropped chunks are detected.
constexpr std::uint8_t sourcePatternByte(std::uint64_t offset) noexcept {
    return static_cast<std::uint8_t>(offset % 251);
}
// True if `data` equals the pattern starting at stream offset `offset`.
bool matchesSourcePattern(std::uint64_t offset, std::span<const std::uint8_t> data) noexcept;

class TlsBackend {
public:
    // Builds the SSL_CTX, binds the listeners and starts the loop threads. Errors: invalid
    // certificate/key/cipher/group options, bind failures. Loop threads block SIGPIPE for
    // themselves; the process's signal dispositions are not touched.
    static Result<std::unique_ptr<TlsBackend>> start(TlsBackendOptions options);

    TlsBackend(const TlsBackend&) = delete;
    TlsBackend& operator=(const TlsBackend&) = delete;
    ~TlsBackend();  // stop()s

    std::uint16_t port() const noexcept { return port_; }
    const std::string& host() const noexcept { return options_.host; }
    // "127.0.0.1:PORT" ("[::1]:PORT" for IPv6), ready for a route's backend address.
    std::string endpoint() const;

    // Snapshot of all observations so far, in the order handshakes finished. Thread-safe.
    std::vector<Observation> observations() const;
    // TCP connections accepted (including those whose handshake failed or is in progress).
    std::size_t acceptedConnections() const noexcept;
    // Connections whose TLS handshake failed (including clients that closed before finishing).
    std::size_t failedHandshakes() const noexcept;
    // Plaintext bytes received over all connections.
    std::uint64_t totalBytesReceived() const noexcept;

    // Waits until at least `n` observations exist (handshakes done or failed); false on timeout.
    bool waitForObservations(std::size_t n, std::chrono::milliseconds timeout) const;
    // Waits until at least `n` observed connections have closed; false on timeout.
    bool waitForClosed(std::size_t n, std::chrono::milliseconds timeout) const;

    // Stops accepting, closes every connection and joins the loop threads. Idempotent.
    void stop();

private:
    struct Worker;  // one event loop: listener, epoll, connections (tls_backend.cc)

    explicit TlsBackend(TlsBackendOptions options);

    // Appends an observation and returns its index; notifies waiters.
    std::size_t addObservation(Observation o);
    void updateObservation(std::size_t index, std::uint64_t addReceived, std::uint64_t addSent,
                           bool closeNotify, bool closed);

    TlsBackendOptions options_;
    tls::SslCtxPtr ctx_;
    std::uint16_t port_ = 0;
    UniqueFd stopFd_;  // eventfd: readable once stop() is called
    std::vector<std::unique_ptr<Worker>> workers_;
    std::vector<std::thread> threads_;
    std::atomic<bool> stopped_{false};

    std::atomic<std::size_t> accepted_{0};
    std::atomic<std::size_t> failed_{0};
    std::atomic<std::uint64_t> totalReceived_{0};

    mutable std::mutex mu_;
    mutable std::condition_variable cv_;
    std::vector<Observation> observations_;
    std::size_t closedCount_ = 0;
};

}  // namespace lastmile::test
