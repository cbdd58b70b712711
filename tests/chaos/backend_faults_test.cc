// SPDX-License-Identifier: Apache-2.0
// Backend faults under load: RST in the handshake, RST mid-transfer, a backend that never answers.
#include <gtest/gtest.h>

#include <sstream>

#include "tests/chaos/chaos_support.h"

namespace lastmile::chaos {
namespace {

using nlohmann::json;

// Seconds of load per round; two rounds, so the second shows whether the first leaked.
constexpr double kRoundSeconds = 4.0;

class BackendFaultsTest : public ChaosTest {
protected:
    // A healthy covered route ("good") and a covered route whose backend misbehaves as `mode`
    // says ("bad"); keepalive load on good and `badLoad` load on bad, two rounds.
    void campaign(const std::string& fault, TapMode mode, std::uint64_t resetAfter,
                  const std::vector<std::string>& badLoad) {
        auto backend = startBackend();
        Tap goodTap(backend->port(), TapMode::Forward);
        Tap badTap(backend->port(), mode, resetAfter);
        startDaemon();
        auto addr = serve({{"good", goodTap.port()}, {"bad", badTap.port()}});
        ASSERT_TRUE(eventually([&] { return echoes(addr[0]); }));
        json good;
        json bad;
        const Rounds rounds = twice([&](int round) {
            LoadGen goodLoad(loadgen("keepalive", addr[0], 8, kRoundSeconds));
            auto badArgs = loadgen(badLoad[0], addr[1], 16, kRoundSeconds);
            badArgs.insert(badArgs.end(), badLoad.begin() + 1, badLoad.end());
            LoadGen badLoadGen(badArgs);
            good = goodLoad.result();
            bad = badLoadGen.result();
            ASSERT_TRUE(alive()) << fault << ": lastmiled died in round " << round;
            EXPECT_GT(good.value("requests", 0), 0) << "the healthy route starved: " << good;
        });
        EXPECT_TRUE(echoes(addr[0])) << "the healthy route does not serve after " << fault;
        EXPECT_GT(badTap.accepted(), 0u) << "the fault was never exercised";
        EXPECT_EQ(goodTap.plaintext() + badTap.plaintext(), 0u)
            << "plaintext reached a covered backend: " << goodTap.firstPlaintextSample()
            << badTap.firstPlaintextSample();
        expectSettled(rounds);

        std::ostringstream load;
        load << "good " << std::lround(good.value("requests_per_s", 0.0)) << " req/s; bad "
             << bad.value("connects", 0) << " connects";
        std::ostringstream result;
        result << "alive, serving, plaintext 0, " << badTap.accepted() << " faulted backend conns"
               << (badTap.resets() > 0 ? ", " + std::to_string(badTap.resets()) + " RST" : "");
        report(fault, load.str(), result.str(), rounds.baseline, rounds.after[1], rounds.peak);
    }
};

TEST_F(BackendFaultsTest, ResetInTheHandshake) {
    campaign("backend RST mid-handshake", TapMode::ResetOnHello, 0, {"connect"});
}

TEST_F(BackendFaultsTest, ResetMidTransfer) {
    // 64 KiB of echo per connection, then the backend resets it; lm-loadgen reconnects.
    campaign("backend RST mid-transfer", TapMode::ResetMidTransfer, 65536,
             {"keepalive", "--message-bytes", "4096"});
}

TEST_F(BackendFaultsTest, BackendAcceptsAndNeverAnswers) {
    // lastmiled's handshakeTimeout (1 s here) must close each one.
    campaign("backend accepts, never answers", TapMode::Blackhole, 0, {"connect"});
}

}  // namespace
}  // namespace lastmile::chaos
