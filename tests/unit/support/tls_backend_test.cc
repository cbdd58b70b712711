// SPDX-License-Identifier: Apache-2.0
// TlsBackend against blocking OpenSSL clients on 127.0.0.1: every mode, mTLS, plain, resumption.
#include "tests/support/tls_backend.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <sys/socket.h>
#include <sys/time.h>

#include <gtest/gtest.h>

#include <chrono>
#include <cstring>
#include <stdexcept>
#include <string>
#include <vector>

namespace lastmile::test {
namespace {

using namespace std::chrono_literals;

constexpr auto kWait = 10s;

UniqueFd connectTcp(std::uint16_t port) {
    UniqueFd fd(::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0));
    if (!fd.valid()) {
        throw std::runtime_error("socket");
    }
    // Bounded waits: a stuck backend fails the test instead of hanging it.
    timeval tv{10, 0};
    ::setsockopt(fd.get(), SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
    ::setsockopt(fd.get(), SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof tv);
    sockaddr_in addr{};
    addr.sin_family = AF_INET;
    addr.sin_port = htons(port);
    addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    if (::connect(fd.get(), reinterpret_cast<sockaddr*>(&addr), sizeof addr) == -1) {
        throw std::runtime_error("connect: " + std::string(std::strerror(errno)));
    }
    return fd;
}

void sendAll(int fd, const std::string& data) {
    std::size_t off = 0;
    while (off < data.size()) {
        ssize_t n = ::send(fd, data.data() + off, data.size() - off, MSG_NOSIGNAL);
        if (n <= 0) {
            throw std::runtime_error("send");
        }
        off += static_cast<std::size_t>(n);
    }
}

struct ClientOptions {
    std::string sni;
    std::vector<std::string> alpn;
    const IssuedCert* clientCert = nullptr;
    int maxVersion = 0;
    SSL_SESSION* session = nullptr;
};

class TlsClient {
public:
    TlsClient(std::uint16_t port, const std::string& caPem, const ClientOptions& o)
        : fd_(connectTcp(port)), ctx_(SSL_CTX_new(TLS_client_method())) {
        tls::BioPtr bio(BIO_new_mem_buf(caPem.data(), static_cast<int>(caPem.size())));
        tls::X509Ptr ca(PEM_read_bio_X509(bio.get(), nullptr, nullptr, nullptr));
        X509_STORE_add_cert(SSL_CTX_get_cert_store(ctx_.get()), ca.get());
        SSL_CTX_set_verify(ctx_.get(), SSL_VERIFY_PEER, nullptr);
        if (o.maxVersion != 0) {
            SSL_CTX_set_max_proto_version(ctx_.get(), o.maxVersion);
        }
        if (o.clientCert != nullptr) {
            tls::BioPtr cb(BIO_new_mem_buf(o.clientCert->certPem.data(),
                                           static_cast<int>(o.clientCert->certPem.size())));
            tls::X509Ptr cert(PEM_read_bio_X509(cb.get(), nullptr, nullptr, nullptr));
            tls::BioPtr kb(BIO_new_mem_buf(o.clientCert->keyPem.data(),
                                           static_cast<int>(o.clientCert->keyPem.size())));
            tls::EvpPkeyPtr key(PEM_read_bio_PrivateKey(kb.get(), nullptr, nullptr, nullptr));
            SSL_CTX_use_certificate(ctx_.get(), cert.get());
            SSL_CTX_use_PrivateKey(ctx_.get(), key.get());
        }
        if (!o.alpn.empty()) {
            std::string wire;
            for (const auto& p : o.alpn) {
                wire += static_cast<char>(p.size());
                wire += p;
            }
            SSL_CTX_set_alpn_protos(ctx_.get(), reinterpret_cast<const unsigned char*>(wire.data()),
                                    static_cast<unsigned int>(wire.size()));
        }
        ssl_.reset(SSL_new(ctx_.get()));
        SSL_set_fd(ssl_.get(), fd_.get());
        if (!o.sni.empty()) {
            SSL_set_tlsext_host_name(ssl_.get(), o.sni.c_str());
            SSL_set1_host(ssl_.get(), o.sni.c_str());
        }
        if (o.session != nullptr) {
            SSL_set_session(ssl_.get(), o.session);
        }
        handshakeOk_ = SSL_connect(ssl_.get()) == 1;
        ERR_clear_error();
    }

    bool handshakeOk() const { return handshakeOk_; }
    SSL* ssl() { return ssl_.get(); }

