// SPDX-License-Identifier: Apache-2.0
// The cryptodev engine on DPDK's software devices (no hugepages) against a stock OpenSSL
// server: crypto_aesni_gcm, driven through its CPU path, and crypto_openssl, which has none and
// is driven like a lookaside accelerator through a queue pair. Sessions it takes echo
// byte-exact in both TLS versions and key sizes; what it cannot take, or a configuration it
// cannot use, is said, never a crash.
#include "drivers/cryptodev/cryptodev_engine.h"

#include <gtest/gtest.h>
#include <sys/socket.h>

#include <chrono>
#include <string>
#include <thread>
#include <vector>

#include "tests/support/process.h"
#include "tests/support/test_pki.h"
#include "tests/support/tls_backend.h"
#include "tests/unit/ktls/ktls_client.h"

namespace lastmile::drivers::cryptodev {
namespace {

// DPDK starts once per process, with the first engine's arguments: both devices then.
const std::vector<std::string> kEal = {"--vdev=crypto_aesni_gcm0", "--vdev=crypto_openssl0"};

// The device with CPU crypto.
CryptodevEngine& engine() {
    static CryptodevEngine e(CryptodevConfig{kEal, {"crypto_aesni_gcm0"}});
    return e;
}

// The device with queue pairs only.
CryptodevEngine& queueEngine() {
    static CryptodevEngine e(CryptodevConfig{kEal, {"crypto_openssl0"}});
    return e;
}

struct Param {
    int version;
    const char* cipher;
    const char* name;
    bool queue = false;  // on queueEngine()
};

std::uint64_t declined(const CryptodevEngine& e, std::string_view reason) {
    std::uint64_t n = 0;
    for (const auto& [label, count] : e.declines()) {
        n += label == reason ? count : 0;
    }
    return n;
}

// Calls `step` (a seal, an open, a close_notify) until the session placed everything the
// device had, driving the lane as the worker loop does. False when the device never finished.
template <typename Step>
bool settle(RecordSession& session, EngineLane* lane, Step step) {
    for (int round = 0; round < 100'000 && session.unsettled(); ++round) {
        if (lane != nullptr) {
            std::vector<Wire*> progressed;
            lane->flush();
            lane->poll(progressed);
        }
        step();
    }
    return !session.unsettled();
}

class CryptodevEngineTest : public ::testing::TestWithParam<Param> {
protected:
    virtual bool queue() const { return GetParam().queue; }
    CryptodevEngine& tested() { return queue() ? queueEngine() : engine(); }

    void SetUp() override {
        if (!tested().probe().usable) {
            GTEST_SKIP() << "no software crypto device here: " << tested().probe().detail;
        }
        lane_ = tested().openLane();
        test::TlsBackendOptions o;
        o.mode = test::BackendMode::Echo;
        o.serverCert = pki_.issueServer(test::kBackendName);
        auto b = test::TlsBackend::start(std::move(o));
        ASSERT_TRUE(b) << b.error().message();
        backend_ = std::move(*b);
    }

