// SPDX-License-Identifier: Apache-2.0
// RecordLayer against a stock OpenSSL server, with OpenSSL's EVP standing in for the crypto
// device: records it seals open in OpenSSL and OpenSSL's open here, byte-exact, through
// KeyUpdates both ways, padding, tickets and close_notify; tampering ends the stream.
#include "drivers/tls/record_layer.h"

#include <gtest/gtest.h>
#include <openssl/evp.h>
#include <sys/socket.h>

#include <string>
#include <vector>

#include "base/handle.h"
#include "drivers/tls/keys.h"
#include "tests/support/process.h"
#include "tests/support/test_pki.h"
#include "tests/support/tls_backend.h"
#include "tests/unit/ktls/ktls_client.h"

namespace lastmile::drivers::tls {
namespace {

using test::BackendMode;
using test::KtlsClient;
using test::TlsBackend;
using test::TlsBackendOptions;
using EvpCipherCtxPtr = Handle<EVP_CIPHER_CTX, EVP_CIPHER_CTX_free>;

constexpr std::uint64_t kMiB = 1024 * 1024;

// AES-GCM through EVP, one job at a time; counts what it was asked to do. Deferred, it acts
// like a device queue: a batch runs only when finished() is asked the second time.
class EvpRunner final : public AeadRunner {
public:
    struct Calls {
        int batches = 0;
        int rekeys = 0;
        bool failNext = false;  // the next batch fails like a device error
        bool deferred = false;
    };
    explicit EvpRunner(Calls& calls) : calls_(calls) {}

    Status setKey(AeadDirection d, std::span<const std::uint8_t> key) override {
        auto& k = d == AeadDirection::Seal ? seal_ : open_;
        k.assign(key.begin(), key.end());
        ++calls_.rekeys;
        return {};
    }

    Status start(AeadDirection d, std::span<AeadJob> jobs) override {
        ++calls_.batches;
        if (!calls_.deferred) {
            return run(d, jobs);
        }
        EXPECT_TRUE(queued_[index(d)].empty()) << "one batch at a time each way";
        queued_[index(d)] = jobs;
        asked_[index(d)] = 0;
        return {};
    }

    Result<bool> finished(AeadDirection d) override {
        auto& jobs = queued_[index(d)];
        if (jobs.empty()) {
            return true;
        }
        if (asked_[index(d)]++ == 0) {
            return false;  // still on the "device"
        }
        LM_TRY(run(d, std::exchange(jobs, {})));
        return true;
    }

    bool busy() const noexcept override { return !queued_[0].empty() || !queued_[1].empty(); }

private:
    static std::size_t index(AeadDirection d) { return d == AeadDirection::Seal ? 0 : 1; }

    Status run(AeadDirection d, std::span<AeadJob> jobs) {
        if (calls_.failNext) {
            return fail(Errc::Internal, "device error (test)");
        }
        const auto& key = d == AeadDirection::Seal ? seal_ : open_;
        const EVP_CIPHER* cipher = key.size() == 16 ? EVP_aes_128_gcm() : EVP_aes_256_gcm();
        for (AeadJob& job : jobs) {
            EvpCipherCtxPtr ctx(EVP_CIPHER_CTX_new());
            const int enc = d == AeadDirection::Seal ? 1 : 0;
            int n = 0;
            bool ok = EVP_CipherInit_ex(ctx.get(), cipher, nullptr, key.data(), job.nonce.data(),
                                        enc) == 1 &&
                      EVP_CipherUpdate(ctx.get(), nullptr, &n, job.aad.data(),
                                       static_cast<int>(job.aadLen)) == 1;
            for (const auto& span : job.text) {
                ok = ok && (span.len == 0 || EVP_CipherUpdate(ctx.get(), span.data, &n, span.data,
                                                              static_cast<int>(span.len)) == 1);
            }
            if (!enc) {
                ok = ok && EVP_CIPHER_CTX_ctrl(ctx.get(), EVP_CTRL_AEAD_SET_TAG, kAeadTag,
                                               job.tag) == 1;
            }
            std::uint8_t none[16];
            ok = ok && EVP_CipherFinal_ex(ctx.get(), none, &n) == 1;
            if (enc) {
                ok = ok && EVP_CIPHER_CTX_ctrl(ctx.get(), EVP_CTRL_AEAD_GET_TAG, kAeadTag,
                                               job.tag) == 1;
                if (!ok) {
                    return fail(Errc::Internal, "EVP sealing failed");
                }
            }
            job.authentic = ok;
        }
        return {};
    }

