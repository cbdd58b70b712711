// SPDX-License-Identifier: Apache-2.0
// The kernel engine on a host without kernel TLS: probes say why, and attach declines without
// touching the socket, so the session carries on in userspace.
#include "drivers/ktls/ktls_engine.h"

#include <gtest/gtest.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sys/socket.h>

#include <cerrno>
#include <cstring>
#include <string>
#include <vector>

#include "drivers/ktls/probe.h"
#include "tests/support/test_pki.h"
#include "tests/support/tls_backend.h"
#include "tests/unit/ktls/ktls_client.h"

namespace lastmile::drivers::ktls {
namespace {

using test::BackendMode;
using test::KtlsClient;
using test::KtlsClientOptions;
using test::TlsBackend;
using test::TlsBackendOptions;

constexpr char kAes128Tls13[] = "TLS_AES_128_GCM_SHA256";

std::uint64_t declined(const KernelEngine& engine, std::string_view label) {
    for (const auto& [name, count] : engine.declines()) {
        if (name == label) {
            return count;
        }
    }
    ADD_FAILURE() << "no decline label " << label;
    return 0;
}

// What a kernel with every cipher would report; attach then gets as far as TCP_ULP.
KernelTlsCapabilities everything() {
    KernelTlsCapabilities caps;
    caps.ulp = true;
    for (auto& c : caps.ciphers) {
        c.tls12 = {true, true, {}};
        c.tls13 = {true, true, {}};
    }
    caps.ciphers[1].cipher = tls::Aead::Aes256Gcm;
    caps.ciphers[2].cipher = tls::Aead::Chacha20Poly1305;
    return caps;
}

// The ULP the socket carries: empty for a plain TCP socket.
std::string ulpOf(int fd) {
    char name[16] = {};
    socklen_t len = sizeof name;
    if (::getsockopt(fd, IPPROTO_TCP, TCP_ULP, name, &len) == -1) {
        return "getsockopt failed: " + std::string(std::strerror(errno));
    }
    return std::string(name, strnlen(name, len));
}

class KernelEngineHostTest : public ::testing::Test {
protected:
    void SetUp() override {
        TlsBackendOptions o;
        o.serverCert = pki_.issueServer(test::kBackendName);
        o.mode = BackendMode::Echo;
        auto b = TlsBackend::start(std::move(o));
        ASSERT_TRUE(b) << b.error().message();
        backend_ = std::move(*b);
    }

    KtlsClient connect(KtlsClientOptions o = {}) {
        o.cipher = o.cipher.empty() ? kAes128Tls13 : o.cipher;
        return KtlsClient(backend_->port(), pki_.caPem(), o);
    }

    // The session still works in userspace over the same socket.
    static void expectUserspaceEcho(KtlsClient& client) {
        EXPECT_EQ(ulpOf(client.fd()), "");
        const std::string ping = "still userspace TLS";
        ASSERT_EQ(SSL_write(client.ssl(), ping.data(), static_cast<int>(ping.size())),
                  static_cast<int>(ping.size()));
        std::string got(ping.size(), '\0');
        std::size_t off = 0;
        while (off < got.size()) {
            const int n =
                SSL_read(client.ssl(), got.data() + off, static_cast<int>(got.size() - off));
            ASSERT_GT(n, 0) << "SSL_read failed";
            off += static_cast<std::size_t>(n);
        }
        EXPECT_EQ(got, ping);
    }

