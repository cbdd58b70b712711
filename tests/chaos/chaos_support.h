// SPDX-License-Identifier: Apache-2.0
// Fault campaign harness: a real lastmiled, taps that record each connection's first bytes and
// inject backend faults, lm-loadgen as the load, and the one-line report of every fault.
#pragma once

#include <gtest/gtest.h>
#include <sys/types.h>

#include <atomic>
#include <chrono>
#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <nlohmann/json.hpp>
#include <string>
#include <thread>
#include <vector>

#include "base/unique_fd.h"
#include "tests/support/process.h"
#include "tests/support/test_pki.h"
#include "tests/support/tls_backend.h"

namespace lastmile::chaos {

using namespace std::chrono_literals;

constexpr const char* kHostname = "backend.example.com";

// Descriptors and resident memory of a process, from /proc.
struct Footprint {
    std::uint64_t fds = 0;
    std::uint64_t rssKiB = 0;
    std::uint64_t heapKiB = 0;  // from lastmiled's metrics; filled in by ChaosTest::settle
};
Footprint footprint(pid_t pid);

// What a tap does with each connection it accepts (switchable while connections run).
enum class TapMode {
    Forward,           // relay to the upstream backend both ways
    ResetOnHello,      // read the client's first bytes (the ClientHello), then RST
    ResetMidTransfer,  // relay, then RST both sides once resetAfterBytes went downstream
    Blackhole,         // accept, read, never answer; close only when the client does
};

// A TCP relay on 127.0.0.1:0 in front of a backend. It records the first two bytes of every
// connection: a covered backend must only ever see a TLS record (0x16 0x03), never plaintext.
class Tap {
public:
    Tap(std::uint16_t upstreamPort, TapMode mode, std::uint64_t resetAfterBytes = 0);
    ~Tap();
    Tap(const Tap&) = delete;
    Tap& operator=(const Tap&) = delete;

    std::uint16_t port() const noexcept { return port_; }
    void setMode(TapMode mode) noexcept { mode_.store(mode); }
    std::uint64_t accepted() const noexcept { return accepted_.load(); }
    // Connections whose first bytes were not a TLS handshake record.
    std::uint64_t plaintext() const noexcept { return plaintext_.load(); }
    std::uint64_t resets() const noexcept { return resets_.load(); }
    std::string firstPlaintextSample() const;

private:
    struct Pair;
    void loop();
    void onAccept();
    void onReadable(int fd);
    void closePair(const std::shared_ptr<Pair>& p, bool reset);

    std::uint16_t upstreamPort_;
    std::atomic<TapMode> mode_;
    std::uint64_t resetAfterBytes_;
    UniqueFd listener_;
    UniqueFd epoll_;
    UniqueFd stop_;
    std::uint16_t port_ = 0;
    std::map<int, std::shared_ptr<Pair>> byFd_;  // loop thread only
    std::atomic<std::uint64_t> accepted_{0};
    std::atomic<std::uint64_t> plaintext_{0};
    std::atomic<std::uint64_t> resets_{0};
    mutable std::mutex sampleMu_;
    std::string sample_;
    std::thread thread_;
};

// lm-loadgen run in the background; result() joins and returns its JSON line.
class LoadGen {
public:
    explicit LoadGen(std::vector<std::string> args);
    ~LoadGen();
    LoadGen(const LoadGen&) = delete;
    LoadGen& operator=(const LoadGen&) = delete;
    nlohmann::json result();

private:
    std::thread thread_;
    nlohmann::json result_;
    std::string failure_;
};

// Polls `condition` every 20 ms until it holds or `timeout` passes: the campaign's waits run
// beside the load, so they poll at half the rate of the other suites.
template <typename F>
bool eventually(F&& condition, std::chrono::milliseconds timeout = 10s) {
    return test::eventually(std::forward<F>(condition), timeout, 20ms);
}

// Descriptors lastmiled may hold above its baseline once a fault settled. They are exact
// counts and nothing per connection outlives it, so a few (the store's WAL, an admin request
// in flight) is all the slack needed.
constexpr std::uint64_t kFdSlack = 8;
// What the heap in use (lastmile_heap_in_use_bytes) may grow from one round of a fault to an
// identical second one. RSS is no measure here: whether glibc gives freed memory back to the
// kernel varies from round to round. A per-connection leak of a few dozen bytes over a
// round's tens of thousands of connections already exceeds it.
constexpr std::uint64_t kRoundHeapSlackKiB = 2048;
// What lastmiled may keep over its pre-load RSS once a fault is over: the TLS session caches,
// compiled profiles, metric series and per-worker arenas of the first traffic. Measured at
// 17 to 22 MiB after every fault here; without the trim after a burst of closes, the same
// runs kept 130 MiB (slowloris) to 2.6 GiB (9,500 idle clients).
constexpr std::uint64_t kSettledRssSlackKiB = 32768;
// Samples a process's footprint every 50 ms in the background; peak() is the highest seen.
class PeakSampler {
public:
    explicit PeakSampler(pid_t pid);
    ~PeakSampler();
    PeakSampler(const PeakSampler&) = delete;
    PeakSampler& operator=(const PeakSampler&) = delete;
    Footprint peak();  // stops sampling

private:
    std::atomic<bool> stop_{false};
    Footprint peak_;
    std::thread thread_;
};

// One listener of Gateway "edge" and the covered Service behind it.
struct Route {
    std::string service;           // also the listener's and the route's name
    std::uint16_t port;            // the backend endpoint at 127.0.0.1
    std::string protocol = "TCP";  // or "HTTP"
};

// A fault run twice against the same lastmiled: the footprint before, after each round
// settled, and the second round's peak.
struct Rounds {
    Footprint baseline;
    Footprint after[2];
    Footprint peak;
};

// A real lastmiled with a state dir, API socket and admin listener in a temp dir.
class ChaosTest : public ::testing::Test {
protected:
    static void SetUpTestSuite();
    void TearDown() override;