    Calls& calls_;
    std::vector<std::uint8_t> seal_;
    std::vector<std::uint8_t> open_;
    std::array<std::span<AeadJob>, 2> queued_;
    std::array<int, 2> asked_{};
};

struct Param {
    int version;
    const char* cipher;
    const char* name;
};

class RecordLayerTest : public ::testing::TestWithParam<Param> {
protected:
    void start(TlsBackendOptions o) {
        o.serverCert = pki_.issueServer(test::kBackendName);
        auto b = TlsBackend::start(std::move(o));
        ASSERT_TRUE(b) << b.error().message();
        backend_ = std::move(*b);
        client_ = std::make_unique<KtlsClient>(backend_->port(), pki_.caPem(),
                                               test::KtlsClientOptions{GetParam().version,
                                                                       GetParam().cipher});
    }

    std::unique_ptr<RecordLayer> layer(std::uint64_t rekeyAfter = RecordLayer::kRekeyAfter) {
        auto keys = deriveClientKeys(client_->ssl());
        EXPECT_TRUE(keys) << keys.error().message();
        auto made = RecordLayer::create(*keys, std::make_unique<EvpRunner>(calls_), rekeyAfter);
        EXPECT_TRUE(made) << made.error().message();
        return std::move(*made);
    }

    void writeAll(Chunk& from) {
        while (!from.empty()) {
            const ssize_t n = ::send(client_->fd(), from.data(), from.size(), MSG_NOSIGNAL);
            ASSERT_GT(n, 0) << std::strerror(errno);
            from.consume(static_cast<std::size_t>(n));
        }
        from.compact();
    }

    // Reads what the socket has (waiting for at least one byte) into `into`; false at EOF.
    bool readSome(Chunk& into) {
        into.compact();
        const ssize_t n = ::recv(client_->fd(), into.tail(), into.room(), 0);
        if (n <= 0) {
            return false;
        }
        into.commit(static_cast<std::size_t>(n));
        return true;
    }