    test::TestPki pki_;
    std::unique_ptr<test::TlsBackend> backend_;
    std::unique_ptr<EngineLane> lane_;
};

TEST_P(CryptodevEngineTest, TakesTheSessionAndEchoesByteExactThenClosesCleanly) {
    test::KtlsClient client(backend_->port(), pki_.caPem(),
                            {GetParam().version, GetParam().cipher});
    auto toPeer = std::make_unique<Chunk>();
    auto fromPeer = std::make_unique<Chunk>();
    Wire wire{fromPeer.get(), toPeer.get()};
    Attach attached = tested().attach(client.ssl(), client.fd(), wire);
    ASSERT_EQ(attached.outcome, Attach::Outcome::Taken) << attached.reason;
    RecordSession& session = *attached.session;
    EXPECT_EQ(session.engine(), "cryptodev");
    EXPECT_EQ(session.framing(), Framing::Userspace);

    constexpr std::size_t kTotal = 1024 * 1024;
    auto plainOut = std::make_unique<Chunk>();
    auto plainIn = std::make_unique<Chunk>();
    std::size_t sent = 0;
    std::size_t got = 0;
    while (got < kTotal) {
        plainOut->compact();
        const std::size_t n = std::min(plainOut->room(), kTotal - sent);
        for (std::size_t i = 0; i < n; ++i) {
            plainOut->tail()[i] = test::sourcePatternByte(sent + i);
        }
        plainOut->commit(n);
        sent += n;
        auto sealed = session.seal(*plainOut);
        ASSERT_TRUE(sealed) << sealed.error().message();
        ASSERT_TRUE(settle(session, lane_.get(), [&] { ASSERT_TRUE(session.seal(*plainOut)); }));
        while (!toPeer->empty()) {
            const ssize_t w = ::send(client.fd(), toPeer->data(), toPeer->size(), MSG_NOSIGNAL);
            ASSERT_GT(w, 0);
            toPeer->consume(static_cast<std::size_t>(w));
        }
        toPeer->compact();
        fromPeer->compact();
        const ssize_t r = ::recv(client.fd(), fromPeer->tail(), fromPeer->room(), 0);
        ASSERT_GT(r, 0) << "the server stopped answering after " << got << " bytes";
        fromPeer->commit(static_cast<std::size_t>(r));
        plainIn->clear();
        auto opened = session.open(*plainIn);
        ASSERT_TRUE(opened) << opened.error().message();
        ASSERT_TRUE(settle(session, lane_.get(), [&] { ASSERT_TRUE(session.open(*plainIn)); }));
        ASSERT_TRUE(test::matchesSourcePattern(got, {plainIn->data(), plainIn->size()}))
            << "at " << got;
        got += plainIn->size();
    }
    EXPECT_EQ(got, kTotal);
    auto closed = session.closeNotify();
    ASSERT_TRUE(settle(session, lane_.get(), [&] { closed = session.closeNotify(); }));
    ASSERT_TRUE(closed && *closed);
    ASSERT_EQ(::send(client.fd(), toPeer->data(), toPeer->size(), MSG_NOSIGNAL),
              static_cast<ssize_t>(toPeer->size()));
    ASSERT_TRUE(backend_->waitForObservations(1, std::chrono::seconds(5)));
    for (int i = 0; i < 100 && !backend_->observations().front().closeNotifyReceived; ++i) {
        std::this_thread::sleep_for(std::chrono::milliseconds(20));
    }
    EXPECT_TRUE(backend_->observations().front().closeNotifyReceived);
    EXPECT_TRUE(test::eventually([&] { return backend_->totalBytesReceived() == kTotal; }));
}

INSTANTIATE_TEST_SUITE_P(
    VersionsAndCiphers, CryptodevEngineTest,
    ::testing::Values(Param{TLS1_3_VERSION, "TLS_AES_128_GCM_SHA256", "Tls13Aes128"},
                      Param{TLS1_3_VERSION, "TLS_AES_256_GCM_SHA384", "Tls13Aes256"},
                      Param{TLS1_2_VERSION, "ECDHE-ECDSA-AES128-GCM-SHA256", "Tls12Aes128"},
                      Param{TLS1_2_VERSION, "ECDHE-ECDSA-AES256-GCM-SHA384", "Tls12Aes256"},
                      Param{TLS1_3_VERSION, "TLS_AES_128_GCM_SHA256", "QueueTls13Aes128", true},
                      Param{TLS1_3_VERSION, "TLS_AES_256_GCM_SHA384", "QueueTls13Aes256", true},
                      Param{TLS1_2_VERSION, "ECDHE-ECDSA-AES128-GCM-SHA256", "QueueTls12Aes128",
                            true},
                      Param{TLS1_2_VERSION, "ECDHE-ECDSA-AES256-GCM-SHA384", "QueueTls12Aes256",
                            true}),
    [](const ::testing::TestParamInfo<Param>& p) { return std::string(p.param.name); });

// A worker thread that has no queue pair on the device (more workers than queue pairs) sends
// its sessions on to the next engine, and says why.
TEST(CryptodevQueueTest, AThreadWithoutAQueuePairDeclinesAndCountsIt) {
    if (!queueEngine().probe().usable) {
        GTEST_SKIP() << queueEngine().probe().detail;
    }
    test::TestPki pki;
    test::TlsBackendOptions o;
    o.mode = test::BackendMode::Echo;
    o.serverCert = pki.issueServer(test::kBackendName);
    auto backend = test::TlsBackend::start(std::move(o));
    ASSERT_TRUE(backend) << backend.error().message();
    test::KtlsClient client((*backend)->port(), pki.caPem(),
                            {TLS1_3_VERSION, "TLS_AES_128_GCM_SHA256"});
    Wire wire;
    Attach attached;
    std::thread([&] { attached = queueEngine().attach(client.ssl(), client.fd(), wire); }).join();
    ASSERT_EQ(attached.outcome, Attach::Outcome::Declined);
    EXPECT_NE(attached.reason.find("no queue pair on crypto_openssl0"), std::string::npos)
        << attached.reason;
    EXPECT_EQ(declined(queueEngine(), "queue_pairs"), 1U);
}

class CryptodevEngineDeclineTest : public CryptodevEngineTest {
    bool queue() const override { return false; }
};

TEST_F(CryptodevEngineDeclineTest, DeclinesChaCha20AndCountsIt) {
    test::KtlsClient client(backend_->port(), pki_.caPem(),
                            {TLS1_3_VERSION, "TLS_CHACHA20_POLY1305_SHA256"});
    Wire wire;
    Attach attached = engine().attach(client.ssl(), client.fd(), wire);
    ASSERT_EQ(attached.outcome, Attach::Outcome::Declined);
    EXPECT_NE(attached.reason.find("TLS_CHACHA20_POLY1305_SHA256"), std::string::npos)
        << attached.reason;
    EXPECT_GE(declined(engine(), "cipher"), 1U);
}

TEST(CryptodevEngineProbeTest, ADeviceWithoutCpuCryptoIsDrivenThroughQueuePairs) {
    const EngineProbe p = queueEngine().probe();
    if (!p.usable) {
        GTEST_SKIP() << p.detail;
    }
    EXPECT_NE(p.detail.find("crypto_openssl0 (AES-GCM 128 256, 8 queue pairs)"),
              std::string::npos)
        << p.detail;
    ASSERT_EQ(p.devices.size(), 1U);
    const std::vector<std::pair<std::string, bool>> expected = {
        {"driver_crypto_openssl", true},
        {"aes_128_gcm", true},
        {"aes_256_gcm", true},
        {"cpu_crypto", false}};
    EXPECT_EQ(p.devices.front().features, expected);
}

TEST(CryptodevEngineProbeTest, ReportsTheDeviceAndWhatItDoes) {
    const EngineProbe p = engine().probe();
    if (!p.usable) {
        GTEST_SKIP() << p.detail;
    }
    EXPECT_NE(p.detail.find("crypto_aesni_gcm0"), std::string::npos) << p.detail;
    ASSERT_EQ(p.devices.size(), 1U);
    const auto& features = p.devices.front().features;
    const std::vector<std::pair<std::string, bool>> expected = {
        {"driver_crypto_aesni_gcm", true},
        {"aes_128_gcm", true},
        {"aes_256_gcm", true},
        {"cpu_crypto", true}};
    EXPECT_EQ(features, expected);
}

TEST(CryptodevEngineProbeTest, WithoutDevicesItIsUnusableAndSaysWhy) {
    const CryptodevEngine none(CryptodevConfig{});
    EXPECT_FALSE(none.probe().usable);
    EXPECT_EQ(none.probe().detail, "no crypto device configured (cryptodev.devices)");
    engine();  // DPDK is up: a device that does not exist is named as such
    const CryptodevEngine missing(CryptodevConfig{{}, {"crypto_aesni_gcm7"}});
    EXPECT_FALSE(missing.probe().usable);
    EXPECT_NE(missing.probe().detail.find("crypto_aesni_gcm7: no such crypto device"),
              std::string::npos)
        << missing.probe().detail;
}

// rte_eal_init exits the process on some arguments: only exact, known forms pass.
TEST(EalArgumentsTest, OnlyTheAllowListedFormsPass) {
    EXPECT_TRUE(checkEalArguments({"--vdev=crypto_aesni_gcm0",
                                   "--vdev=crypto_aesni_gcm1,max_nb_queue_pairs=4",
                                   "--allow=0000:3d:01.0", "-m256", "--huge-dir=/dev/hugepages",
                                   "--iova-mode=va", "--log-level=lib.eal:notice"}));
    for (const char* bad :
         {"-h", "--help", "--log-level=help", "--file-prefix=other", "--vdev=net_pcap0,iface=eth0",
          "--vdev=crypto_aesni_gcm0,x=1", "--huge-dir=../x y", "-m", "--lcores=0-63",
          "--vdev=crypto_aesni_gcm0 "}) {
        auto s = checkEalArguments({bad});
        ASSERT_FALSE(s) << bad;
        EXPECT_EQ(s.error().code(), make_error_code(Errc::Invalid)) << bad;
    }
}

}  // namespace
}  // namespace lastmile::drivers::cryptodev
