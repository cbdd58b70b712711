// SPDX-License-Identifier: Apache-2.0
// TlsBackend: level-triggered epoll loops driving non-blocking OpenSSL server connections.
#include "tests/support/tls_backend.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/x509.h>
#include <signal.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <exception>
#include <unordered_map>
#include <utility>

namespace lastmile::test {
namespace {

constexpr std::size_t kIoChunk = 64 * 1024;
// Echo stops reading while this much is waiting to go back, so a slow reader gets
// TCP backpressure instead of unbounded buffering.
constexpr std::size_t kMaxPendingOut = 1024 * 1024;
constexpr std::size_t kMaxHttpHead = 64 * 1024;
constexpr std::size_t kPatternPeriod = 251;
// Reads/writes per connection per wake-up before yielding to the others.
constexpr int kIoBudget = 16;

using EvpMdCtxPtr = Handle<EVP_MD_CTX, EVP_MD_CTX_free>;

// kIoChunk + one period of the pattern, so any offset has a full chunk behind it.
const std::uint8_t* patternTable() {
    static const std::vector<std::uint8_t> table = [] {
        std::vector<std::uint8_t> t(kIoChunk + kPatternPeriod);
        for (std::size_t i = 0; i < t.size(); ++i) {
            t[i] = sourcePatternByte(i);
        }
        return t;
    }();
    return table.data();
}

std::string drainSslErrors() {
    std::string text;
    char buf[256];
    while (unsigned long e = ERR_get_error()) {
        ERR_error_string_n(e, buf, sizeof buf);
        if (!text.empty()) {
            text += "; ";
        }
        text += buf;
    }
    return text;
}

std::string subjectCn(X509* cert) {
    X509_NAME* name = X509_get_subject_name(cert);
    int idx = X509_NAME_get_index_by_NID(name, NID_commonName, -1);
    if (idx < 0) {
        return {};
    }
    ASN1_STRING* data = X509_NAME_ENTRY_get_data(X509_NAME_get_entry(name, idx));
    unsigned char* utf8 = nullptr;
    int len = ASN1_STRING_to_UTF8(&utf8, data);
    if (len < 0) {
        return {};
    }
    std::string cn(reinterpret_cast<char*>(utf8), static_cast<std::size_t>(len));
    OPENSSL_free(utf8);
    return cn;
}

// Picks the first protocol in the client's list that the server supports.
int selectAlpn(SSL*, const unsigned char** out, unsigned char* outlen, const unsigned char* in,
               unsigned int inlen, void* arg) {
    const auto* ours = static_cast<const std::vector<std::string>*>(arg);
    unsigned int i = 0;
    while (i < inlen) {
        unsigned int len = in[i];
        if (i + 1 + len > inlen) {
            break;
        }
        std::string_view proto(reinterpret_cast<const char*>(in + i + 1), len);
        if (std::find(ours->begin(), ours->end(), proto) != ours->end()) {
            *out = in + i + 1;
            *outlen = static_cast<unsigned char>(len);
            return SSL_TLSEXT_ERR_OK;
        }
        i += 1 + len;
    }
    return SSL_TLSEXT_ERR_NOACK;
}

int protoVersion(tls::TlsVersion v) {
    return v == tls::TlsVersion::Tls12 ? TLS1_2_VERSION : TLS1_3_VERSION;
}

Result<tls::SslCtxPtr> buildContext(const TlsBackendOptions& o) {
    tls::SslCtxPtr ctx;
    try {
        ctx = makeServerContext(o.serverCert);
    } catch (const std::exception& e) {
        return fail(Errc::Invalid, std::string("loading the backend certificate: ") + e.what());
    }
    if (o.minVersion &&
        SSL_CTX_set_min_proto_version(ctx.get(), protoVersion(*o.minVersion)) != 1) {
        return tls::sslFail("setting the minimum TLS version");
    }
    if (o.maxVersion &&
        SSL_CTX_set_max_proto_version(ctx.get(), protoVersion(*o.maxVersion)) != 1) {
        return tls::sslFail("setting the maximum TLS version");
    }
    if (!o.cipherList.empty() && SSL_CTX_set_cipher_list(ctx.get(), o.cipherList.c_str()) != 1) {
        return tls::sslFail("setting cipher list " + o.cipherList);
    }
    if (!o.cipherSuites.empty() &&
        SSL_CTX_set_ciphersuites(ctx.get(), o.cipherSuites.c_str()) != 1) {
        return tls::sslFail("setting TLS 1.3 ciphersuites " + o.cipherSuites);
    }
    if (!o.groups.empty() && SSL_CTX_set1_groups_list(ctx.get(), o.groups.c_str()) != 1) {
        return tls::sslFail("setting groups " + o.groups);
    }
    if (!o.clientCaPem.empty()) {
        tls::BioPtr bio(
            BIO_new_mem_buf(o.clientCaPem.data(), static_cast<int>(o.clientCaPem.size())));
        X509_STORE* store = SSL_CTX_get_cert_store(ctx.get());
        int loaded = 0;
        for (;;) {
            tls::X509Ptr ca(PEM_read_bio_X509(bio.get(), nullptr, nullptr, nullptr));
            if (!ca) {
                ERR_clear_error();
                break;
            }
            if (X509_STORE_add_cert(store, ca.get()) != 1 ||
                SSL_CTX_add_client_CA(ctx.get(), ca.get()) != 1) {
                return tls::sslFail("adding a client CA");
            }
            ++loaded;
        }
        if (loaded == 0) {
            return fail(Errc::Invalid, "the client CA PEM holds no certificate");
        }
        SSL_CTX_set_verify(ctx.get(),
                           SSL_VERIFY_PEER |
                               (o.requireClientCert ? SSL_VERIFY_FAIL_IF_NO_PEER_CERT : 0),
                           nullptr);
    } else if (o.requireClientCert) {
        return fail(Errc::Invalid, "requireClientCert needs clientCaPem");
    }
    if (!o.alpn.empty()) {
        SSL_CTX_set_alpn_select_cb(ctx.get(), selectAlpn,
                                   const_cast<std::vector<std::string>*>(&o.alpn));
    }
    // Resumption with client certificates needs a session id context.
    static const unsigned char kSidCtx[] = "lm-test-backend";
    if (SSL_CTX_set_session_id_context(ctx.get(), kSidCtx, sizeof kSidCtx - 1) != 1) {
        return tls::sslFail("setting the session id context");
    }
    if (!o.sessionTickets) {
        SSL_CTX_set_options(ctx.get(), SSL_OP_NO_TICKET);
        SSL_CTX_set_num_tickets(ctx.get(), 0);
    }
    if (o.blockPadding != 0 && SSL_CTX_set_block_padding(ctx.get(), o.blockPadding) != 1) {
        return tls::sslFail("setting the record padding");
    }
    SSL_CTX_set_mode(ctx.get(),
                     SSL_MODE_ENABLE_PARTIAL_WRITE | SSL_MODE_ACCEPT_MOVING_WRITE_BUFFER);
    // Several records per read(2). Safe with level-triggered epoll because drive() reads
    // until WANT_READ (or queues the connection in `ready`), never leaving data in OpenSSL.
    SSL_CTX_set_read_ahead(ctx.get(), 1);
    SSL_CTX_set_default_read_buffer_len(ctx.get(), kIoChunk + 1024);
    return ctx;
}

struct SockAddr {
    sockaddr_storage storage{};
    socklen_t len = 0;
};

Result<SockAddr> parseAddress(const std::string& host, std::uint16_t port) {
    SockAddr a;
    auto* v4 = reinterpret_cast<sockaddr_in*>(&a.storage);
    auto* v6 = reinterpret_cast<sockaddr_in6*>(&a.storage);
    if (inet_pton(AF_INET, host.c_str(), &v4->sin_addr) == 1) {
        v4->sin_family = AF_INET;
        v4->sin_port = htons(port);
        a.len = sizeof(sockaddr_in);
    } else if (inet_pton(AF_INET6, host.c_str(), &v6->sin6_addr) == 1) {
        v6->sin6_family = AF_INET6;
        v6->sin6_port = htons(port);
        a.len = sizeof(sockaddr_in6);
    } else {
        return fail(Errc::Invalid, "listen host is not an IP literal: " + host);
    }
    return a;
}

Result<UniqueFd> makeListener(const SockAddr& addr, bool reusePort) {
    UniqueFd fd(::socket(addr.storage.ss_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0));
    if (!fd.valid()) {
        return failErrno("creating the backend listener");
    }
    int one = 1;
    if (::setsockopt(fd.get(), SOL_SOCKET, SO_REUSEADDR, &one, sizeof one) == -1) {
        return failErrno("setting SO_REUSEADDR");
    }
    if (reusePort && ::setsockopt(fd.get(), SOL_SOCKET, SO_REUSEPORT, &one, sizeof one) == -1) {
        return failErrno("setting SO_REUSEPORT");
    }
    if (::bind(fd.get(), reinterpret_cast<const sockaddr*>(&addr.storage), addr.len) == -1) {
        return failErrno("binding the backend listener");
    }
    if (::listen(fd.get(), 4096) == -1) {
        return failErrno("listening");
    }
    return fd;
}

}  // namespace

std::string TlsBackend::endpoint() const {
    bool v6 = options_.host.find(':') != std::string::npos;
    return (v6 ? "[" + options_.host + "]" : options_.host) + ":" + std::to_string(port_);
}

bool matchesSourcePattern(std::uint64_t offset, std::span<const std::uint8_t> data) noexcept {
    const std::uint8_t* table = patternTable();
    std::size_t done = 0;
    while (done < data.size()) {
        std::size_t n = std::min(data.size() - done, kIoChunk);
        if (std::memcmp(data.data() + done, table + (offset + done) % kPatternPeriod, n) != 0) {
            return false;
        }
        done += n;
    }
    return true;
}

struct TlsBackend::Worker {
    struct Conn {
        UniqueFd fd;
        tls::SslPtr ssl;  // null in plain mode
        bool handshaking = false;
        bool peerEof = false;
        bool closeNotify = false;
        bool finishing = false;     // end once the output is flushed
        bool shutdownSent = false;  // close_notify + SHUT_WR done; wait for the peer's EOF
        bool writeBlocked = false;  // the last write wanted EPOLLOUT
        bool readWantsWrite = false;
        bool writeWantsRead = false;
        std::vector<std::uint8_t> out;
        std::size_t outOff = 0;
        std::uint64_t genRemaining = 0;  // pattern bytes still to write
        bool genUnlimited = false;
        std::uint64_t genOffset = 0;
        EvpMdCtxPtr sha;
        std::string in;  // Http: unparsed request bytes
        std::size_t obsIndex = SIZE_MAX;
        std::uint64_t pendRecv = 0;
        std::uint64_t pendSent = 0;
        std::uint64_t totalRecv = 0;
        std::uint64_t totalSent = 0;
        bool keyUpdated = false;
        std::uint32_t events = 0;

