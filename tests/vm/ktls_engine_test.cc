// SPDX-License-Identifier: Apache-2.0
// The kernel engine under a kernel with TLS (run by run-in-vm): sessions handshaken by OpenSSL
// move into the kernel and a stock OpenSSL server reads and writes every byte intact.
#include "drivers/ktls/ktls_engine.h"

#include <fcntl.h>
#include <gtest/gtest.h>
#include <poll.h>
#include <sys/socket.h>

#include <atomic>
#include <cerrno>
#include <chrono>
#include <cstring>
#include <fstream>
#include <iostream>
#include <map>
#include <optional>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include "drivers/openssl/openssl_engine.h"
#include "drivers/openssl/wire_bio.h"
#include "tests/support/test_pki.h"
#include "tests/support/tls_backend.h"
#include "tests/support/tls_stat.h"
#include "tests/unit/ktls/ktls_client.h"

namespace lastmile::drivers::ktls {
namespace {

using namespace std::chrono_literals;
using test::BackendMode;
using test::KtlsClient;
using test::KtlsClientOptions;
using test::TlsBackend;
using test::TlsBackendOptions;

// Crypto is emulated under TCG: a MiB or two per case keeps the binary well under two minutes.
constexpr std::uint64_t kMiB = 1024 * 1024;

// The engine is shared like the workers share it: probed once per process.
KernelEngine& engine() {
    static KernelEngine e;
    return e;
}

std::uint64_t declined(std::string_view label) {
    for (const auto& [name, count] : engine().declines()) {
        if (name == label) {
            return count;
        }
    }
    return 0;
}

// The source pattern from stream offset 0 onwards, as one buffer to send slices of.
const std::vector<std::uint8_t>& patternBuffer() {
    static const std::vector<std::uint8_t> buf = [] {
        std::vector<std::uint8_t> b(64 * 1024 + 251);
        for (std::size_t i = 0; i < b.size(); ++i) {
            b[i] = test::sourcePatternByte(i);
        }
        return b;
    }();
    return buf;
}

// Sends `total` pattern bytes with plain send(): the kernel seals them.
void sendPattern(int fd, std::uint64_t total, std::atomic<bool>& failed) {
    std::uint64_t sent = 0;
    while (sent < total) {
        const std::size_t len =
            static_cast<std::size_t>(std::min<std::uint64_t>(total - sent, 64 * 1024));
        const ssize_t n = ::send(fd, patternBuffer().data() + sent % 251, len, MSG_NOSIGNAL);
        if (n <= 0) {
            failed = true;
            return;
        }
        sent += static_cast<std::uint64_t>(n);
    }
}

// What came out of the socket through plain recv() and, at each EIO, the session's open().
struct Received {
    std::uint64_t bytes = 0;
    bool patternIntact = true;  // every byte matched the pattern at its offset
    bool closeNotify = false;
    bool eof = false;
    std::optional<Error> error;
    std::string text;  // the bytes themselves, when asked to keep them
};

Received receive(int fd, RecordSession& session, std::uint64_t want, bool keepText = false) {
    Received r;
    auto take = [&](const std::uint8_t* p, std::size_t n) {
        if (!test::matchesSourcePattern(r.bytes, {p, n})) {
            r.patternIntact = false;
        }
        if (keepText) {
            r.text.append(reinterpret_cast<const char*>(p), n);
        }
        r.bytes += n;
    };
    std::vector<std::uint8_t> buf(64 * 1024);
    auto chunk = std::make_unique<Chunk>();
    while (want == 0 || r.bytes < want) {
        const ssize_t n = ::recv(fd, buf.data(), buf.size(), 0);
        if (n > 0) {
            take(buf.data(), static_cast<std::size_t>(n));
            continue;
        }
        if (n == 0) {
            r.eof = true;
            break;
        }
        if (errno != EIO) {
            r.error = Error(std::error_code(errno, std::system_category()), "recv");
            break;
        }
        auto opened = session.open(*chunk);
        if (!opened) {
            r.error = opened.error();
            break;
        }
        take(chunk->data(), chunk->size());
        chunk->clear();
        if (opened->closeNotify) {
            r.closeNotify = true;
            break;
        }
    }
    return r;
}

struct Suite {
    int version;
    const char* cipher;
    const char* name;
};

class KernelEngineVmTest : public ::testing::Test {
protected:
    void SetUp() override {
        if (!engine().probe().usable) {
            GTEST_SKIP() << "no kernel TLS here: " << engine().probe().detail;
        }
    }

    void startBackend(TlsBackendOptions o) {
        o.serverCert = pki_.issueServer(test::kBackendName);
        auto b = TlsBackend::start(std::move(o));
        ASSERT_TRUE(b) << b.error().message();
        backend_ = std::move(*b);
    }