    // Sends `total` pattern bytes through the layer and reads the echo back until `total`
    // came back (or the stream broke). Returns what was opened. A deferred runner's batches
    // are settled by calling again, as the worker does when its lane reports progress.
    std::string echo(RecordLayer& rl, std::uint64_t total) {
        auto plainOut = std::make_unique<Chunk>();
        auto toPeer = std::make_unique<Chunk>();
        auto fromPeer = std::make_unique<Chunk>();
        auto plainIn = std::make_unique<Chunk>();
        std::string got;
        std::uint64_t queued = 0;
        while (got.size() < total) {
            plainOut->compact();
            const auto n = static_cast<std::size_t>(
                std::min<std::uint64_t>({plainOut->room(), total - queued, 70'000}));
            for (std::size_t i = 0; i < n; ++i) {
                plainOut->tail()[i] = test::sourcePatternByte(queued + i);
            }
            plainOut->commit(n);
            queued += n;
            do {
                auto sealed = rl.seal(*plainOut, *toPeer);
                EXPECT_TRUE(sealed) << sealed.error().message();
            } while (rl.unsettled());
            writeAll(*toPeer);
            if (!readSome(*fromPeer)) {
                break;
            }
            plainIn->clear();
            do {
                auto opened = rl.open(*fromPeer, *plainIn);
                if (!opened) {
                    ADD_FAILURE() << opened.error().message();
                    return got;
                }
            } while (rl.unsettled());
            got.append(reinterpret_cast<const char*>(plainIn->data()), plainIn->size());
        }
        return got;
    }

    void startEcho() {
        TlsBackendOptions o;
        o.mode = BackendMode::Echo;
        start(std::move(o));
    }

    bool backendSawCloseNotify() {
        return backend_->waitForObservations(1, std::chrono::seconds(5)) &&
               test::eventually(
                   [&] { return backend_->observations().front().closeNotifyReceived; });
    }

    // The backend counts what it received after echoing it: the echo can arrive first.
    bool receivedByBackend(std::uint64_t n) {
        return test::eventually([&] { return backend_->totalBytesReceived() == n; });
    }

    static bool isPattern(const std::string& s) {
        return test::matchesSourcePattern(
            0, {reinterpret_cast<const std::uint8_t*>(s.data()), s.size()});
    }

    test::TestPki pki_;
    std::unique_ptr<TlsBackend> backend_;
    std::unique_ptr<KtlsClient> client_;
    EvpRunner::Calls calls_;
};

TEST_P(RecordLayerTest, EchoesByteExactThroughAStockServerAndClosesWithCloseNotify) {
    startEcho();
    auto rl = layer();
    const std::string got = echo(*rl, 4 * kMiB);
    EXPECT_EQ(got.size(), 4 * kMiB);
    EXPECT_TRUE(isPattern(got));
    EXPECT_LT(calls_.batches, static_cast<int>(4 * kMiB / kMaxRecordPlaintext))
        << "records go to the runner in batches";

    auto toPeer = std::make_unique<Chunk>();
    auto closing = rl->closeNotify(*toPeer);
    ASSERT_TRUE(closing && *closing);
    writeAll(*toPeer);
    auto fromPeer = std::make_unique<Chunk>();
    auto plain = std::make_unique<Chunk>();
    bool closed = false;
    while (!closed && readSome(*fromPeer)) {
        auto opened = rl->open(*fromPeer, *plain);
        ASSERT_TRUE(opened) << opened.error().message();
        closed = opened->closeNotify;
    }
    EXPECT_TRUE(closed) << "the server answered our close_notify with its own";
    EXPECT_TRUE(backendSawCloseNotify());
}

TEST_P(RecordLayerTest, ADeviceErrorEndsTheStreamAndNothingIsSent) {
    startEcho();
    auto rl = layer();
    auto plain = std::make_unique<Chunk>();
    plain->append("never in plaintext", 18);
    auto toPeer = std::make_unique<Chunk>();
    calls_.failNext = true;
    EXPECT_FALSE(rl->seal(*plain, *toPeer));
    EXPECT_TRUE(toPeer->empty()) << "no record left half sealed on the wire";
}

TEST_P(RecordLayerTest, ATamperedRecordDoesNotAuthenticate) {
    TlsBackendOptions o;
    o.mode = BackendMode::Source;
    o.sourceBytes = 64 * 1024;
    start(std::move(o));
    auto rl = layer();
    auto fromPeer = std::make_unique<Chunk>();
    while (fromPeer->size() < 64 * 1024 && readSome(*fromPeer)) {
    }
    ASSERT_GT(fromPeer->size(), 100U);
    fromPeer->data()[60] ^= 1;
    auto plain = std::make_unique<Chunk>();
    auto opened = rl->open(*fromPeer, *plain);
    ASSERT_FALSE(opened);
    EXPECT_NE(opened.error().message().find("bad_record_mac"), std::string::npos)
        << opened.error().message();
    EXPECT_TRUE(plain->empty()) << "no byte of a forged record is handed out";
}

// A device that finishes later (a queue the worker polls): records are placed only once done,
// in order, and the close_notify goes out once, after everything before it.
TEST_P(RecordLayerTest, EchoesByteExactWhenTheDeviceFinishesLater) {
    startEcho();
    calls_.deferred = true;
    auto rl = layer();
    const std::string got = echo(*rl, 2 * kMiB);
    EXPECT_EQ(got.size(), 2 * kMiB);
    EXPECT_TRUE(isPattern(got));

    auto toPeer = std::make_unique<Chunk>();
    auto closing = rl->closeNotify(*toPeer);
    ASSERT_TRUE(closing && !*closing) << "not yet";
    EXPECT_TRUE(toPeer->empty()) << "nothing placed before the device finished";
    closing = rl->closeNotify(*toPeer);
    ASSERT_TRUE(closing && *closing);
    const std::size_t alert = toPeer->size();
    closing = rl->closeNotify(*toPeer);
    ASSERT_TRUE(closing && *closing);
    EXPECT_EQ(toPeer->size(), alert) << "asking again sends nothing more";
    writeAll(*toPeer);
    EXPECT_TRUE(backendSawCloseNotify());
    EXPECT_TRUE(receivedByBackend(2 * kMiB));
}

// A close_notify asked for while the wire has no room for it waits for room; it used to be
// reported as an error, and the worker then sent the FIN without it (a truncation).
TEST_P(RecordLayerTest, ACloseNotifyWithoutRoomWaitsForRoomInsteadOfBeingLost) {
    startEcho();
    auto rl = layer();
    auto toPeer = std::make_unique<Chunk>();
    toPeer->commit(toPeer->room() - 10);  // a send is still reading these
    auto closing = rl->closeNotify(*toPeer);
    ASSERT_TRUE(closing && !*closing) << "not yet";
    toPeer->clear();  // sent
    closing = rl->closeNotify(*toPeer);
    ASSERT_TRUE(closing && *closing);
    writeAll(*toPeer);
    EXPECT_TRUE(backendSawCloseNotify());
}

TEST_P(RecordLayerTest, ADeviceErrorReportedLaterEndsTheStreamAndNothingIsSent) {
    startEcho();
    calls_.deferred = true;
    auto rl = layer();
    auto plain = std::make_unique<Chunk>();
    plain->append("never in plaintext", 18);
    auto toPeer = std::make_unique<Chunk>();
    auto sealed = rl->seal(*plain, *toPeer);
    ASSERT_TRUE(sealed);
    EXPECT_EQ(*sealed, 0U) << "on the device";
    calls_.failNext = true;
    EXPECT_FALSE(rl->seal(*plain, *toPeer));
    EXPECT_TRUE(toPeer->empty()) << "no record left half sealed on the wire";
}

INSTANTIATE_TEST_SUITE_P(
    VersionsAndCiphers, RecordLayerTest,
    ::testing::Values(Param{TLS1_3_VERSION, "TLS_AES_128_GCM_SHA256", "Tls13Aes128"},
                      Param{TLS1_3_VERSION, "TLS_AES_256_GCM_SHA384", "Tls13Aes256"},
                      Param{TLS1_2_VERSION, "ECDHE-ECDSA-AES128-GCM-SHA256", "Tls12Aes128"},
                      Param{TLS1_2_VERSION, "ECDHE-ECDSA-AES256-GCM-SHA384", "Tls12Aes256"}),
    [](const ::testing::TestParamInfo<Param>& p) { return std::string(p.param.name); });

class RecordLayerTls13Test : public RecordLayerTest {
protected:
    // Echoes 2 MiB through a server that updates its keys after 100 kB and asks for ours.
    std::unique_ptr<RecordLayer> echoThroughARequestedKeyUpdate(std::uint64_t rekeyAfter) {
        TlsBackendOptions o;
        o.mode = BackendMode::Echo;
        o.keyUpdateAfterBytes = 100'000;
        o.keyUpdateRequested = true;
        start(std::move(o));
        auto rl = layer(rekeyAfter);
        const std::string got = echo(*rl, 2 * kMiB);
        EXPECT_EQ(got.size(), 2 * kMiB);
        EXPECT_TRUE(isPattern(got));
        EXPECT_EQ(rl->keyUpdatesReceived(), 1U);
        return rl;
    }
};

// The server updates its keys mid-stream: the records after its KeyUpdate open under the
// next generation, and none is lost or garbled on either side of it.
TEST_P(RecordLayerTls13Test, FollowsTheServersKeyUpdate) {
    TlsBackendOptions o;
    o.mode = BackendMode::Source;
    o.sourceBytes = 2 * kMiB;
    o.keyUpdateAfterBytes = 300'000;
    start(std::move(o));
    auto rl = layer();
    auto fromPeer = std::make_unique<Chunk>();
    auto plain = std::make_unique<Chunk>();
    std::string got;
    bool closed = false;
    while (!closed && readSome(*fromPeer)) {
        plain->clear();
        auto opened = rl->open(*fromPeer, *plain);
        ASSERT_TRUE(opened) << opened.error().message() << " after " << got.size();
        got.append(reinterpret_cast<const char*>(plain->data()), plain->size());
        closed = opened->closeNotify;
    }
    EXPECT_TRUE(closed);
    EXPECT_EQ(got.size(), 2 * kMiB);
    EXPECT_TRUE(isPattern(got));
    EXPECT_EQ(rl->keyUpdatesReceived(), 1U);
    EXPECT_EQ(rl->keyUpdatesSent(), 0U) << "update_not_requested";
    EXPECT_GE(rl->ticketsDropped(), 1U) << "the server's tickets came first";
}

// A KeyUpdate that asks for ours: we send one before our next record, and the server opens
// everything after it under our next generation.
TEST_P(RecordLayerTls13Test, AnswersAKeyUpdateThatRequestsOurs) {
    auto rl = echoThroughARequestedKeyUpdate(RecordLayer::kRekeyAfter);
    EXPECT_EQ(rl->keyUpdatesSent(), 1U);
    EXPECT_TRUE(receivedByBackend(2 * kMiB));
}

// Before AES-GCM's per-key record limit we move to new keys ourselves.
TEST_P(RecordLayerTls13Test, UpdatesItsOwnKeysAfterTheRecordLimit) {
    startEcho();
    auto rl = layer(/*rekeyAfter=*/5);
    const std::string got = echo(*rl, 1 * kMiB);
    EXPECT_EQ(got.size(), 1 * kMiB);
    EXPECT_TRUE(isPattern(got));
    EXPECT_GE(rl->keyUpdatesSent(), 64 / 5U) << "64 records of 16 KiB, a new key every 5";
    EXPECT_TRUE(receivedByBackend(1 * kMiB));
}

// The same KeyUpdates, both ways, through a device that finishes later: the new keys are
// installed only once the records under the old ones came back.
TEST_P(RecordLayerTls13Test, UpdatesKeysBothWaysWhenTheDeviceFinishesLater) {
    calls_.deferred = true;
    auto rl = echoThroughARequestedKeyUpdate(/*rekeyAfter=*/7);
    EXPECT_GE(rl->keyUpdatesSent(), 128 / 7U) << "128 records of 16 KiB, a new key every 7";
    EXPECT_TRUE(receivedByBackend(2 * kMiB));
}

// Padded records (zeros after the inner content type) open to their content alone.
TEST_P(RecordLayerTls13Test, StripsPadding) {
    TlsBackendOptions o;
    o.mode = BackendMode::Echo;
    o.blockPadding = 512;
    start(std::move(o));
    auto rl = layer();
    const std::string got = echo(*rl, 300'001);
    EXPECT_EQ(got.size(), 300'001U);
    EXPECT_TRUE(isPattern(got));
}

INSTANTIATE_TEST_SUITE_P(
    Ciphers, RecordLayerTls13Test,
    ::testing::Values(Param{TLS1_3_VERSION, "TLS_AES_128_GCM_SHA256", "Aes128"},
                      Param{TLS1_3_VERSION, "TLS_AES_256_GCM_SHA384", "Aes256"}),
    [](const ::testing::TestParamInfo<Param>& p) { return std::string(p.param.name); });

TEST(RecordLayerCreateTest, RefusesWhatItDoesNotCarry) {
    SessionKeys keys;
    keys.version = TLS1_3_VERSION;
    keys.cipher = Aead::Chacha20Poly1305;
    EvpRunner::Calls calls;
    auto made = RecordLayer::create(keys, std::make_unique<EvpRunner>(calls));
    ASSERT_FALSE(made);
    EXPECT_EQ(made.error().code(), make_error_code(Errc::Invalid));
}

}  // namespace
}  // namespace lastmile::drivers::tls