        std::size_t outPending() const { return out.size() - outOff; }
        bool genActive() const { return genUnlimited || genRemaining > 0; }
        bool hasOut() const { return outPending() > 0 || genActive(); }
    };

    enum class Io { Ok, Blocked, Eof, Error };

    TlsBackend& owner;
    UniqueFd listenFd;
    UniqueFd epollFd;
    std::unordered_map<int, std::unique_ptr<Conn>> conns;
    std::vector<int> ready;  // connections that ran out of budget with work left
    std::vector<std::uint8_t> readBuf = std::vector<std::uint8_t>(kIoChunk);

    explicit Worker(TlsBackend& o) : owner(o) {}

    const TlsBackendOptions& opts() const { return owner.options_; }

    void run() {
        // OpenSSL writes through write(2): a peer reset must be EPIPE here, not a signal.
        sigset_t set;
        sigemptyset(&set);
        sigaddset(&set, SIGPIPE);
        pthread_sigmask(SIG_BLOCK, &set, nullptr);

        std::vector<epoll_event> events(256);
        for (;;) {
            int timeout = ready.empty() ? -1 : 0;
            int n = ::epoll_wait(epollFd.get(), events.data(), static_cast<int>(events.size()),
                                 timeout);
            if (n == -1) {
                if (errno == EINTR) {
                    continue;
                }
                break;
            }
            bool stop = false;
            for (int i = 0; i < n; ++i) {
                int fd = events[static_cast<std::size_t>(i)].data.fd;
                if (fd == owner.stopFd_.get()) {
                    stop = true;
                } else if (fd == listenFd.get()) {
                    acceptAll();
                } else {
                    driveFd(fd);
                }
            }
            if (stop) {
                break;
            }
            std::vector<int> again;
            again.swap(ready);
            for (int fd : again) {
                driveFd(fd);
            }
        }
        for (auto& [fd, conn] : conns) {
            finish(*conn);
        }
        conns.clear();
    }

