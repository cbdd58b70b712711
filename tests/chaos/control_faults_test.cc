// SPDX-License-Identifier: Apache-2.0
// Control-plane faults under load: CA rotation and policy flips, SIGHUP storms, SIGKILL during a
// burst of applies, a full disk under the SQLite store.
#include <gtest/gtest.h>
#include <signal.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <fstream>
#include <map>
#include <sstream>

#include "tests/chaos/chaos_support.h"

namespace lastmile::chaos {
namespace {

using nlohmann::json;

constexpr double kLoadSeconds = 5.0;

std::string configMap(const std::string& name, const std::string& value) {
    return "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: " + name + "\ndata:\n  v: \"" +
           value + "\"\n";
}

class ControlFaultsTest : public ChaosTest {
protected:
    // A covered echo route behind a Forward tap; returns its listener address.
    std::string coveredRoute() {
        backend_ = startBackend();
        tap_ = std::make_unique<Tap>(backend_->port(), TapMode::Forward);
        auto addr = serve({{"svc", tap_->port()}});
        if (!eventually([&] { return echoes(addr[0]); })) {
            throw std::runtime_error("the covered route does not echo");
        }
        return addr[0];
    }

    std::unique_ptr<test::TlsBackend> backend_;
    std::unique_ptr<Tap> tap_;
};

// The ConfigMap of trust anchors alternates between the right CA, a bundle with another CA, the
// other CA alone (nothing verifies: fail closed) and back; the policy's hostname flips between
// the backend's name and one it does not hold. Keepalive and connect load run throughout.
TEST_F(ControlFaultsTest, CaRotationAndPolicyFlipsUnderLoad) {
    test::TestPki other;
    startDaemon();
    const std::string addr = coveredRoute();
    const std::string goodPolicy = policy("svc");
    std::string badPolicy = goodPolicy;
    badPolicy.replace(badPolicy.find(kHostname), std::strlen(kHostname), "other.example.com");
    const std::vector<std::string> flips{caConfigMap(pki_.caPem() + other.caPem()),
                                         caConfigMap(other.caPem()), caConfigMap(pki_.caPem()),
                                         badPolicy, goodPolicy};
    json keepalive;
    json connects;
    int applied = 0;
    const Rounds rounds = twice([&](int round) {
        LoadGen ka(loadgen("keepalive", addr, 8, kLoadSeconds));
        LoadGen cc(loadgen("connect", addr, 8, kLoadSeconds));
        const auto end =
            std::chrono::steady_clock::now() + std::chrono::duration<double>(kLoadSeconds);
        for (int i = 0; i < 200 && std::chrono::steady_clock::now() < end; ++i) {
            apply(flips[std::size_t(i) % flips.size()]);
            ++applied;
        }
        apply(caConfigMap(pki_.caPem()) + "---\n" + goodPolicy);
        keepalive = ka.result();
        connects = cc.result();
        ASSERT_TRUE(alive()) << "lastmiled died under CA rotation and policy flips, round "
                             << round;
        EXPECT_TRUE(eventually([&] { return echoes(addr); }))
            << "the route does not serve once the good CA and policy are back";
    });
    EXPECT_GT(keepalive.value("requests", 0) + connects.value("requests", 0), 0);
    EXPECT_EQ(tap_->plaintext(), 0u) << tap_->firstPlaintextSample();
    expectSettled(rounds);
    std::ostringstream l;
    l << applied << " CA/policy applies; " << std::lround(keepalive.value("requests_per_s", 0.0))
      << " req/s + " << std::lround(connects.value("connections_per_s", 0.0)) << " conn/s";
    report("CA rotation + policy flips", l.str(), "alive, serving after, plaintext 0",
           rounds.baseline, rounds.after[1], rounds.peak);
}

// SIGHUP every 10 ms for the length of the load: each one re-reads the manifests directory and
// the system trust store.
TEST_F(ControlFaultsTest, SighupStormUnderLoad) {
    ::mkdir((dir_.path() + "/manifests").c_str(), 0700);
    dir_.write("manifests/extra.yaml", configMap("from-manifests", "1"));
    startDaemon("1s", "manifests: " + dir_.path() + "/manifests\n");
    const std::string addr = coveredRoute();
    json keepalive;
    int signals = 0;
    const Rounds rounds = twice([&](int round) {
        LoadGen ka(loadgen("keepalive", addr, 8, kLoadSeconds));
        LoadGen cc(loadgen("connect", addr, 8, kLoadSeconds));
        const auto end =
            std::chrono::steady_clock::now() + std::chrono::duration<double>(kLoadSeconds);
        for (int i = 0; i < 1000 && std::chrono::steady_clock::now() < end; ++i) {
            daemon_->signal(SIGHUP);
            ++signals;
            std::this_thread::sleep_for(10ms);
        }
        keepalive = ka.result();
        cc.result();
        ASSERT_TRUE(alive()) << "lastmiled died in a SIGHUP storm, round " << round;
        EXPECT_GT(keepalive.value("requests", 0), 0) << keepalive;
        EXPECT_TRUE(eventually([&] { return echoes(addr); }));
    });
    EXPECT_TRUE(getJson("configmap", "from-manifests").is_object());
    EXPECT_EQ(tap_->plaintext(), 0u) << tap_->firstPlaintextSample();
    expectSettled(rounds);
    std::ostringstream l;
    l << signals << " SIGHUPs; " << std::lround(keepalive.value("requests_per_s", 0.0)) << " req/s";
    report("SIGHUP storm", l.str(), "alive, serving, plaintext 0", rounds.baseline, rounds.after[1],
           rounds.peak);
}

// Files of three objects applied one after another; lastmiled is SIGKILLed mid-burst and
// restarted on the same state dir. Every object of an acknowledged apply is there, every stored
// object holds what was applied, and the Gateway's status is recomputed (Programmed again).
TEST_F(ControlFaultsTest, SigkillDuringABurstOfApplies) {
    startDaemon();
    const std::string addr = coveredRoute();
    const Footprint before = footprint(pid());
    LoadGen ka(loadgen("keepalive", addr, 4, 3));

    std::atomic<bool> stop{false};
    std::vector<int> acknowledged;
    int attempted = 0;
    std::thread burst([&] {
        for (int i = 0; i < 2000 && !stop.load(); ++i) {
            const std::string n = std::to_string(i);
            attempted = i + 1;
            auto r = applyYaml(configMap("a-" + n, n) + "---\n" + configMap("b-" + n, n) +
                               "---\napiVersion: v1\nkind: Service\nmetadata:\n  name: s-" + n +
                               "\nspec:\n  ports:\n  - name: https\n    port: 443\n");
            if (r.exitCode != 0) {
                return;  // lastmiled is gone
            }
            acknowledged.push_back(i);
        }
    });
    std::this_thread::sleep_for(1500ms);
    daemon_->signal(SIGKILL);
    daemon_->wait(5s);
    stop = true;
    burst.join();
    ka.result();
    ASSERT_GT(acknowledged.size(), 0u) << "no apply was acknowledged before the kill";

    startDaemon();
    EXPECT_TRUE(eventually([&] { return gatewayProgrammed(); }))
        << "the Gateway is not Programmed after the restart: " << getJson("gateway", "edge");
    EXPECT_TRUE(eventually([&] { return echoes(addr); })) << "the route does not serve again";
    // name -> whether the stored object is whole (its content is what was applied).
    auto list = [&](const std::string& kind) {
        std::map<std::string, bool> whole;
        auto r = ctl({"get", kind, "-o", "json"});
        json j = json::parse(r.out, nullptr, false);
        for (const auto& item : j.value("items", json::array())) {
            const std::string name = item["metadata"].value("name", "");
            if (name.size() < 3 || name[1] != '-' ||
                std::string("abs").find(name[0]) == std::string::npos) {
                continue;  // not one of the burst's (the route's own objects)
            }
            const std::string n = name.substr(name.find('-') + 1);
            whole[name] =
                kind == "configmaps"
                    ? item.value("data", json::object()).value("v", "") == n
                    : item.value("spec", json::object()).value("ports", json::array()).size() == 1;
        }
        return whole;
    };
    auto maps = list("configmaps");
    auto services = list("services");
    maps.insert(services.begin(), services.end());
    int missing = 0;
    for (int i : acknowledged) {
        const std::string n = std::to_string(i);
        for (const std::string& name : {"a-" + n, "b-" + n, "s-" + n}) {
            missing += maps.count(name) == 0 ? 1 : 0;
        }
    }
    EXPECT_EQ(missing, 0) << "objects of acknowledged applies lost by the kill";
    int torn = 0;
    for (const auto& [name, ok] : maps) {
        torn += ok ? 0 : 1;
    }
    EXPECT_EQ(torn, 0) << "objects stored with content other than what was applied";
    // lastmilectl, like kubectl, writes each document of a file on its own: the apply in
    // flight may have stored some of its objects, each of them whole.
    const std::string last = std::to_string(attempted - 1);
    const auto inFlight =
        attempted == int(acknowledged.size())
            ? 0
            : maps.count("a-" + last) + maps.count("b-" + last) + maps.count("s-" + last);
    EXPECT_EQ(tap_->plaintext(), 0u) << tap_->firstPlaintextSample();
    // Before: the killed process with the route up; after: the restarted one, route up again.
    const Footprint after = footprint(pid());
    std::ostringstream l;
    l << acknowledged.size() << " of " << attempted << " 3-object applies acknowledged in 1.5 s";
    report("SIGKILL during apply burst", l.str(),
           "restart clean, Gateway Programmed, all " + std::to_string(3 * acknowledged.size()) +
               " acked objects whole, " + std::to_string(inFlight) + "/3 of the one in flight",
           before, after);
}

// A 16 MiB tmpfs under the state dir, filled: writes fail with a Status that says the store
// is full, reads and the dataplane go on, and writes work again once space returns.
TEST_F(ControlFaultsTest, FullDiskUnderTheStore) {
    const std::string state = stateDir();
    ::mkdir(state.c_str(), 0700);
    if (::mount("tmpfs", state.c_str(), "tmpfs", MS_NOSUID | MS_NODEV, "size=16m,mode=0700") != 0) {
        GTEST_SKIP() << "cannot mount a tmpfs for the state dir: " << std::strerror(errno);
    }
    struct Unmount {
        std::string path;
        ~Unmount() { ::umount2(path.c_str(), MNT_DETACH); }
    } unmount{state};
    startDaemon();
    const std::string addr = coveredRoute();
    const Footprint baseline = footprint(pid());

    // Fill the tmpfs to the last byte.
    const std::string filler = state + "/filler";
    {
        std::ofstream out(filler, std::ios::binary);
        const std::string block(1 << 16, 'x');
        for (int i = 0; i < 1024 && out.write(block.data(), block.size()); ++i) {
        }
    }
    LoadGen ka(loadgen("keepalive", addr, 4, 4));
    // SQLite may still have room in pages it already holds: write until it runs out (bounded).
    const std::string big(200'000, 'y');
    test::Outcome refused;
    int accepted = 0;
    for (int i = 0; i < 20; ++i) {
        refused = applyYaml(configMap("big-" + std::to_string(i), big));
        if (refused.exitCode != 0) {
            break;
        }
        ++accepted;
    }
    const std::string said = refused.out + refused.err;
    EXPECT_NE(refused.exitCode, 0) << "20 writes of 200 kB succeeded on a full disk";
    EXPECT_NE(said.find("full"), std::string::npos)
        << "the refusal does not say the store is full: " << said;
    ASSERT_TRUE(alive()) << "lastmiled died on a full disk";
    EXPECT_TRUE(getJson("gateway", "edge").is_object()) << "reads fail on a full disk";
    EXPECT_TRUE(echoes(addr)) << "the dataplane stopped on a full disk";
    json load = ka.result();
    EXPECT_GT(load.value("requests", 0), 0) << load;

    ::unlink(filler.c_str());
    auto r = applyYaml(configMap("after-space-returns", "1"));
    EXPECT_EQ(r.exitCode, 0) << "writes do not recover once space returns: " << r.out << r.err;
    EXPECT_TRUE(getJson("configmap", "after-space-returns").is_object());
    EXPECT_EQ(tap_->plaintext(), 0u) << tap_->firstPlaintextSample();
    const Footprint after = settle(baseline);
    EXPECT_LE(after.fds, baseline.fds + kFdSlack);
    std::ostringstream l;
    l << std::lround(load.value("requests_per_s", 0.0)) << " req/s during; " << accepted
      << " writes fit";
    std::string first = said.substr(0, said.find('\n'));
    report("full disk under the store", l.str(),
           "alive, write refused (" + first + "), reads + traffic go on, writes recover", baseline,
           after);
}

}  // namespace
}  // namespace lastmile::chaos