    void write(const std::string& data) {
        std::size_t off = 0;
        while (off < data.size()) {
            int n = SSL_write(ssl_.get(), data.data() + off, static_cast<int>(data.size() - off));
            if (n <= 0) {
                throw std::runtime_error("SSL_write");
            }
            off += static_cast<std::size_t>(n);
        }
    }
    // Reads exactly n bytes (fewer if the stream ends first).
    std::string read(std::size_t n) {
        std::string out;
        std::vector<char> buf(64 * 1024);
        while (out.size() < n) {
            int r = SSL_read(ssl_.get(), buf.data(),
                             static_cast<int>(std::min(buf.size(), n - out.size())));
            if (r <= 0) {
                lastError_ = SSL_get_error(ssl_.get(), r);
                break;
            }
            out.append(buf.data(), static_cast<std::size_t>(r));
        }
        return out;
    }
    // Reads until the stream ends; lastError() then tells close_notify from other endings.
    std::string readToEnd() { return read(SIZE_MAX); }
    int lastError() const { return lastError_; }
    // Sends close_notify (our write side ends; reading stays possible).
    void closeNotify() { SSL_shutdown(ssl_.get()); }

private:
    UniqueFd fd_;
    tls::SslCtxPtr ctx_;
    tls::SslPtr ssl_;
    bool handshakeOk_ = false;
    int lastError_ = 0;
};

std::string patternedPayload(std::size_t n) {
    std::string s(n, '\0');
    for (std::size_t i = 0; i < n; ++i) {
        s[i] = static_cast<char>((i * 7 + i / 4096) & 0xff);
    }
    return s;
}

std::string sha256Hex(const std::string& data) {
    unsigned char md[EVP_MAX_MD_SIZE];
    unsigned int len = 0;
    EVP_Digest(data.data(), data.size(), md, &len, EVP_sha256(), nullptr);
    static const char kHex[] = "0123456789abcdef";
    std::string hex;
    for (unsigned int i = 0; i < len; ++i) {
        hex += kHex[md[i] >> 4];
        hex += kHex[md[i] & 0xf];
    }
    return hex;
}

class TlsBackendTest : public ::testing::Test {
protected:
    std::unique_ptr<TlsBackend> startBackend(TlsBackendOptions o) {
        if (!o.plain && o.serverCert.chainPem.empty()) {
            o.serverCert = serverCert_;
        }
        auto b = TlsBackend::start(std::move(o));
        if (!b) {
            throw std::runtime_error(b.error().message());
        }
        return std::move(*b);
    }
    ClientOptions sni(std::string name = "echo.test") {
        ClientOptions o;
        o.sni = std::move(name);
        return o;
    }

