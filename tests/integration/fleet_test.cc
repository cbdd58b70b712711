// SPDX-License-Identifier: Apache-2.0
// Fleet mode end to end: three real lastmiled nodes on a real three-member etcd cluster, driven
// by lastmilectl, serving real TLS through each node's own listener address.
#include <arpa/inet.h>
#include <netinet/in.h>
#include <signal.h>
#include <sys/socket.h>
#include <sys/stat.h>

#include <algorithm>
#include <chrono>
#include <cstdlib>
#include <future>
#include <memory>
#include <string>
#include <vector>

#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include "tests/support/admin.h"
#include "tests/support/client.h"
#include "tests/support/etcd_cluster.h"
#include "tests/support/process.h"
#include "tests/support/test_pki.h"
#include "tests/support/tls_backend.h"

namespace lastmile {
namespace {

using nlohmann::json;
using namespace std::chrono;

constexpr int kNodes = 3;
constexpr const char* kNodeNames[kNodes] = {"node-a", "node-b", "node-c"};
// How long a killed node stays listed: short, so the test waits little for its lease.
constexpr seconds kLeaseTtl{3};
// The nodes run with systemd's watchdog on: a node that waits on a store without quorum must
// still feed it (a store call waits 2 s at most).
constexpr microseconds kWatchdog = seconds(4);

// A Gateway listener on `port` (each node binds it at its own bindAddress), a route to
// Service web:443, its endpoint `backend`, and a policy verifying backend.example.com.
std::string topology(std::uint16_t port, std::uint16_t backend, const std::string& caPem) {
    std::string indented;
    for (std::size_t start = 0; start < caPem.size();) {
        auto end = caPem.find('\n', start);
        end = end == std::string::npos ? caPem.size() : end;
        indented += "    " + caPem.substr(start, end - start) + "\n";
        start = end + 1;
    }
    return R"(apiVersion: gateway.networking.k8s.io/v1
kind: Gateway
metadata:
  name: edge
spec:
  gatewayClassName: lastmile
  listeners:
  - name: tcp
    port: )" + std::to_string(port) + R"(
    protocol: TCP
---
apiVersion: gateway.networking.k8s.io/v1alpha2
kind: TCPRoute
metadata:
  name: to-web
spec:
  parentRefs:
  - name: edge
  rules:
  - backendRefs:
    - name: web
      port: 443
---
apiVersion: v1
kind: Service
metadata:
  name: web
spec:
  ports:
  - name: https
    port: 443
---
apiVersion: discovery.k8s.io/v1
kind: EndpointSlice
metadata:
  name: web-1
  labels:
    kubernetes.io/service-name: web
addressType: IPv4
endpoints:
- addresses: ["127.0.0.1"]
ports:
- name: https
  port: )" + std::to_string(backend) + R"(
---
apiVersion: v1
kind: ConfigMap
metadata:
  name: backend-ca
data:
  ca.crt: |
)" + indented + R"(---
apiVersion: gateway.networking.k8s.io/v1
kind: BackendTLSPolicy
metadata:
  name: web-tls
spec:
  targetRefs:
  - group: ""
    kind: Service
    name: web
  validation:
    hostname: backend.example.com
    caCertificateRefs:
    - group: ""
      kind: ConfigMap
      name: backend-ca
)";
}

std::string configMap(const std::string& name, const std::string& value) {
    return "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: " + name + "\ndata:\n  k: " +
           value + "\n";
}

class FleetTest : public ::testing::Test {
protected:
    void SetUp() override { setUpFleet({}); }

    // Starts etcd, the backend and the nodes, all three at once, each with `extra` flags.
    void setUpFleet(const std::vector<std::string>& extra) {
        if (!test::EtcdCluster::available()) {
            GTEST_SKIP() << "etcd is not installed (the etcd-server package)";
        }
        etcd_ = std::make_unique<test::EtcdCluster>(3);
        test::TlsBackendOptions options;
        options.serverCert = pki_.issueServer("backend.example.com");
        auto backend = test::TlsBackend::start(options);
        ASSERT_TRUE(backend) << backend.error().message();
        backend_ = std::move(*backend);
        gatewayPort_ = test::freePort();
        for (int i = 0; i < kNodes; ++i) {
            launchNode(i, extra);
        }
        for (int i = 0; i < kNodes; ++i) {
            notify_[i]->waitFor("READY=1");
        }
    }