    // Starts lastmiled (again, on the same state dir after a kill) with `timeouts` as its
    // connectTimeout and handshakeTimeout; `extraConfig` adds lines.
    void startDaemon(const std::string& timeouts = "1s", const std::string& extraConfig = "");
    pid_t pid() const { return daemon_->pid(); }
    std::string stateDir() const { return dir_.path() + "/state"; }
    std::string socketPath() const { return dir_.path() + "/api.sock"; }
    bool alive() const;

    test::Outcome ctl(std::vector<std::string> args);
    // Applies `yaml`; returns lastmilectl's outcome (the caller decides what a refusal means).
    test::Outcome applyYaml(const std::string& yaml);
    // Applies or throws.
    void apply(const std::string& yaml);
    nlohmann::json getJson(const std::string& kind, const std::string& name);
    bool gatewayProgrammed();

    // Gateway "edge" with one listener per route, each Service covered by a BackendTLSPolicy
    // trusting pki_'s CA. Returns "127.0.0.1:PORT" per listener, in order. Waits until the
    // Gateway is Programmed.
    std::vector<std::string> serve(const std::vector<Route>& routes);

    // A ConfigMap "backend-ca" holding `pem`, and a policy covering `service` with it.
    static std::string caConfigMap(const std::string& pem);
    static std::string policy(const std::string& service);

    // A TLS backend presenting kHostname, issued by pki_, with `workers` event loops.
    std::unique_ptr<test::TlsBackend> startBackend(test::BackendMode mode = test::BackendMode::Echo,
                                                   unsigned workers = 1);

    double metric(const std::string& series);
    // True if one round trip through the listener at `address` comes back intact.
    bool echoes(const std::string& address);
    // The command line of an lm-loadgen run (more flags may be appended).
    static std::vector<std::string> loadgen(const std::string& mode, const std::string& target,
                                            unsigned connections, double seconds);

    // Waits up to `timeout` for the descriptors to come back within kFdSlack of `baseline`,
    // then (2 to 5 s) for RSS to stop falling; returns the last reading.
    Footprint settle(const Footprint& baseline, std::chrono::milliseconds timeout = 15s);

    // Runs `round(i)` for i = 0, 1, sampling each one's peak and settling (see settle()) after
    // it; stops after a round that failed fatally.
    Rounds twice(const std::function<void(int)>& round,
                 std::chrono::milliseconds settleTimeout = 15s);
    // Descriptors back within kFdSlack, RSS within kSettledRssSlackKiB of the baseline, and no
    // growth of the heap in use from the first round to the second beyond kRoundHeapSlackKiB.
    void expectSettled(const Rounds& r);

    // Prints (and records as a test property) one line: fault, load held, result, fds and RSS
    // before and after the fault settled, and their peak during it (when sampled).
    void report(const std::string& fault, const std::string& load, const std::string& result,
                const Footprint& before, const Footprint& after, const Footprint& peak = {});

    test::TempDir dir_;
    test::TestPki pki_;
    std::unique_ptr<test::NotifySocket> notify_;
    std::unique_ptr<test::ChildProcess> daemon_;
    std::string admin_;
    int applied_ = 0;
    int starts_ = 0;
};

}  // namespace lastmile::chaos