    TestPki pki_;
    IssuedCert serverCert_ = pki_.issueServer("echo.test");
};

TEST_F(TlsBackendTest, EchoesBytesAndObservesSniAlpnAndHalfClose) {
    TlsBackendOptions o;
    o.alpn = {"h2", "http/1.1"};
    auto backend = startBackend(std::move(o));
    ClientOptions co = sni();
    co.alpn = {"http/1.1", "h2"};
    TlsClient client(backend->port(), pki_.caPem(), co);
    ASSERT_TRUE(client.handshakeOk());

    std::string payload = patternedPayload(200 * 1024);
    client.write(payload);
    EXPECT_EQ(client.read(payload.size()), payload);
    client.closeNotify();
    // The backend answers our close_notify with its own: a half-close travels end to end.
    EXPECT_EQ(client.readToEnd(), "");
    EXPECT_EQ(client.lastError(), SSL_ERROR_ZERO_RETURN);

    ASSERT_TRUE(backend->waitForClosed(1, kWait));
    auto obs = backend->observations();
    ASSERT_EQ(obs.size(), 1u);
    EXPECT_TRUE(obs[0].handshakeOk);
    EXPECT_EQ(obs[0].sni, "echo.test");
    EXPECT_EQ(obs[0].alpn, "http/1.1");
    EXPECT_EQ(obs[0].version, "TLSv1.3");
    EXPECT_FALSE(obs[0].cipher.empty());
    EXPECT_EQ(obs[0].clientCn, "");
    EXPECT_FALSE(obs[0].resumed);
    EXPECT_TRUE(obs[0].closeNotifyReceived);
    EXPECT_EQ(obs[0].bytesReceived, payload.size());
    EXPECT_EQ(obs[0].bytesSent, payload.size());
    EXPECT_EQ(backend->totalBytesReceived(), payload.size());
    EXPECT_EQ(backend->acceptedConnections(), 1u);
}

TEST_F(TlsBackendTest, NegotiatesNoAlpnWhenProtocolsDoNotOverlap) {
    TlsBackendOptions o;
    o.alpn = {"h2"};
    auto backend = startBackend(std::move(o));
    ClientOptions co = sni();
    co.alpn = {"http/1.1"};
    TlsClient client(backend->port(), pki_.caPem(), co);
    ASSERT_TRUE(client.handshakeOk());
    ASSERT_TRUE(backend->waitForObservations(1, kWait));
    EXPECT_EQ(backend->observations()[0].alpn, "");
}

TEST_F(TlsBackendTest, SinkAnswersWithSha256AndByteCountOfEverythingReceived) {
    TlsBackendOptions o;
    o.mode = BackendMode::Sink;
    auto backend = startBackend(std::move(o));
    TlsClient client(backend->port(), pki_.caPem(), sni());
    ASSERT_TRUE(client.handshakeOk());

    std::string payload = patternedPayload(3 * 1024 * 1024 + 17);
    client.write(payload);
    client.closeNotify();
    std::string line = client.readToEnd();
    EXPECT_EQ(line, "sha256=" + sha256Hex(payload) + " bytes=" + std::to_string(payload.size()) +
                        "\n");
    EXPECT_EQ(client.lastError(), SSL_ERROR_ZERO_RETURN);
    ASSERT_TRUE(backend->waitForClosed(1, kWait));
    EXPECT_EQ(backend->totalBytesReceived(), payload.size());
}

TEST_F(TlsBackendTest, SourceSendsExactlyTheConfiguredBytesThenCloseNotify) {
    TlsBackendOptions o;
    o.mode = BackendMode::Source;
    o.sourceBytes = 1024 * 1024 + 7;
    auto backend = startBackend(std::move(o));
    TlsClient client(backend->port(), pki_.caPem(), sni());
    ASSERT_TRUE(client.handshakeOk());

    std::string got = client.readToEnd();
    EXPECT_EQ(client.lastError(), SSL_ERROR_ZERO_RETURN);
    ASSERT_EQ(got.size(), 1024u * 1024 + 7);
    EXPECT_TRUE(matchesSourcePattern(
        0, {reinterpret_cast<const std::uint8_t*>(got.data()), got.size()}));
    EXPECT_FALSE(matchesSourcePattern(
        1, {reinterpret_cast<const std::uint8_t*>(got.data()), got.size()}));
    client.closeNotify();
    ASSERT_TRUE(backend->waitForClosed(1, kWait));
    EXPECT_EQ(backend->observations()[0].bytesSent, 1024u * 1024 + 7);
}

TEST_F(TlsBackendTest, UnlimitedSourceStreamsUntilTheClientCloses) {
    TlsBackendOptions o;
    o.mode = BackendMode::Source;
    auto backend = startBackend(std::move(o));
    {
        TlsClient client(backend->port(), pki_.caPem(), sni());
        ASSERT_TRUE(client.handshakeOk());
        std::string got = client.read(4 * 1024 * 1024);
        ASSERT_EQ(got.size(), 4u * 1024 * 1024);
        EXPECT_TRUE(matchesSourcePattern(
            0, {reinterpret_cast<const std::uint8_t*>(got.data()), got.size()}));
        client.closeNotify();
    }
    ASSERT_TRUE(backend->waitForClosed(1, kWait));
    EXPECT_GE(backend->observations()[0].bytesSent, 4u * 1024 * 1024);
}

TEST_F(TlsBackendTest, HttpServesTwoRequestsOnOneKeepAliveConnection) {
    TlsBackendOptions o;
    o.mode = BackendMode::Http;
    auto backend = startBackend(std::move(o));
    TlsClient client(backend->port(), pki_.caPem(), sni());
    ASSERT_TRUE(client.handshakeOk());

    auto readResponse = [&client]() {
        std::string head;
        while (head.find("\r\n\r\n") == std::string::npos) {
            std::string b = client.read(1);
            if (b.empty()) {
                throw std::runtime_error("response head ended early");
            }
            head += b;
        }
        auto pos = head.find("Content-Length: ");
        std::size_t len = std::stoul(head.substr(pos + 16));
        return std::make_pair(head, client.read(len));
    };

    client.write("GET /100000 HTTP/1.1\r\nHost: echo.test\r\n\r\n");
    auto [head1, body1] = readResponse();
    EXPECT_EQ(head1.rfind("HTTP/1.1 200 OK\r\n", 0), 0u);
    ASSERT_EQ(body1.size(), 100000u);
    EXPECT_TRUE(matchesSourcePattern(
        0, {reinterpret_cast<const std::uint8_t*>(body1.data()), body1.size()}));

    client.write("GET / HTTP/1.1\r\nHost: echo.test\r\nConnection: close\r\n\r\n");
    auto [head2, body2] = readResponse();
    EXPECT_NE(head2.find("Connection: close"), std::string::npos);
    EXPECT_EQ(body2, "ok\n");
    EXPECT_EQ(client.readToEnd(), "");
    EXPECT_EQ(client.lastError(), SSL_ERROR_ZERO_RETURN);
    EXPECT_EQ(backend->acceptedConnections(), 1u);
}

TEST_F(TlsBackendTest, RequiredClientCertificateIsVerifiedAndItsCnObserved) {
    TlsBackendOptions o;
    o.clientCaPem = pki_.caPem();
    o.requireClientCert = true;
    auto backend = startBackend(std::move(o));

    IssuedCert clientCert = pki_.issueClient("client-a");
    ClientOptions withCert = sni();
    withCert.clientCert = &clientCert;
    TlsClient good(backend->port(), pki_.caPem(), withCert);
    ASSERT_TRUE(good.handshakeOk());
    good.write("ping");
    EXPECT_EQ(good.read(4), "ping");

    // TLS 1.3 clients learn about the rejection only when they next read.
    // The write may already fail if the rejection came first; either way nothing arrives.
    TlsClient bad(backend->port(), pki_.caPem(), sni());
    SSL_write(bad.ssl(), "secret", 6);
    EXPECT_EQ(bad.readToEnd(), "");

    ASSERT_TRUE(backend->waitForObservations(2, kWait));
    auto obs = backend->observations();
    std::size_t ok = obs[0].handshakeOk ? 0 : 1;
    EXPECT_EQ(obs[ok].clientCn, "client-a");
    EXPECT_FALSE(obs[1 - ok].handshakeOk);
    EXPECT_FALSE(obs[1 - ok].handshakeError.empty());
    EXPECT_EQ(obs[1 - ok].bytesReceived, 0u);
    EXPECT_EQ(backend->failedHandshakes(), 1u);
    EXPECT_EQ(backend->totalBytesReceived(), 4u);
}

TEST_F(TlsBackendTest, GarbageInsteadOfClientHelloIsAFailedHandshakeWithNothingReceived) {
    auto backend = startBackend({});
    UniqueFd fd = connectTcp(backend->port());
    sendAll(fd.get(), "GET / HTTP/1.1\r\n\r\n");
    ASSERT_TRUE(backend->waitForObservations(1, kWait));
    auto obs = backend->observations();
    EXPECT_FALSE(obs[0].handshakeOk);
    EXPECT_FALSE(obs[0].handshakeError.empty());
    EXPECT_EQ(backend->failedHandshakes(), 1u);
    EXPECT_EQ(backend->totalBytesReceived(), 0u);
}

TEST_F(TlsBackendTest, PlainModeEchoesWithoutTls) {
    TlsBackendOptions o;
    o.plain = true;
    auto backend = startBackend(std::move(o));
    UniqueFd fd = connectTcp(backend->port());
    std::string payload = patternedPayload(100000);
    sendAll(fd.get(), payload);
    ::shutdown(fd.get(), SHUT_WR);
    std::string got;
    char buf[65536];
    for (;;) {
        ssize_t n = ::recv(fd.get(), buf, sizeof buf, 0);
        ASSERT_GE(n, 0) << std::strerror(errno);
        if (n == 0) {
            break;
        }
        got.append(buf, static_cast<std::size_t>(n));
    }
    EXPECT_EQ(got, payload);
    ASSERT_TRUE(backend->waitForClosed(1, kWait));
    auto obs = backend->observations();
    EXPECT_TRUE(obs[0].handshakeOk);
    EXPECT_EQ(obs[0].version, "");
    EXPECT_EQ(obs[0].bytesReceived, payload.size());
}

TEST_F(TlsBackendTest, MaxTls12IsNegotiatedAndObserved) {
    TlsBackendOptions o;
    o.maxVersion = tls::TlsVersion::Tls12;
    o.cipherList = "ECDHE-ECDSA-AES128-GCM-SHA256";
    auto backend = startBackend(std::move(o));
    TlsClient client(backend->port(), pki_.caPem(), sni());
    ASSERT_TRUE(client.handshakeOk());
    ASSERT_TRUE(backend->waitForObservations(1, kWait));
    auto obs = backend->observations();
    EXPECT_EQ(obs[0].version, "TLSv1.2");
    EXPECT_EQ(obs[0].cipher, "ECDHE-ECDSA-AES128-GCM-SHA256");
}

TEST_F(TlsBackendTest, SecondConnectionResumesWithASessionTicket) {
    auto backend = startBackend({});
    tls::SslSessionPtr session;
    {
        TlsClient first(backend->port(), pki_.caPem(), sni());
        ASSERT_TRUE(first.handshakeOk());
        first.write("x");
        EXPECT_EQ(first.read(1), "x");  // the TLS 1.3 ticket arrives with the first read
        session.reset(SSL_get1_session(first.ssl()));
        first.closeNotify();
    }
    ClientOptions co = sni();
    co.session = session.get();
    TlsClient second(backend->port(), pki_.caPem(), co);
    ASSERT_TRUE(second.handshakeOk());
    ASSERT_TRUE(backend->waitForObservations(2, kWait));
    auto obs = backend->observations();
    EXPECT_FALSE(obs[0].resumed);
    EXPECT_TRUE(obs[1].resumed);
}

TEST_F(TlsBackendTest, ConfiguredTls13CiphersuiteIsNegotiated) {
    TlsBackendOptions o;
    o.cipherSuites = "TLS_CHACHA20_POLY1305_SHA256";
    o.groups = "X25519";
    auto backend = startBackend(std::move(o));
    TlsClient client(backend->port(), pki_.caPem(), sni());
    ASSERT_TRUE(client.handshakeOk());
    ASSERT_TRUE(backend->waitForObservations(1, kWait));
    EXPECT_EQ(backend->observations()[0].cipher, "TLS_CHACHA20_POLY1305_SHA256");
}

TEST_F(TlsBackendTest, WithoutTicketsTls13ConnectionsDoNotResume) {
    TlsBackendOptions o;
    o.sessionTickets = false;
    auto backend = startBackend(std::move(o));
    tls::SslSessionPtr session;
    {
        TlsClient first(backend->port(), pki_.caPem(), sni());
        ASSERT_TRUE(first.handshakeOk());
        first.write("x");
        EXPECT_EQ(first.read(1), "x");
        session.reset(SSL_get1_session(first.ssl()));
        EXPECT_EQ(SSL_SESSION_is_resumable(session.get()), 0);
        first.closeNotify();
    }
    ClientOptions co = sni();
    co.session = session.get();
    TlsClient second(backend->port(), pki_.caPem(), co);
    ASSERT_TRUE(second.handshakeOk());
    ASSERT_TRUE(backend->waitForObservations(2, kWait));
    EXPECT_FALSE(backend->observations()[1].resumed);
}

TEST_F(TlsBackendTest, ServesTwoHundredConcurrentConnectionsOnTwoWorkers) {
    TlsBackendOptions o;
    o.workers = 2;
    auto backend = startBackend(std::move(o));
    std::vector<std::unique_ptr<TlsClient>> clients;
    for (int i = 0; i < 200; ++i) {
        clients.push_back(std::make_unique<TlsClient>(backend->port(), pki_.caPem(), sni()));
        ASSERT_TRUE(clients.back()->handshakeOk()) << i;
    }
    ASSERT_TRUE(backend->waitForObservations(200, kWait));
    for (std::size_t i = 0; i < clients.size(); ++i) {
        clients[i]->write("conn " + std::to_string(i));
    }
    for (std::size_t i = 0; i < clients.size(); ++i) {
        std::string want = "conn " + std::to_string(i);
        EXPECT_EQ(clients[i]->read(want.size()), want);
    }
    EXPECT_EQ(backend->acceptedConnections(), 200u);
    clients.clear();
    ASSERT_TRUE(backend->waitForClosed(200, kWait));
}

TEST_F(TlsBackendTest, RejectsRequireClientCertWithoutClientCa) {
    TlsBackendOptions o;
    o.serverCert = serverCert_;
    o.requireClientCert = true;
    auto backend = TlsBackend::start(std::move(o));
    ASSERT_FALSE(backend);
    EXPECT_EQ(backend.error().code(), make_error_code(Errc::Invalid));
}

}  // namespace
}  // namespace lastmile::test