    // Node i binds its listeners at 127.0.0.(2 + i): three appliances on one host.
    std::string bindAddress(int i) const { return "127.0.0." + std::to_string(2 + i); }
    std::string listener(int i) const { return bindAddress(i) + ":" + std::to_string(gatewayPort_); }
    std::string dir(int i) const { return dir_.path() + "/" + kNodeNames[i]; }

    void startNode(int i, const std::vector<std::string>& extra = {}) {
        launchNode(i, extra);
        notify_[i]->waitFor("READY=1");
    }

    void launchNode(int i, const std::vector<std::string>& extra) {
        ::mkdir(dir(i).c_str(), 0700);
        ::mkdir((dir(i) + "/logs").c_str(), 0700);
        std::string endpoints;
        for (const auto& e : etcd_->endpoints()) {
            endpoints += (endpoints.empty() ? "" : ", ") + std::string("\"") + e + "\"";
        }
        const std::string config = "allowedBackendNetworks: [\"127.0.0.0/8\"]\n"
                                   "bindAddress: " + bindAddress(i) + "\n"
                                   "nodeName: " + kNodeNames[i] + "\n"
                                   "store:\n"
                                   "  type: etcd\n"
                                   "  endpoints: [" + endpoints + "]\n"
                                   "  prefix: /fleet-test/\n"
                                   "  leaseTtl: " + std::to_string(kLeaseTtl.count()) + "s\n";
        const std::string configFile = dir_.write(std::string(kNodeNames[i]) + ".yaml", config);
        notify_[i] = std::make_unique<test::NotifySocket>(dir(i) + "/notify");
        std::vector<std::string> argv{test::requiredEnv("LASTMILED"), "--config", configFile,
                                      "--state-dir", dir(i) + "/state",
                                      "--api-socket", dir(i) + "/api.sock",
                                      "--admin-http", "127.0.0.1:0"};
        argv.insert(argv.end(), extra.begin(), extra.end());
        nodes_[i] = std::make_unique<test::ChildProcess>(
            argv,
            std::map<std::string, std::string>{{"NOTIFY_SOCKET", notify_[i]->path()},
                                               {"WATCHDOG_USEC", std::to_string(kWatchdog.count())}},
            dir(i) + "/logs");
    }

    test::Outcome ctl(int node, std::vector<std::string> args, const std::string& input = "") {
        args.insert(args.begin(), test::requiredEnv("LASTMILECTL"));
        return test::runProcess(args, {{"LASTMILE_SERVER", "unix://" + dir(node) + "/api.sock"}},
                                input, seconds(20));
    }

    test::Outcome apply(int node, const std::string& yaml) {
        return ctl(node, {"apply", "-f", "-"}, yaml);
    }

    json getJson(int node, const std::string& kind, const std::string& name) {
        auto r = ctl(node, {"get", kind, name, "-o", "json"});
        if (r.exitCode != 0) {
            return json();
        }
        return json::parse(r.out, nullptr, false);
    }

    // One echo through node i's listener: true when "ping" came back through TLS to the
    // backend and back.
    bool echoes(int i, const std::string& payload = "ping") {
        try {
            UniqueFd fd = test::dial(listener(i), nullptr, 5);
            if (!test::sendAll(fd.get(), payload)) {
                return false;
            }
            ::shutdown(fd.get(), SHUT_WR);
            return test::readToEnd(fd.get()).data == payload;
        } catch (const std::exception&) {
            return false;
        }
    }

    std::vector<std::string> nodeNames(int via) {
        auto r = ctl(via, {"get", "nodes", "-o", "json"});
        std::vector<std::string> out;
        if (r.exitCode != 0) {
            return out;
        }
        json list = json::parse(r.out, nullptr, false);
        for (const auto& n : list.value("items", json::array())) {
            out.push_back(n.value("name", ""));
        }
        return out;
    }

    static json condition(const json& object, const std::string& type) {
        for (const auto& c : object.value("status", json::object()).value("conditions", json::array())) {
            if (c.value("type", "") == type) {
                return c;
            }
        }
        return json();
    }