    // Handshake in userspace, then into the kernel; checks the kernel took it.
    std::unique_ptr<RecordSession> attach(KtlsClient& client) {
        const auto before = test::tlsStat();
        Wire wire;
        auto attached = engine().attach(client.ssl(), client.fd(), wire);
        EXPECT_EQ(attached.outcome, Attach::Outcome::Taken) << attached.reason;
        if (attached.outcome != Attach::Outcome::Taken) {
            return nullptr;
        }
        auto& session = attached.session;
        const auto after = test::tlsStat();
        for (const char* counter : {"TlsCurrTxSw", "TlsCurrRxSw", "TlsTxSw", "TlsRxSw"}) {
            EXPECT_EQ(after.at(counter), before.at(counter) + 1) << counter;
        }
        EXPECT_EQ(session->engine(), "kernel");
        EXPECT_EQ(session->framing(), Framing::Kernel);
        client.freeSsl();  // as the worker does: the kernel holds the session now
        return std::move(session);
    }

    test::TestPki pki_;
    std::unique_ptr<TlsBackend> backend_;
};

class KernelEngineSuiteTest : public KernelEngineVmTest,
                              public ::testing::WithParamInterface<Suite> {};

TEST_P(KernelEngineSuiteTest, EchoesEveryByteBothWaysThroughTheKernel) {
    TlsBackendOptions o;
    o.mode = BackendMode::Echo;
    startBackend(std::move(o));
    KtlsClient client(backend_->port(), pki_.caPem(), {GetParam().version, GetParam().cipher});
    auto session = attach(client);
    ASSERT_TRUE(session);

    constexpr std::uint64_t kBytes = 3 * kMiB;
    std::atomic<bool> sendFailed{false};
    std::thread sender([&] { sendPattern(client.fd(), kBytes, sendFailed); });
    const Received r = receive(client.fd(), *session, kBytes);
    sender.join();
    EXPECT_FALSE(sendFailed);
    ASSERT_FALSE(r.error) << r.error->message();
    EXPECT_EQ(r.bytes, kBytes);
    EXPECT_TRUE(r.patternIntact);
    const auto seen = backend_->observations();
    ASSERT_EQ(seen.size(), 1U);
    EXPECT_EQ(seen[0].version, GetParam().version == TLS1_3_VERSION ? "TLSv1.3" : "TLSv1.2");
    EXPECT_EQ(seen[0].bytesReceived, kBytes);
}

INSTANTIATE_TEST_SUITE_P(
    Suites, KernelEngineSuiteTest,
    ::testing::Values(Suite{TLS1_3_VERSION, "TLS_AES_128_GCM_SHA256", "Tls13Aes128Gcm"},
                      Suite{TLS1_3_VERSION, "TLS_AES_256_GCM_SHA384", "Tls13Aes256Gcm"},
                      Suite{TLS1_3_VERSION, "TLS_CHACHA20_POLY1305_SHA256", "Tls13Chacha20"},
                      Suite{TLS1_2_VERSION, "ECDHE-ECDSA-AES128-GCM-SHA256", "Tls12Aes128Gcm"},
                      Suite{TLS1_2_VERSION, "ECDHE-ECDSA-AES256-GCM-SHA384", "Tls12Aes256Gcm"},
                      Suite{TLS1_2_VERSION, "ECDHE-ECDSA-CHACHA20-POLY1305", "Tls12Chacha20"}),
    [](const auto& p) { return std::string(p.param.name); });

TEST_F(KernelEngineVmTest, SinkReadsEveryByteAndCloseNotifyGoesBothWays) {
    TlsBackendOptions o;
    o.mode = BackendMode::Sink;
    startBackend(std::move(o));
    KtlsClient client(backend_->port(), pki_.caPem(), {TLS1_3_VERSION, "TLS_AES_128_GCM_SHA256"});
    auto session = attach(client);
    ASSERT_TRUE(session);

    std::atomic<bool> sendFailed{false};
    sendPattern(client.fd(), 2 * kMiB, sendFailed);
    ASSERT_FALSE(sendFailed);
    auto sent = session->closeNotify();
    ASSERT_TRUE(sent && *sent);
    ::shutdown(client.fd(), SHUT_WR);

    // The sink answers one line after our close_notify, then sends its own.
    const Received r = receive(client.fd(), *session, 0, true);
    ASSERT_FALSE(r.error) << r.error->message();
    EXPECT_TRUE(r.closeNotify);
    EXPECT_NE(r.text.find("bytes=" + std::to_string(2 * kMiB)), std::string::npos) << r.text;
    ASSERT_TRUE(backend_->waitForClosed(1, 20s));
    const auto seen = backend_->observations();
    EXPECT_EQ(seen[0].bytesReceived, 2 * kMiB);
    EXPECT_TRUE(seen[0].closeNotifyReceived);
}

TEST_F(KernelEngineVmTest, SourceArrivesIntactAfterTheTicketsTheKernelHandedBack) {
    TlsBackendOptions o;
    o.mode = BackendMode::Source;
    o.sourceBytes = 4 * kMiB;
    startBackend(std::move(o));
    KtlsClient client(backend_->port(), pki_.caPem(), {TLS1_3_VERSION, "TLS_AES_256_GCM_SHA384"});
    const std::uint64_t ticketsBefore = engine().ticketsDropped();
    auto session = attach(client);
    ASSERT_TRUE(session);

    const Received r = receive(client.fd(), *session, 0);
    ASSERT_FALSE(r.error) << r.error->message();
    EXPECT_EQ(r.bytes, 4 * kMiB);
    EXPECT_TRUE(r.patternIntact);
    EXPECT_TRUE(r.closeNotify) << "the source ends with close_notify";
    // OpenSSL servers send two tickets after a TLS 1.3 handshake; they came before any data.
    EXPECT_EQ(engine().ticketsDropped() - ticketsBefore, 2U);
}

// Go's crypto/tls (and often GnuTLS) sends its TLS 1.3 tickets right behind the handshake,
// so the worker has read them into its buffer when it offers the session. Here the two
// tickets of an OpenSSL server are read off the socket into the wire the same way: OpenSSL
// opens them, and the kernel takes the session at the record after them.
TEST_F(KernelEngineVmTest, TakesTheSessionAfterOpeningTicketsAlreadyReadIntoUserspace) {
    TlsBackendOptions o;
    o.mode = BackendMode::Source;
    o.sourceBytes = kMiB;
    startBackend(std::move(o));
    KtlsClient client(backend_->port(), pki_.caPem(), {TLS1_3_VERSION, "TLS_AES_128_GCM_SHA256"});
    Wire wire;
    auto buffered = std::make_unique<Chunk>();
    for (int record = 0; record < 2; ++record) {  // the two tickets, as whole records
        std::uint8_t header[5];
        ASSERT_EQ(::recv(client.fd(), header, sizeof header, MSG_WAITALL), 5);
        std::vector<std::uint8_t> body(std::size_t{header[3]} << 8 | header[4]);
        ASSERT_EQ(::recv(client.fd(), body.data(), body.size(), MSG_WAITALL),
                  static_cast<ssize_t>(body.size()));
        buffered->append(header, sizeof header);
        buffered->append(body.data(), body.size());
    }
    wire.fromPeer = buffered.get();
    ASSERT_TRUE(openssl::attachWire(client.ssl(), wire));
    const std::uint64_t ticketsBefore = engine().ticketsDropped();
    auto attached = engine().attach(client.ssl(), client.fd(), wire);
    ASSERT_EQ(attached.outcome, Attach::Outcome::Taken) << attached.reason;
    EXPECT_TRUE(buffered->empty()) << "OpenSSL opened both tickets";
    client.freeSsl();

    const Received r = receive(client.fd(), *attached.session, 0);
    ASSERT_FALSE(r.error) << r.error->message();
    EXPECT_EQ(r.bytes, kMiB);
    EXPECT_TRUE(r.patternIntact) << "the kernel started at the record after the tickets";
    EXPECT_TRUE(r.closeNotify);
    EXPECT_EQ(engine().ticketsDropped(), ticketsBefore) << "no ticket reached the kernel";
}

TEST_F(KernelEngineVmTest, AKeyUpdateEndsTheSessionAfterEveryByteBeforeIt) {
    if (engine().capabilities().rekey) {
        GTEST_SKIP() << "this kernel could rekey; the engine still refuses, but 6.1 is the target";
    }
    constexpr std::uint64_t kBefore = 256 * 1024;
    TlsBackendOptions o;
    o.mode = BackendMode::Source;
    o.sourceBytes = kMiB;
    o.keyUpdateAfterBytes = kBefore;
    startBackend(std::move(o));
    KtlsClient client(backend_->port(), pki_.caPem(),
                      {TLS1_3_VERSION, "TLS_CHACHA20_POLY1305_SHA256"});
    auto session = attach(client);
    ASSERT_TRUE(session);

    const Received r = receive(client.fd(), *session, 0);
    ASSERT_TRUE(r.error) << "the KeyUpdate was not noticed; got " << r.bytes << " bytes";
    EXPECT_NE(r.error->message().find("KeyUpdate"), std::string::npos) << r.error->message();
    EXPECT_EQ(r.bytes, kBefore);
    EXPECT_TRUE(r.patternIntact);
}

TEST_F(KernelEngineVmTest, DeclinesTls13WhoseSecretsWereNotCaptured) {
    TlsBackendOptions o;
    o.mode = BackendMode::Echo;
    startBackend(std::move(o));
    KtlsClient client(backend_->port(), pki_.caPem(),
                      {TLS1_3_VERSION, "TLS_AES_128_GCM_SHA256", false});
    const std::uint64_t before = declined("no_secrets");
    const auto statBefore = test::tlsStat();
    Wire wire;
    auto session = engine().attach(client.ssl(), client.fd(), wire);
    ASSERT_EQ(session.outcome, Attach::Outcome::Declined) << session.reason;
    EXPECT_EQ(declined("no_secrets"), before + 1);
    EXPECT_EQ(test::tlsStat().at("TlsCurrTxSw"), statBefore.at("TlsCurrTxSw"));

    const std::string ping = "still userspace";
    ASSERT_EQ(SSL_write(client.ssl(), ping.data(), static_cast<int>(ping.size())),
              static_cast<int>(ping.size()));
    std::string got(ping.size(), '\0');
    std::size_t off = 0;
    while (off < got.size()) {
        const int n = SSL_read(client.ssl(), got.data() + off, static_cast<int>(got.size() - off));
        ASSERT_GT(n, 0);
        off += static_cast<std::size_t>(n);
    }
    EXPECT_EQ(got, ping);
}

TEST(KernelEngineProbeVmTest, PrintsWhatThisKernelOffers) {
    std::cout << "kernel TLS: " << engine().capabilities().describe() << "\n";
    if (!engine().capabilities().ulp) {
        GTEST_SKIP() << engine().capabilities().ulpError;
    }
    EXPECT_TRUE(engine().capabilities().tls13Rx);
}

TEST(KernelEngineFallbackTest, DeclinesWithoutTheModuleAndOpensslCarriesTheSession) {
    if (engine().capabilities().ulp) {
        GTEST_SKIP() << "the tls module is available here";
    }
    EXPECT_FALSE(engine().probe().usable);
    EXPECT_NE(engine().capabilities().ulpError.find(std::strerror(ENOENT)), std::string::npos)
        << engine().capabilities().ulpError;

    test::TestPki pki;
    TlsBackendOptions o;
    o.serverCert = pki.issueServer(test::kBackendName);
    o.mode = BackendMode::Echo;
    auto backend = TlsBackend::start(std::move(o));
    ASSERT_TRUE(backend) << backend.error().message();
    KtlsClient client((*backend)->port(), pki.caPem(), {TLS1_3_VERSION, "TLS_AES_128_GCM_SHA256"});
    auto toPeer = std::make_unique<Chunk>();
    auto fromPeer = std::make_unique<Chunk>();
    Wire wire{fromPeer.get(), toPeer.get()};
    const std::uint64_t before = declined("no_ulp");
    auto kernel = engine().attach(client.ssl(), client.fd(), wire);
    ASSERT_EQ(kernel.outcome, Attach::Outcome::Declined) << kernel.reason;
    EXPECT_EQ(declined("no_ulp"), before + 1);

    // The next engine takes it. This client's SSL still writes to the socket itself, so the
    // wire chunks only give the session room.
    openssl::OpensslEngine fallback;
    auto attached = fallback.attach(client.ssl(), client.fd(), wire);
    ASSERT_EQ(attached.outcome, Attach::Outcome::Taken);
    auto& session = attached.session;
    EXPECT_EQ(session->engine(), "openssl");
    auto plain = std::make_unique<Chunk>();
    const std::string ping = "carried by openssl";
    plain->append(ping.data(), ping.size());
    auto sealed = session->seal(*plain);
    ASSERT_TRUE(sealed) << sealed.error().message();
    EXPECT_EQ(*sealed, ping.size());
    // The engine reads until OpenSSL wants more: from here on the socket must not block.
    ASSERT_EQ(::fcntl(client.fd(), F_SETFL, ::fcntl(client.fd(), F_GETFL) | O_NONBLOCK), 0);
    std::string got;
    while (got.size() < ping.size()) {
        pollfd pfd{client.fd(), POLLIN, 0};
        ASSERT_EQ(::poll(&pfd, 1, 20000), 1) << "the echo did not come back";
        auto opened = session->open(*plain);
        ASSERT_TRUE(opened) << opened.error().message();
        got.append(reinterpret_cast<const char*>(plain->data()), plain->size());
        plain->clear();
    }
    EXPECT_EQ(got, ping);
}

}  // namespace
}  // namespace lastmile::drivers::ktls