    test::TestPki pki_;
    std::unique_ptr<TlsBackend> backend_;
};

TEST(KernelTlsProbeTest, ReportsTheKernelsReasonWhenTheUlpIsMissing) {
    const KernelTlsCapabilities caps = probeKernelTls();
    if (caps.ulp) {
        GTEST_SKIP() << "this kernel has TLS: " << caps.describe();
    }
    EXPECT_FALSE(caps.usable());
    EXPECT_FALSE(caps.rekey);
    EXPECT_NE(std::string(caps.ulpError).find("TCP_ULP"), std::string::npos) << caps.ulpError;
    EXPECT_NE(std::string(caps.ulpError).find(std::strerror(ENOENT)), std::string::npos)
        << caps.ulpError;
    EXPECT_NE(std::string(caps.describe()).find(caps.ulpError), std::string::npos)
        << caps.describe();
    for (const CipherSupport& c : caps.ciphers) {
        EXPECT_FALSE(c.tls13.tx || c.tls13.rx || c.tls12.tx || c.tls12.rx);
    }
}

TEST(KernelTlsProbeTest, ListsInterfacesWithTheirTlsOffloadState) {
    const KernelTlsCapabilities caps = probeKernelTls();
    if (caps.nics.empty()) {
        GTEST_SKIP() << "no interface answered ethtool: " << caps.nicError;
    }
    bool loopback = false;
    for (const NicTlsOffload& n : caps.nics) {
        if (n.interface == "lo") {
            loopback = true;
            EXPECT_FALSE(n.tx || n.rx) << "loopback has no TLS crypto";
        }
    }
    EXPECT_TRUE(loopback);
}

TEST_F(KernelEngineHostTest, ProbeIsUnusableWithoutTheUlp) {
    KernelEngine engine;
    if (engine.capabilities().ulp) {
        GTEST_SKIP() << "this kernel has TLS";
    }
    const EngineProbe p = engine.probe();
    EXPECT_FALSE(p.usable);
    EXPECT_EQ(p.detail, engine.capabilities().describe());
    EXPECT_EQ(engine.name(), "kernel");
}

TEST_F(KernelEngineHostTest, DeclinesWithoutTheUlpAndTheSessionStaysInUserspace) {
    KernelEngine engine;
    if (engine.capabilities().ulp) {
        GTEST_SKIP() << "this kernel has TLS";
    }
    KtlsClient client = connect();
    Wire wire;
    auto session = engine.attach(client.ssl(), client.fd(), wire);
    ASSERT_EQ(session.outcome, Attach::Outcome::Declined) << session.reason;
    EXPECT_EQ(declined(engine, "no_ulp"), 1U);
    expectUserspaceEcho(client);
}

// The next engine may be kernel-framed too and need the secrets; once the worker has chosen,
// passOver drops them, so a session kept in userspace does not hold them for its whole life.
TEST_F(KernelEngineHostTest, ADeclinedSessionKeepsItsSecretsUntilPassedOver) {
    KernelEngine engine(everything());
    KtlsClient client = connect();
    ASSERT_NE(tls::capturedTrafficSecrets(client.ssl()), nullptr);
    Chunk fromPeer;  // a record already in userspace: declined (buffered_records)
    fromPeer.append("\x17\x03\x03", 3);
    Wire wire{&fromPeer, nullptr};
    ASSERT_EQ(engine.attach(client.ssl(), client.fd(), wire).outcome, Attach::Outcome::Declined);
    EXPECT_NE(tls::capturedTrafficSecrets(client.ssl()), nullptr);
    engine.passOver(client.ssl());
    EXPECT_EQ(tls::capturedTrafficSecrets(client.ssl()), nullptr);
    expectUserspaceEcho(client);
}

TEST_F(KernelEngineHostTest, DeclinesTls13WhoseSecretsWereNotCapturedBeforeTouchingTheSocket) {
    KernelEngine engine(everything());
    KtlsClient client = connect({.cipher = kAes128Tls13, .captureSecrets = false});
    Wire wire;
    auto session = engine.attach(client.ssl(), client.fd(), wire);
    ASSERT_EQ(session.outcome, Attach::Outcome::Declined) << session.reason;
    EXPECT_EQ(declined(engine, "no_secrets"), 1U);
    expectUserspaceEcho(client);
}

TEST_F(KernelEngineHostTest, DeclinesWhenRecordsAreAlreadyBufferedInUserspace) {
    KernelEngine engine(everything());
    KtlsClient client = connect();
    auto fromPeer = std::make_unique<Chunk>();
    const char record[] = "\x17\x03\x03";
    fromPeer->append(record, 3);
    Wire wire{fromPeer.get(), nullptr};
    auto session = engine.attach(client.ssl(), client.fd(), wire);
    ASSERT_EQ(session.outcome, Attach::Outcome::Declined) << session.reason;
    EXPECT_EQ(declined(engine, "buffered_records"), 1U);
    expectUserspaceEcho(client);
}

TEST_F(KernelEngineHostTest, DeclinesACipherThisKernelDoesNotOffer) {
    KernelTlsCapabilities caps = everything();
    caps.ciphers[static_cast<std::size_t>(tls::Aead::Chacha20Poly1305)].tls13.rx = false;
    KernelEngine engine(std::move(caps));
    KtlsClient client = connect({.cipher = "TLS_CHACHA20_POLY1305_SHA256"});
    Wire wire;
    auto session = engine.attach(client.ssl(), client.fd(), wire);
    ASSERT_EQ(session.outcome, Attach::Outcome::Declined) << session.reason;
    EXPECT_NE(session.reason.find("ChaCha20-Poly1305"), std::string::npos) << session.reason;
    EXPECT_EQ(declined(engine, "cipher"), 1U);
    expectUserspaceEcho(client);
}

TEST_F(KernelEngineHostTest, ARefusedUlpLeavesThePlainSocket) {
    KernelEngine engine(everything());
    if (probeKernelTls().ulp) {
        GTEST_SKIP() << "this kernel has TLS: the ULP would be accepted";
    }
    KtlsClient client = connect();
    Wire wire;
    auto session = engine.attach(client.ssl(), client.fd(), wire);
    ASSERT_EQ(session.outcome, Attach::Outcome::Declined) << session.reason;
    EXPECT_EQ(declined(engine, "ulp_refused"), 1U);
    expectUserspaceEcho(client);
}

TEST(KernelEngineDeclinesTest, ListsEveryReasonFromTheStart) {
    KernelEngine engine(KernelTlsCapabilities{});
    std::vector<std::string_view> labels;
    for (const auto& [label, count] : engine.declines()) {
        labels.push_back(label);
        EXPECT_EQ(count, 0U);
    }
    const std::vector<std::string_view> expected = {
        "no_ulp",     "version", "cipher",      "buffered_records", "unsent_records",
        "no_secrets", "keys",    "ulp_refused", "kernel_refused",   "not_offloaded"};
    EXPECT_EQ(labels, expected);
}

TEST(KernelEngineTraitsTest, EachServesAutoAndItsOwnNameAndNeitherKeepsTickets) {
    const KernelEngine kernel(KernelTlsCapabilities{});
    const KernelEngine nic(KernelTlsCapabilities{}, KernelEngine::Mode::Nic);
    EXPECT_EQ(kernel.name(), "kernel");
    EXPECT_EQ(nic.name(), "nic");
    for (Offload o : kOffloads) {
        EXPECT_EQ(kernel.serves(o), o == Offload::Auto || o == Offload::Kernel) << offloadName(o);
        EXPECT_EQ(nic.serves(o), o == Offload::Auto || o == Offload::Nic) << offloadName(o);
    }
    EXPECT_FALSE(kernel.keepsTickets());
    EXPECT_FALSE(nic.keepsTickets());
}

TEST(NicEngineProbeTest, UnusableWithoutAnInterfaceThatOffloadsTransmit) {
    KernelTlsCapabilities caps = everything();
    caps.nics = {{"lo", false, false}, {"eth0", false, true}};
    const EngineProbe p = KernelEngine(caps, KernelEngine::Mode::Nic).probe();
    EXPECT_FALSE(p.usable);
    EXPECT_NE(p.detail.find("no interface has tls-hw-tx-offload"), std::string::npos) << p.detail;
    ASSERT_EQ(p.devices.size(), 2U);
    EXPECT_EQ(p.devices[1].name, "eth0");
    const std::vector<std::pair<std::string, bool>> features = {{"tx", false}, {"rx", true}};
    EXPECT_EQ(p.devices[1].features, features);
    EXPECT_TRUE(KernelEngine(caps).probe().usable) << "the software engine does not need a NIC";
    EXPECT_TRUE(KernelEngine(caps).probe().devices.empty());
}

TEST(NicEngineProbeTest, UsableAndNamesTheOffloadingInterfaces) {
    KernelTlsCapabilities caps = everything();
    caps.nics = {{"eth1", true, true}};
    const EngineProbe p = KernelEngine(caps, KernelEngine::Mode::Nic).probe();
    EXPECT_TRUE(p.usable);
    EXPECT_NE(p.detail.find("TLS transmit offload on eth1"), std::string::npos) << p.detail;
}

// A NIC that does TLS inline carries AES-GCM; the client's order steers the backend there,
// unless the policy chose the suites.
TEST(NicEngineContextTest, PutsAesGcmFirstUnlessThePolicyChoseTheSuites) {
    auto firstSuite = [](KernelEngine::Mode mode, const std::string& policySuites) {
        lastmile::tls::SslCtxPtr ctx(SSL_CTX_new(TLS_client_method()));
        if (!policySuites.empty()) {
            SSL_CTX_set_ciphersuites(ctx.get(), policySuites.c_str());
        }
        KernelEngine(KernelTlsCapabilities{}, mode)
            .prepareContext(ctx.get(), ContextFacts{!policySuites.empty()});
        return std::string(
            SSL_CIPHER_get_name(sk_SSL_CIPHER_value(SSL_CTX_get_ciphers(ctx.get()), 0)));
    };
    EXPECT_EQ(firstSuite(KernelEngine::Mode::Software, ""), "TLS_AES_256_GCM_SHA384")
        << "OpenSSL's own order";
    EXPECT_EQ(firstSuite(KernelEngine::Mode::Nic, ""), "TLS_AES_128_GCM_SHA256");
    EXPECT_EQ(firstSuite(KernelEngine::Mode::Nic, "TLS_CHACHA20_POLY1305_SHA256"),
              "TLS_CHACHA20_POLY1305_SHA256");
}

// The route to a loopback backend leaves through lo: the nic engine passes the session on
// unless lo is the offloading interface (made up here), and then goes on to the kernel.
TEST_F(KernelEngineHostTest, NicEngineTakesOnlySessionsRoutedThroughAnOffloadingInterface) {
    KernelTlsCapabilities caps = everything();
    caps.nics = {{"eth9", true, true}};
    KernelEngine nic(caps, KernelEngine::Mode::Nic);
    KtlsClient client = connect();
    Wire wire;
    auto session = nic.attach(client.ssl(), client.fd(), wire);
    ASSERT_EQ(session.outcome, Attach::Outcome::Declined);
    EXPECT_EQ(session.reason, "kernel TLS: lo has no TLS transmit offload");
    EXPECT_EQ(declined(nic, "not_offloaded"), 1U);
    expectUserspaceEcho(client);

    if (probeKernelTls().ulp) {
        return;  // the made-up lo offload would really take the session: tests/vm covers it
    }
    caps.nics = {{"lo", true, false}};
    KernelEngine loNic(caps, KernelEngine::Mode::Nic);
    KtlsClient other = connect();
    Wire otherWire;
    EXPECT_EQ(loNic.attach(other.ssl(), other.fd(), otherWire).outcome, Attach::Outcome::Declined);
    EXPECT_EQ(declined(loNic, "not_offloaded"), 0U);
    EXPECT_EQ(declined(loNic, "ulp_refused"), 1U) << "past the route check, refused by this kernel";
    expectUserspaceEcho(other);
}

}  // namespace
}  // namespace lastmile::drivers::ktls