    test::TempDir dir_;
    test::TestPki pki_;
    std::unique_ptr<test::EtcdCluster> etcd_;
    std::unique_ptr<test::TlsBackend> backend_;
    std::uint16_t gatewayPort_ = 0;
    std::unique_ptr<test::NotifySocket> notify_[kNodes];
    std::unique_ptr<test::ChildProcess> nodes_[kNodes];
};

TEST_F(FleetTest, AnApplyThroughOneNodeIsServedByEveryNode) {
    const auto applied = steady_clock::now();
    auto r = apply(0, topology(gatewayPort_, backend_->port(), pki_.caPem()));
    ASSERT_EQ(r.exitCode, 0) << r.err;
    std::vector<milliseconds> served(kNodes);
    for (int i = 0; i < kNodes; ++i) {
        ASSERT_TRUE(test::eventually([&] { return echoes(i); }, seconds(10), milliseconds(5)))
            << kNodeNames[i] << " never served the policy";
        served[i] = duration_cast<milliseconds>(steady_clock::now() - applied);
    }
    std::cout << "[ measured ] served after apply through node-a: node-a " << served[0].count()
              << " ms, node-b " << served[1].count() << " ms, node-c " << served[2].count()
              << " ms\n";
    for (const auto& o : backend_->observations()) {
        EXPECT_TRUE(o.handshakeOk) << o.handshakeError;
        EXPECT_EQ(o.sni, "backend.example.com");
    }

    // Every node shows the same object at the same resourceVersion, and the Gateway is
    // Programmed once every node bound its listener.
    ASSERT_TRUE(test::eventually(
        [&] {
            std::vector<std::string> versions;
            for (int i = 0; i < kNodes; ++i) {
                json gateway = getJson(i, "gateway", "edge");
                if (!gateway.is_object() || condition(gateway, "Programmed").value("status", "") != "True") {
                    return false;
                }
                versions.push_back(gateway["metadata"].value("resourceVersion", ""));
            }
            return std::adjacent_find(versions.begin(), versions.end(),
                                      std::not_equal_to<>()) == versions.end();
        },
        seconds(10), milliseconds(50)))
        << ctl(1, {"describe", "gateway", "edge"}).out;
    EXPECT_EQ(getJson(2, "backendtlspolicy", "web-tls")["metadata"]["uid"],
              getJson(0, "backendtlspolicy", "web-tls")["metadata"]["uid"]);

    auto nodes = ctl(1, {"get", "nodes"});
    ASSERT_EQ(nodes.exitCode, 0) << nodes.err;
    for (const char* name : kNodeNames) {
        EXPECT_NE(nodes.out.find(name), std::string::npos) << nodes.out;
    }
    EXPECT_NE(nodes.out.find("openssl"), std::string::npos) << "engines are listed: " << nodes.out;
}

TEST_F(FleetTest, AStaleUpdateConflictsAndOfConcurrentCreatesOneWins) {
    ASSERT_EQ(apply(0, configMap("c", "v1")).exitCode, 0);
    ASSERT_TRUE(test::eventually([&] { return getJson(1, "configmap", "c").is_object(); }));
    const std::string seen = getJson(1, "configmap", "c")["metadata"]["resourceVersion"];
    ASSERT_EQ(apply(0, configMap("c", "v2")).exitCode, 0);
    auto stale = apply(1, "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: c\n"
                          "  resourceVersion: \"" + seen + "\"\ndata:\n  k: v3\n");
    EXPECT_NE(stale.exitCode, 0);
    EXPECT_NE(stale.err.find("Conflict"), std::string::npos) << stale.err;
    EXPECT_EQ(getJson(2, "configmap", "c")["data"]["k"], "v2");

    // Both nodes create the same name at once: the store lets exactly one through.
    for (int round = 0; round < 5; ++round) {
        const std::string name = "race-" + std::to_string(round);
        auto create = [&](int node, const std::string& value) {
            const json body{{"apiVersion", "v1"},
                            {"kind", "ConfigMap"},
                            {"metadata", {{"name", name}}},
                            {"data", {{"k", value}}}};
            return test::apiRequest(dir(node) + "/api.sock", "POST",
                                    "/projects/default/api/v1/namespaces/default/configmaps",
                                    body.dump());
        };
        auto a = std::async(std::launch::async, create, 0, "from-a");
        auto b = std::async(std::launch::async, create, 1, "from-b");
        const auto ra = a.get();
        const auto rb = b.get();
        EXPECT_EQ((ra.status == 201) + (rb.status == 201), 1) << ra.body << rb.body;
        const auto& loser = ra.status == 201 ? rb : ra;
        EXPECT_EQ(loser.status, 409) << loser.body;
        EXPECT_NE(loser.body.find("AlreadyExists"), std::string::npos) << loser.body;
        const std::string winner = ra.status == 201 ? "from-a" : "from-b";
        EXPECT_EQ(getJson(2, "configmap", name)["data"]["k"], winner);
    }

    // Both nodes apply (PUT) the same new name at once: both succeed, one creating it.
    for (int round = 0; round < 5; ++round) {
        const std::string name = "both-" + std::to_string(round);
        auto put = [&](int node) { return apply(node, configMap(name, "same")); };
        auto a = std::async(std::launch::async, put, 0);
        auto b = std::async(std::launch::async, put, 1);
        const auto ra = a.get();
        const auto rb = b.get();
        EXPECT_EQ(ra.exitCode, 0) << ra.err;
        EXPECT_EQ(rb.exitCode, 0) << rb.err;
    }
}

TEST_F(FleetTest, EtcdMemberFailuresKeepTrafficFlowingAndWritesAnswerPromptly) {
    ASSERT_EQ(apply(0, topology(gatewayPort_, backend_->port(), pki_.caPem())).exitCode, 0);
    for (int i = 0; i < kNodes; ++i) {
        ASSERT_TRUE(test::eventually([&] { return echoes(i); }, seconds(10)));
    }

    // A follower dies: writes go on without a gap, and come back when it is restarted.
    const int follower = (etcd_->leader() + 1) % 3;
    etcd_->kill(follower);
    const auto followerKilled = steady_clock::now();
    auto written = apply(0, configMap("after-follower", "x"));
    EXPECT_EQ(written.exitCode, 0) << written.err;
    std::cout << "[ measured ] a write right after killing an etcd follower took "
              << duration_cast<milliseconds>(steady_clock::now() - followerKilled).count()
              << " ms\n";
    EXPECT_TRUE(test::eventually([&] { return getJson(2, "configmap", "after-follower").is_object(); },
                                 seconds(5)));
    etcd_->restart(follower);

    // The leader dies: writes go on through the survivors, and every node keeps following.
    const int leader = etcd_->leader();
    etcd_->kill(leader);
    const auto killed = steady_clock::now();
    ASSERT_TRUE(test::eventually([&] { return apply(0, configMap("after-leader", "x")).exitCode == 0; },
                                 seconds(10), milliseconds(50)));
    std::cout << "[ measured ] first write after killing the etcd leader: "
              << duration_cast<milliseconds>(steady_clock::now() - killed).count() << " ms\n";
    for (int i = 1; i < kNodes; ++i) {
        EXPECT_TRUE(test::eventually([&] { return getJson(i, "configmap", "after-leader").is_object(); },
                                     seconds(5)))
            << kNodeNames[i] << " did not see a write made after the leader died";
    }

    // Quorum lost: writes are refused with 503 within a bounded time, reads answer from what
    // each node last watched, and traffic goes on through every node.
    etcd_->kill(leader == 0 ? 1 : 0);
    const auto started = steady_clock::now();
    test::Outcome refused;
    ASSERT_TRUE(test::eventually(
        [&] {
            refused = apply(1, configMap("no-quorum", "x"));
            return refused.exitCode != 0;
        },
        seconds(15), milliseconds(100)));
    const auto answeredIn = steady_clock::now() - started;
    EXPECT_NE(refused.err.find("ServiceUnavailable"), std::string::npos) << refused.err;
    EXPECT_LT(answeredIn, seconds(15));
    std::cout << "[ measured ] a write without quorum was refused after "
              << duration_cast<milliseconds>(answeredIn).count() << " ms: " << refused.err;
    // Writes waiting on the store do not starve the watchdog: it is fed at half its timeout
    // throughout.
    auto waiting = std::async(std::launch::async, [&] {
        for (int k = 0; k < 4; ++k) {
            apply(0, configMap("waits-" + std::to_string(k), "x"));
        }
    });
    for (int beat = 0; beat < 4; ++beat) {
        EXPECT_NO_THROW(notify_[0]->waitFor("WATCHDOG=1", duration_cast<milliseconds>(kWatchdog)));
    }
    waiting.get();
    for (int i = 0; i < kNodes; ++i) {
        EXPECT_TRUE(echoes(i)) << kNodeNames[i] << " stopped serving without quorum";
        EXPECT_EQ(getJson(i, "configmap", "after-leader")["data"]["k"], "x")
            << kNodeNames[i] << " cannot read without quorum";
    }

    // One member back: quorum returns and writes with it.
    const int back = leader;
    etcd_->restart(back);
    const auto restarted = steady_clock::now();
    ASSERT_TRUE(test::eventually([&] { return apply(2, configMap("quorum-back", "x")).exitCode == 0; },
                                 seconds(15), milliseconds(50)));
    std::cout << "[ measured ] writes resumed "
              << duration_cast<milliseconds>(steady_clock::now() - restarted).count()
              << " ms after quorum returned\n";
    for (int i = 0; i < kNodes; ++i) {
        EXPECT_TRUE(test::eventually([&] { return getJson(i, "configmap", "quorum-back").is_object(); },
                                     seconds(5)));
        EXPECT_TRUE(echoes(i));
    }
}

TEST_F(FleetTest, AKilledNodeLeavesAndMergedStatusStopsCountingIt) {
    // node-c cannot bind the listener (another program holds its address and port), so the
    // Gateway is not Programmed and says where.
    UniqueFd squatter(::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0));
    sockaddr_in address{};
    address.sin_family = AF_INET;
    address.sin_port = htons(gatewayPort_);
    address.sin_addr.s_addr = htonl(0x7f000004);  // 127.0.0.4, node-c's bindAddress
    ASSERT_EQ(::bind(squatter.get(), reinterpret_cast<sockaddr*>(&address), sizeof address), 0);
    ASSERT_EQ(::listen(squatter.get(), 1), 0);