    void acceptAll() {
        for (;;) {
            int cfd = ::accept4(listenFd.get(), nullptr, nullptr, SOCK_NONBLOCK | SOCK_CLOEXEC);
            if (cfd == -1) {
                return;  // EAGAIN, or out of fds: level-triggered epoll retries later
            }
            owner.accepted_.fetch_add(1, std::memory_order_relaxed);
            auto c = std::make_unique<Conn>();
            c->fd.reset(cfd);
            int one = 1;
            ::setsockopt(cfd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
            if (opts().plain) {
                Observation o;
                o.handshakeOk = true;
                c->obsIndex = owner.addObservation(std::move(o));
                startMode(*c);
            } else {
                c->ssl.reset(SSL_new(owner.ctx_.get()));
                if (!c->ssl || SSL_set_fd(c->ssl.get(), cfd) != 1) {
                    ERR_clear_error();
                    continue;
                }
                SSL_set_accept_state(c->ssl.get());
                c->handshaking = true;
            }
            epoll_event ev{};
            ev.events = EPOLLIN;
            ev.data.fd = cfd;
            c->events = EPOLLIN;
            if (::epoll_ctl(epollFd.get(), EPOLL_CTL_ADD, cfd, &ev) == -1) {
                finish(*c);
                continue;
            }
            Conn* raw = c.get();
            conns.emplace(cfd, std::move(c));
            if (opts().plain) {
                driveFd(raw->fd.get());
            }
        }
    }

    void startMode(Conn& c) {
        switch (opts().mode) {
            case BackendMode::Source:
                c.genUnlimited = opts().sourceBytes == 0;
                c.genRemaining = opts().sourceBytes;
                break;
            case BackendMode::Sink:
                c.sha.reset(EVP_MD_CTX_new());
                EVP_DigestInit_ex(c.sha.get(), EVP_sha256(), nullptr);
                break;
            case BackendMode::Echo:
            case BackendMode::Http:
                break;
        }
    }

    void driveFd(int fd) {
        auto it = conns.find(fd);
        if (it == conns.end()) {
            return;
        }
        Conn& c = *it->second;
        if (!drive(c)) {
            finish(c);
            conns.erase(it);
        }
    }

    void onHandshakeFailed(Conn& c, int err) {
        Observation o;
        if (const char* sni = SSL_get_servername(c.ssl.get(), TLSEXT_NAMETYPE_host_name)) {
            o.sni = sni;
        }
        std::string text;
        if (err == SSL_ERROR_SYSCALL) {
            text = errno != 0 ? std::string(std::strerror(errno)) : "EOF during handshake";
            if (std::string ssl = drainSslErrors(); !ssl.empty()) {
                text += "; " + ssl;
            }
        } else {
            text = drainSslErrors();
        }
        long verify = SSL_get_verify_result(c.ssl.get());
        if (verify != X509_V_OK) {
            text += std::string(text.empty() ? "" : "; ") + "client certificate: " +
                    X509_verify_cert_error_string(verify);
        }
        o.handshakeError = text.empty() ? "handshake failed" : text;
        o.closed = true;
        owner.failed_.fetch_add(1, std::memory_order_relaxed);
        c.obsIndex = owner.addObservation(std::move(o));
        ERR_clear_error();
    }

    void onHandshakeDone(Conn& c) {
        SSL* ssl = c.ssl.get();
        Observation o;
        o.handshakeOk = true;
        if (const char* sni = SSL_get_servername(ssl, TLSEXT_NAMETYPE_host_name)) {
            o.sni = sni;
        }
        const unsigned char* alpn = nullptr;
        unsigned int alpnLen = 0;
        SSL_get0_alpn_selected(ssl, &alpn, &alpnLen);
        if (alpn != nullptr) {
            o.alpn.assign(reinterpret_cast<const char*>(alpn), alpnLen);
        }
        o.version = SSL_get_version(ssl);
        o.cipher = SSL_get_cipher_name(ssl);
        if (X509* peer = SSL_get0_peer_certificate(ssl)) {
            o.clientCn = subjectCn(peer);
        }
        o.resumed = SSL_session_reused(ssl) == 1;
        c.obsIndex = owner.addObservation(std::move(o));
        startMode(c);
    }

    Io readSome(Conn& c, std::size_t& got) {
        got = 0;
        if (!c.ssl) {
            ssize_t n = ::read(c.fd.get(), readBuf.data(), readBuf.size());
            if (n > 0) {
                got = static_cast<std::size_t>(n);
                return Io::Ok;
            }
            if (n == 0) {
                return Io::Eof;
            }
            return errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR ? Io::Blocked
                                                                             : Io::Error;
        }
        ERR_clear_error();
        int n = SSL_read(c.ssl.get(), readBuf.data(), static_cast<int>(readBuf.size()));
        if (n > 0) {
            got = static_cast<std::size_t>(n);
            return Io::Ok;
        }
        int err = SSL_get_error(c.ssl.get(), n);
        switch (err) {
            case SSL_ERROR_WANT_READ:
                return Io::Blocked;
            case SSL_ERROR_WANT_WRITE:
                c.readWantsWrite = true;
                return Io::Blocked;
            case SSL_ERROR_ZERO_RETURN:
                c.closeNotify = true;
                return Io::Eof;
            case SSL_ERROR_SSL:
                if (ERR_GET_REASON(ERR_peek_error()) == SSL_R_UNEXPECTED_EOF_WHILE_READING) {
                    ERR_clear_error();
                    return Io::Eof;
                }
                ERR_clear_error();
                return Io::Error;
            case SSL_ERROR_SYSCALL:
                ERR_clear_error();
                return errno == 0 ? Io::Eof : Io::Error;
            default:
                ERR_clear_error();
                return Io::Error;
        }
    }

    Io writeSome(Conn& c, const std::uint8_t* data, std::size_t len, std::size_t& wrote) {
        wrote = 0;
        if (!c.ssl) {
            ssize_t n = ::send(c.fd.get(), data, len, MSG_NOSIGNAL);
            if (n >= 0) {
                wrote = static_cast<std::size_t>(n);
                return Io::Ok;
            }
            if (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR) {
                c.writeBlocked = true;
                return Io::Blocked;
            }
            return Io::Error;
        }
        ERR_clear_error();
        int n = SSL_write(c.ssl.get(), data, static_cast<int>(std::min<std::size_t>(len, 1 << 30)));
        if (n > 0) {
            wrote = static_cast<std::size_t>(n);
            return Io::Ok;
        }
        switch (SSL_get_error(c.ssl.get(), n)) {
            case SSL_ERROR_WANT_WRITE:
                c.writeBlocked = true;
                return Io::Blocked;
            case SSL_ERROR_WANT_READ:
                c.writeWantsRead = true;
                return Io::Blocked;
            default:
                ERR_clear_error();
                return Io::Error;
        }
    }

    // Application bytes that may still go out before the KeyUpdate is due (SIZE_MAX: no limit).
    // Sends the KeyUpdate when it is due.
    std::size_t keyUpdateLimit(Conn& c) {
        const std::uint64_t after = opts().keyUpdateAfterBytes;
        if (after == 0 || c.keyUpdated || !c.ssl ||
            (opts().mode != BackendMode::Echo && opts().mode != BackendMode::Source)) {
            return SIZE_MAX;
        }
        if (c.totalSent < after) {
            return static_cast<std::size_t>(after - c.totalSent);
        }
        c.keyUpdated = true;
        ERR_clear_error();
        // Queued here, written by SSL_do_handshake now or by the next SSL_write: either way
        // ahead of every byte sent after this point.
        if (SSL_key_update(c.ssl.get(), opts().keyUpdateRequested ? SSL_KEY_UPDATE_REQUESTED
                                                                  : SSL_KEY_UPDATE_NOT_REQUESTED) ==
            1) {
            SSL_do_handshake(c.ssl.get());
        }
        ERR_clear_error();
        return SIZE_MAX;
    }

    // Writes pending output and generated pattern bytes. False on a fatal write error.
    bool flush(Conn& c, int& budget, bool& progress) {
        while (c.hasOut() && budget > 0) {
            --budget;
            std::size_t wrote = 0;
            Io r;
            const std::size_t limit = keyUpdateLimit(c);
            if (c.outPending() > 0) {
                r = writeSome(c, c.out.data() + c.outOff, std::min(c.outPending(), limit), wrote);
                c.outOff += wrote;
                if (c.outOff == c.out.size()) {
                    c.out.clear();
                    c.outOff = 0;
                } else if (c.outOff > kMaxPendingOut / 4) {
                    c.out.erase(c.out.begin(),
                                c.out.begin() + static_cast<std::ptrdiff_t>(c.outOff));
                    c.outOff = 0;
                }
            } else {
                std::size_t len = c.genUnlimited ? kIoChunk
                                                 : static_cast<std::size_t>(std::min<std::uint64_t>(
                                                       c.genRemaining, kIoChunk));
                len = std::min(len, limit);
                r = writeSome(c, patternTable() + c.genOffset % kPatternPeriod, len, wrote);
                c.genOffset += wrote;
                if (!c.genUnlimited) {
                    c.genRemaining -= wrote;
                }
            }
            c.pendSent += wrote;
            c.totalSent += wrote;
            if (wrote > 0) {
                progress = true;
            }
            if (r == Io::Error) {
                return false;
            }
            if (r == Io::Blocked) {
                return true;
            }
        }
        return true;
    }

    void onData(Conn& c, const std::uint8_t* data, std::size_t n) {
        switch (opts().mode) {
            case BackendMode::Echo:
                c.out.insert(c.out.end(), data, data + n);
                break;
            case BackendMode::Sink:
                EVP_DigestUpdate(c.sha.get(), data, n);
                break;
            case BackendMode::Source:
                break;
            case BackendMode::Http:
                c.in.append(reinterpret_cast<const char*>(data), n);
                break;
        }
    }

    void onEof(Conn& c) {
        c.peerEof = true;
        switch (opts().mode) {
            case BackendMode::Echo:
            case BackendMode::Http:
                break;
            case BackendMode::Sink: {
                unsigned char md[EVP_MAX_MD_SIZE];
                unsigned int mdLen = 0;
                EVP_DigestFinal_ex(c.sha.get(), md, &mdLen);
                static const char kHex[] = "0123456789abcdef";
                std::string line = "sha256=";
                for (unsigned int i = 0; i < mdLen; ++i) {
                    line += kHex[md[i] >> 4];
                    line += kHex[md[i] & 0xf];
                }
                line += " bytes=" + std::to_string(c.totalRecv) + "\n";
                c.out.insert(c.out.end(), line.begin(), line.end());
                break;
            }
            case BackendMode::Source:
                if (c.genUnlimited) {
                    c.genUnlimited = false;
                    c.genRemaining = 0;
                }
                break;
        }
        // Http finishes in serveHttp, after answering requests that were already complete.
        if (opts().mode != BackendMode::Http) {
            c.finishing = true;
        }
    }

    // Turns complete requests into responses, one at a time so bodies stream in order.
    void serveHttp(Conn& c) {
        while (!c.hasOut() && !c.finishing) {
            std::size_t end = c.in.find("\r\n\r\n");
            if (end == std::string::npos) {
                if (c.peerEof) {
                    c.finishing = true;
                } else if (c.in.size() > kMaxHttpHead) {
                    static const std::string k431 =
                        "HTTP/1.1 431 Request Header Fields Too Large\r\nContent-Length: 0\r\n"
                        "Connection: close\r\n\r\n";
                    c.out.assign(k431.begin(), k431.end());
                    c.finishing = true;
                }
                return;
            }
            std::string head = c.in.substr(0, end);
            c.in.erase(0, end + 4);
            std::string lower = head;
            std::transform(lower.begin(), lower.end(), lower.begin(),
                           [](unsigned char ch) { return static_cast<char>(std::tolower(ch)); });
            bool close = lower.find("\r\nconnection: close") != std::string::npos;
            // Request line: METHOD SP /target SP VERSION
            std::size_t sp1 = head.find(' ');
            std::size_t sp2 = sp1 == std::string::npos ? sp1 : head.find(' ', sp1 + 1);
            std::string target =
                sp2 == std::string::npos ? std::string() : head.substr(sp1 + 1, sp2 - sp1 - 1);
            std::optional<std::uint64_t> size;
            if (target.size() > 1 && target.size() <= 20 && target[0] == '/' &&
                std::all_of(target.begin() + 1, target.end(),
                            [](unsigned char ch) { return std::isdigit(ch) != 0; })) {
                size = std::stoull(target.substr(1));
            }
            std::string resp = "HTTP/1.1 200 OK\r\nContent-Type: application/octet-stream\r\n";
            resp += "Content-Length: " + std::to_string(size ? *size : 3) + "\r\n";
            if (close) {
                resp += "Connection: close\r\n";
            }
            resp += "\r\n";
            if (!size) {
                resp += "ok\n";
            }
            c.out.insert(c.out.end(), resp.begin(), resp.end());
            if (size) {
                c.genRemaining = *size;
                c.genOffset = 0;
            }
            if (close) {
                c.finishing = true;
            }
        }
    }

    // Makes all the progress possible now. False once the connection should be closed.
    bool drive(Conn& c) {
        c.writeBlocked = false;
        c.readWantsWrite = false;
        c.writeWantsRead = false;
        if (c.handshaking) {
            ERR_clear_error();
            errno = 0;
            int r = SSL_do_handshake(c.ssl.get());
            if (r != 1) {
                int err = SSL_get_error(c.ssl.get(), r);
                if (err == SSL_ERROR_WANT_READ) {
                    return updateInterest(c, EPOLLIN);
                }
                if (err == SSL_ERROR_WANT_WRITE) {
                    return updateInterest(c, EPOLLOUT);
                }
                onHandshakeFailed(c, err);
                return false;
            }
            c.handshaking = false;
            onHandshakeDone(c);
        }
        int budget = kIoBudget;
        bool alive = true;
        for (;;) {
            bool progress = false;
            if (!flush(c, budget, progress)) {
                alive = false;
                break;
            }
            if (opts().mode == BackendMode::Source && !c.genActive()) {
                c.finishing = true;
            }
            if (!c.peerEof && canRead(c) && budget > 0 && !c.readWantsWrite) {
                --budget;
                std::size_t got = 0;
                Io r = readSome(c, got);
                if (r == Io::Ok) {
                    c.pendRecv += got;
                    c.totalRecv += got;
                    onData(c, readBuf.data(), got);
                    progress = true;
                } else if (r == Io::Eof) {
                    onEof(c);
                    progress = true;
                } else if (r == Io::Error) {
                    alive = false;
                    break;
                }
            } else if (c.peerEof && c.shutdownSent) {
                alive = false;
                break;
            }
            if (opts().mode == BackendMode::Http) {
                serveHttp(c);
            }
            if (c.finishing && !c.hasOut() && !c.shutdownSent) {
                if (!sendShutdown(c)) {
                    break;  // close_notify waits for EPOLLOUT
                }
                progress = true;
                if (c.peerEof || !opts().readAfterCloseNotify) {
                    alive = false;
                    break;
                }
            }
            if (!progress || budget <= 0) {
                break;
            }
        }
        publish(c);
        if (!alive) {
            return false;
        }
        if (budget <= 0) {
            ready.push_back(c.fd.get());
        }
        std::uint32_t want = 0;
        if ((!c.peerEof && canRead(c)) || c.writeWantsRead) {
            want |= EPOLLIN;
        }
        if (c.writeBlocked || c.readWantsWrite) {
            want |= EPOLLOUT;
        }
        return updateInterest(c, want);
    }

    bool canRead(const Conn& c) const {
        switch (opts().mode) {
            case BackendMode::Echo:
                return c.outPending() < kMaxPendingOut;
            case BackendMode::Http:
                return c.in.size() <= kMaxHttpHead;
            case BackendMode::Sink:
            case BackendMode::Source:
                return true;
        }
        return true;
    }

    // close_notify (unless options say not to), then the TCP FIN. False while close_notify
    // cannot be written yet.
    bool sendShutdown(Conn& c) {
        if (c.ssl && opts().closeNotify) {
            ERR_clear_error();
            int r = SSL_shutdown(c.ssl.get());
            if (r < 0) {
                int err = SSL_get_error(c.ssl.get(), r);
                ERR_clear_error();
                if (err == SSL_ERROR_WANT_WRITE) {
                    c.writeBlocked = true;
                    return false;
                }
            }
        }
        ::shutdown(c.fd.get(), SHUT_WR);
        c.shutdownSent = true;
        return true;
    }

    bool updateInterest(Conn& c, std::uint32_t want) {
        if (want == c.events) {
            return true;
        }
        epoll_event ev{};
        ev.events = want;
        ev.data.fd = c.fd.get();
        if (::epoll_ctl(epollFd.get(), EPOLL_CTL_MOD, c.fd.get(), &ev) == -1) {
            return false;
        }
        c.events = want;
        return true;
    }

    void publish(Conn& c) {
        if (c.obsIndex == SIZE_MAX || (c.pendRecv == 0 && c.pendSent == 0)) {
            return;
        }
        owner.updateObservation(c.obsIndex, c.pendRecv, c.pendSent, c.closeNotify, false);
        c.pendRecv = 0;
        c.pendSent = 0;
    }

    void finish(Conn& c) {
        if (c.obsIndex == SIZE_MAX) {
            return;  // a handshake that never finished before stop(): nothing was observed
        }
        owner.updateObservation(c.obsIndex, c.pendRecv, c.pendSent, c.closeNotify, true);
        c.pendRecv = 0;
        c.pendSent = 0;
    }
};

TlsBackend::TlsBackend(TlsBackendOptions options) : options_(std::move(options)) {}

TlsBackend::~TlsBackend() { stop(); }

Result<std::unique_ptr<TlsBackend>> TlsBackend::start(TlsBackendOptions options) {
    if (options.workers == 0) {
        options.workers = 1;
    }
    std::unique_ptr<TlsBackend> b(new TlsBackend(std::move(options)));
    const TlsBackendOptions& o = b->options_;
    if (!o.plain) {
        auto ctx = buildContext(o);
        if (!ctx) {
            return fail(std::move(ctx).error());
        }
        b->ctx_ = std::move(*ctx);
    }
    auto addr = parseAddress(o.host, o.port);
    if (!addr) {
        return fail(std::move(addr).error());
    }
    b->stopFd_.reset(::eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK));
    if (!b->stopFd_.valid()) {
        return failErrno("creating the stop eventfd");
    }
    for (unsigned i = 0; i < o.workers; ++i) {
        auto w = std::make_unique<Worker>(*b);
        auto listener = makeListener(*addr, o.workers > 1);
        if (!listener) {
            return fail(std::move(listener).error());
        }
        w->listenFd = std::move(*listener);
        if (i == 0) {
            sockaddr_storage bound{};
            socklen_t len = sizeof bound;
            if (::getsockname(w->listenFd.get(), reinterpret_cast<sockaddr*>(&bound), &len) == -1) {
                return failErrno("reading the bound port");
            }
            b->port_ = ntohs(bound.ss_family == AF_INET
                                 ? reinterpret_cast<sockaddr_in*>(&bound)->sin_port
                                 : reinterpret_cast<sockaddr_in6*>(&bound)->sin6_port);
            // The other workers share the port the kernel picked for the first.
            if (addr->storage.ss_family == AF_INET) {
                reinterpret_cast<sockaddr_in*>(&addr->storage)->sin_port = htons(b->port_);
            } else {
                reinterpret_cast<sockaddr_in6*>(&addr->storage)->sin6_port = htons(b->port_);
            }
        }
        w->epollFd.reset(::epoll_create1(EPOLL_CLOEXEC));
        if (!w->epollFd.valid()) {
            return failErrno("creating an epoll instance");
        }
        for (int fd : {w->listenFd.get(), b->stopFd_.get()}) {
            epoll_event ev{};
            ev.events = EPOLLIN;
            ev.data.fd = fd;
            if (::epoll_ctl(w->epollFd.get(), EPOLL_CTL_ADD, fd, &ev) == -1) {
                return failErrno("registering with epoll");
            }
        }
        b->workers_.push_back(std::move(w));
    }
    try {
        for (auto& w : b->workers_) {
            b->threads_.emplace_back([worker = w.get()] { worker->run(); });
        }
    } catch (const std::exception& e) {
        b->stop();
        return fail(Errc::Internal, std::string("starting backend threads: ") + e.what());
    }
    return b;
}

void TlsBackend::stop() {
    if (stopped_.exchange(true)) {
        return;
    }
    if (stopFd_.valid()) {
        std::uint64_t one = 1;
        [[maybe_unused]] ssize_t n = ::write(stopFd_.get(), &one, sizeof one);
    }
    for (auto& t : threads_) {
        if (t.joinable()) {
            t.join();
        }
    }
    threads_.clear();
    workers_.clear();
}

std::size_t TlsBackend::addObservation(Observation o) {
    std::size_t index;
    std::optional<Observation> closedCopy;
    {
        std::lock_guard lock(mu_);
        index = observations_.size();
        if (o.closed) {
            ++closedCount_;
            if (options_.onConnectionClosed) {
                closedCopy = o;
            }
        }
        observations_.push_back(std::move(o));
    }
    cv_.notify_all();
    if (closedCopy) {
        options_.onConnectionClosed(*closedCopy);
    }
    return index;
}

void TlsBackend::updateObservation(std::size_t index, std::uint64_t addReceived,
                                   std::uint64_t addSent, bool closeNotify, bool closed) {
    totalReceived_.fetch_add(addReceived, std::memory_order_relaxed);
    Observation copy;
    bool notifyClosed = false;
    {
        std::lock_guard lock(mu_);
        Observation& o = observations_[index];
        o.bytesReceived += addReceived;
        o.bytesSent += addSent;
        o.closeNotifyReceived = o.closeNotifyReceived || closeNotify;
        if (closed && !o.closed) {
            o.closed = true;
            ++closedCount_;
            notifyClosed = true;
            if (options_.onConnectionClosed) {
                copy = o;
            }
        }
    }
    if (notifyClosed) {
        cv_.notify_all();
        if (options_.onConnectionClosed) {
            options_.onConnectionClosed(copy);
        }
    }
}

std::vector<Observation> TlsBackend::observations() const {
    std::lock_guard lock(mu_);
    return observations_;
}

std::size_t TlsBackend::acceptedConnections() const noexcept {
    return accepted_.load(std::memory_order_relaxed);
}

std::size_t TlsBackend::failedHandshakes() const noexcept {
    return failed_.load(std::memory_order_relaxed);
}

std::uint64_t TlsBackend::totalBytesReceived() const noexcept {
    return totalReceived_.load(std::memory_order_relaxed);
}

bool TlsBackend::waitForObservations(std::size_t n, std::chrono::milliseconds timeout) const {
    std::unique_lock lock(mu_);
    return cv_.wait_for(lock, timeout, [&] { return observations_.size() >= n; });
}

bool TlsBackend::waitForClosed(std::size_t n, std::chrono::milliseconds timeout) const {
    std::unique_lock lock(mu_);
    return cv_.wait_for(lock, timeout, [&] { return closedCount_ >= n; });
}

}  // namespace lastmile::test
