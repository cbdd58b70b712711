// SPDX-License-Identifier: Apache-2.0
// The cryptodev engine on DPDK's software AES-GCM device (crypto_aesni_gcm, no hugepages)
// against a stock OpenSSL server: sessions it takes echo byte-exact in both TLS versions and
// key sizes; what it cannot take, or a configuration it cannot use, is said, never a crash.
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

const CryptodevConfig kSoftwareDevice{{"--vdev=crypto_aesni_gcm0"}, {"crypto_aesni_gcm0"}};

// One engine per process: DPDK starts once.
CryptodevEngine& engine() {
    static CryptodevEngine e(kSoftwareDevice);
    return e;
}

struct Param {
    int version;
    const char* cipher;
    const char* name;
};

class CryptodevEngineTest : public ::testing::TestWithParam<Param> {
protected:
    void SetUp() override {
        if (!engine().probe().usable) {
            GTEST_SKIP() << "no software crypto device here: " << engine().probe().detail;
        }
        test::TlsBackendOptions o;
        o.mode = test::BackendMode::Echo;
        o.serverCert = pki_.issueServer(test::kBackendName);
        auto b = test::TlsBackend::start(std::move(o));
        ASSERT_TRUE(b) << b.error().message();
        backend_ = std::move(*b);
    }

    test::TestPki pki_;
    std::unique_ptr<test::TlsBackend> backend_;
};

TEST_P(CryptodevEngineTest, TakesTheSessionAndEchoesByteExactThenClosesCleanly) {
    test::KtlsClient client(backend_->port(), pki_.caPem(),
                            {GetParam().version, GetParam().cipher});
    auto toPeer = std::make_unique<Chunk>();
    auto fromPeer = std::make_unique<Chunk>();
    Wire wire{fromPeer.get(), toPeer.get()};
    Attach attached = engine().attach(client.ssl(), client.fd(), wire);
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
        ASSERT_TRUE(test::matchesSourcePattern(got, {plainIn->data(), plainIn->size()}))
            << "at " << got;
        got += plainIn->size();
    }
    EXPECT_EQ(got, kTotal);
    ASSERT_TRUE(session.closeNotify());
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
                      Param{TLS1_2_VERSION, "ECDHE-ECDSA-AES256-GCM-SHA384", "Tls12Aes256"}),
    [](const ::testing::TestParamInfo<Param>& p) { return std::string(p.param.name); });

class CryptodevEngineDeclineTest : public CryptodevEngineTest {};

TEST_F(CryptodevEngineDeclineTest, DeclinesChaCha20AndCountsIt) {
    test::KtlsClient client(backend_->port(), pki_.caPem(),
                            {TLS1_3_VERSION, "TLS_CHACHA20_POLY1305_SHA256"});
    Wire wire;
    Attach attached = engine().attach(client.ssl(), client.fd(), wire);
    ASSERT_EQ(attached.outcome, Attach::Outcome::Declined);
    EXPECT_NE(attached.reason.find("TLS_CHACHA20_POLY1305_SHA256"), std::string::npos)
        << attached.reason;
    std::uint64_t cipher = 0;
    for (const auto& [label, n] : engine().declines()) {
        cipher += label == "cipher" ? n : 0;
    }
    EXPECT_GE(cipher, 1U);
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