    ASSERT_EQ(apply(0, topology(gatewayPort_, backend_->port(), pki_.caPem())).exitCode, 0);
    json gateway;
    ASSERT_TRUE(test::eventually(
        [&] {
            gateway = getJson(0, "gateway", "edge");
            const std::string message = condition(gateway, "Programmed").value("message", "");
            return message.find("node node-c: binding 127.0.0.4:") != std::string::npos &&
                   message.find("not programmed yet") == std::string::npos;
        },
        seconds(10), milliseconds(50)))
        << gateway.dump(2);
    EXPECT_EQ(condition(gateway, "Programmed")["status"], "False");
    // describe shows each node's own state of the listener.
    test::Outcome described;
    EXPECT_TRUE(test::eventually(
        [&] {
            described = ctl(1, {"describe", "gateway", "edge"});
            return described.out.find("node-c tcp:  not programmed: binding 127.0.0.4:") !=
                   std::string::npos;
        },
        seconds(5), milliseconds(50)))
        << described.out;
    EXPECT_NE(described.out.find("node-a tcp:  Programmed"), std::string::npos) << described.out;

    nodes_[2]->signal(SIGKILL);
    nodes_[2]->wait();
    const auto killed = steady_clock::now();
    ASSERT_TRUE(test::eventually(
        [&] { return nodeNames(0) == std::vector<std::string>{"node-a", "node-b"}; },
        kLeaseTtl + seconds(5), milliseconds(100)));
    std::cout << "[ measured ] node-c left get nodes "
              << duration_cast<milliseconds>(steady_clock::now() - killed).count()
              << " ms after kill -9 (lease TTL " << kLeaseTtl.count() << " s)\n";
    EXPECT_TRUE(test::eventually(
        [&] { return condition(getJson(1, "gateway", "edge"), "Programmed").value("status", "") == "True"; },
        seconds(5), milliseconds(50)))
        << getJson(1, "gateway", "edge").dump(2);
    EXPECT_TRUE(echoes(0));
    EXPECT_TRUE(echoes(1));
}

class FleetManifestsTest : public FleetTest {
protected:
    void SetUp() override {}
};

TEST_F(FleetManifestsTest, NodesStartingTogetherTakeTurnsApplyingTheManifests) {
    std::string docs;
    for (int i = 0; i < 30; ++i) {
        docs += (i == 0 ? "" : "---\n") + configMap("boot-" + std::to_string(i), "v");
    }
    ::mkdir((dir_.path() + "/manifests").c_str(), 0700);
    dir_.write("manifests/boot.yaml", docs);
    setUpFleet({"--manifests", dir_.path() + "/manifests"});
    if (IsSkipped()) {
        return;
    }
    for (int i = 0; i < 30; ++i) {
        json object = getJson(1, "configmap", "boot-" + std::to_string(i));
        ASSERT_TRUE(object.is_object()) << i;
        EXPECT_EQ(object["metadata"]["generation"], 1);
    }
    // Without the lock, nodes racing to create the same objects log AlreadyExists.
    for (int i = 0; i < kNodes; ++i) {
        EXPECT_EQ(nodes_[i]->stderrText().find("manifests:"), std::string::npos)
            << kNodeNames[i] << ":\n" << nodes_[i]->stderrText();
    }
}

}  // namespace
}  // namespace lastmile
