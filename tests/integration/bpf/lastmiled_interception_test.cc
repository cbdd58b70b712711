// SPDX-License-Identifier: Apache-2.0
// A real lastmiled with `interception:` on the real kernel: a Gateway's virtual address taken
// over for unmodified clients, with TLS originated to the backend the policy names.
#include <gtest/gtest.h>

#include "lastmile_config.h"

#if LM_HAVE_BPF

#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <signal.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#include <chrono>
#include <fstream>
#include <iostream>
#include <map>
#include <memory>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "bpf/endpoint.h"
#include "tests/integration/bpf/kernel_env.h"
#include "tests/support/admin.h"
#include "tests/support/client.h"
#include "tests/support/manifests.h"
#include "tests/support/process.h"
#include "tests/support/test_pki.h"
#include "tests/support/tls_backend.h"

namespace lastmile {
namespace {

using namespace std::chrono_literals;
using nlohmann::json;
using test::InNetns;

constexpr const char* kHostname = "backend.example.com";
constexpr const char* kClientCn = "lastmile-gateway";
// The backend's own address, in its own namespace: the appliance's Gateway names it as its
// virtual address, so a client dialling the backend is taken over by lastmiled.
constexpr const char* kVip = "10.98.0.1";

// Sends `payload` on the connected `fd` and reads as many bytes back (2 s at most). The
// kernel_env sockets are non-blocking: this one blocks, with timeouts.
std::string roundTrip(int fd, const std::string& payload) {
    ::fcntl(fd, F_SETFL, ::fcntl(fd, F_GETFL) & ~O_NONBLOCK);
    timeval tv{2, 0};
    ::setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof(tv));
    ::setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
    if (!test::sendAll(fd, payload)) {
        return {};
    }
    return test::readExactly(fd, payload.size());
}

// A real lastmiled in a network namespace of its own, driven by lastmilectl.
class LastmiledInterceptionTest : public ::testing::Test {
protected:
    void TearDown() override {
        if (HasFailure() && daemon_) {
            const std::string log = daemon_->stderrText();
            std::cerr << "---- lastmiled stderr (tail) ----\n"
                      << (log.size() > 4000 ? log.substr(log.size() - 4000) : log) << "\n";
        }
        daemon_.reset();
    }

    // Starts lastmiled in `netns` with `interception` (the key's YAML value) in its config.
    void startDaemon(const test::Netns& netns, const std::string& interception) {
        const std::string config = dir_.write(
            "lastmiled.yaml", "workers: 2\nbindAddress: 127.0.0.1\nconnectTimeout: 2s\n"
                              "handshakeTimeout: 2s\nallowedBackendNetworks: [10.96.0.0/14]\n"
                              "interception: " + interception + "\n");
        notify_ = std::make_unique<test::NotifySocket>(dir_.path() + "/notify");
        ::mkdir((dir_.path() + "/logs").c_str(), 0700);
        InNetns in(netns);  // the child is forked by this thread, into its namespace
        daemon_ = std::make_unique<test::ChildProcess>(
            std::vector<std::string>{test::requiredEnv("LASTMILED"), "--config", config,
                                     "--state-dir", dir_.path() + "/state", "--api-socket",
                                     socketPath(), "--admin-http", "127.0.0.1:0"},
            std::map<std::string, std::string>{{"NOTIFY_SOCKET", notify_->path()}},
            dir_.path() + "/logs");
        notify_->waitFor("READY=1");
        admin_ = test::adminAddress(daemon_->stderrText());
    }

    std::string socketPath() const { return dir_.path() + "/api.sock"; }

    test::Outcome ctl(std::vector<std::string> args) {
        args.insert(args.begin(), test::requiredEnv("LASTMILECTL"));
        return test::runProcess(args, {{"LASTMILE_SERVER", "unix://" + socketPath()}});
    }

    void apply(const std::string& yaml, const std::string& project = "default") {
        const std::string file = dir_.write("apply.yaml", yaml);
        auto r = ctl({"apply", "-f", file, "--project", project});
        ASSERT_EQ(r.exitCode, 0) << r.out << r.err;
    }

    json gateway(const std::string& name = "edge", const std::string& project = "default") {
        auto r = ctl({"get", "gateway", name, "-o", "json", "--project", project});
        return r.exitCode == 0 ? json::parse(r.out, nullptr, false) : json();
    }

    // The Gateway's Programmed condition once it says AddressNotUsable; null if it never does.
    json notUsable(const std::string& name = "edge", const std::string& project = "default") {
        json programmed;
        const bool said = test::eventually([&] {
            for (const auto& c : gateway(name, project)["status"].value("conditions", json())) {
                if (c.value("type", "") == "Programmed") {
                    programmed = c;
                }
            }
            return programmed.value("reason", "") == "AddressNotUsable";
        });
        return said ? programmed : json();
    }

    // The backend's first connection: TLS originated by lastmiled under the policy, with the
    // Gateway's client certificate.
    static void expectVerifiedTls(test::TlsBackend& backend) {
        ASSERT_TRUE(backend.waitForObservations(1, 5s));
        const auto seen = backend.observations().at(0);
        EXPECT_TRUE(seen.handshakeOk) << seen.handshakeError;
        EXPECT_EQ(seen.sni, kHostname) << "lastmiled originated TLS under the policy";
        EXPECT_EQ(seen.clientCn, kClientCn) << "with the Gateway's client certificate";
    }

    // Gateway edge: its one address is the backend's `vip`, its TCP listener the backend's
    // port, routed to the backend under a policy that checks kHostname against pki_'s CA;
    // it presents the client certificate kClientCn (the backends require one). Waits until
    // the Gateway is Programmed with `vip` in its status unless `expectProgrammed` is false.
    void applyTopology(const std::string& vip, std::uint16_t port, bool expectProgrammed = true) {
        const std::string p = std::to_string(port);
        const test::IssuedCert client = pki_.issueClient(kClientCn);
        const json secret{{"apiVersion", "v1"},
                          {"kind", "Secret"},
                          {"metadata", {{"name", "gateway-client"}}},
                          {"type", "kubernetes.io/tls"},
                          {"stringData",
                           {{"tls.crt", client.chainPem}, {"tls.key", client.keyPem}}}};
        apply(secret.dump() + "\n---\n" + test::caConfigMapYaml(pki_.caPem()) + "---\n" +
              test::policyYaml("svc", kHostname) +
              "---\napiVersion: v1\nkind: Service\nmetadata:\n  name: svc\nspec:\n  ports:\n"
              "  - name: https\n    port: 443\n"
              "---\napiVersion: discovery.k8s.io/v1\nkind: EndpointSlice\nmetadata:\n"
              "  name: svc\n  labels:\n    kubernetes.io/service-name: svc\naddressType: IPv4\n"
              "endpoints:\n- addresses: [\"" + vip + "\"]\nports:\n- name: https\n  port: " + p +
              "\n---\napiVersion: gateway.networking.k8s.io/v1alpha2\nkind: TCPRoute\n"
              "metadata:\n  name: r\nspec:\n  parentRefs:\n  - name: edge\n  rules:\n"
              "  - backendRefs:\n    - name: svc\n      port: 443\n"
              "---\napiVersion: gateway.networking.k8s.io/v1\nkind: Gateway\nmetadata:\n"
              "  name: edge\nspec:\n  gatewayClassName: lastmile\n  addresses:\n"
              "  - type: IPAddress\n    value: " + vip + "\n  listeners:\n  - name: tcp\n"
              "    port: " + p + "\n    protocol: TCP\n  tls:\n    backend:\n"
              "      clientCertificateRef: {group: \"\", kind: Secret, name: gateway-client}\n");
        if (!expectProgrammed) {
            return;
        }
        json gw;
        ASSERT_TRUE(test::eventually([&] {
            gw = gateway();
            return test::conditionTrue(gw, "Programmed");
        })) << gw.dump(2);
        EXPECT_EQ(gw["status"]["addresses"],
                  json::parse(R"([{"type": "IPAddress", "value": ")" + vip + "\"}]"));
    }

    // lastmile_intercepted_connections_total of edge's listener for `mode`, read in `netns`.
    double intercepted(const test::Netns& netns, const std::string& mode) {
        InNetns in(netns);
        return test::metricValue(test::metricsText(admin_),
                                 "lastmile_intercepted_connections_total{project=\"default\","
                                 "namespace=\"default\",gateway=\"edge\",listener=\"tcp\","
                                 "mode=\"" + mode + "\"}");
    }

    std::unique_ptr<test::TlsBackend> startBackend(const test::Netns& netns,
                                                   const std::string& host, std::uint16_t port,
                                                   bool plain = false) {
        InNetns in(netns);
        test::TlsBackendOptions o;
        o.host = host;
        o.port = port;
        o.plain = plain;
        o.serverCert = pki_.issueServer(kHostname);
        o.clientCaPem = plain ? "" : pki_.caPem();
        o.requireClientCert = !plain;
        auto backend = test::TlsBackend::start(std::move(o));
        if (!backend) {
            throw std::runtime_error("backend: " + backend.error().message());
        }
        return std::move(*backend);
    }

    test::TempDir dir_;
    test::TestPki pki_;
    std::unique_ptr<test::NotifySocket> notify_;
    std::unique_ptr<test::ChildProcess> daemon_;
    std::string admin_;
};

// lastmiled in namespace `appliance` (and cgroup "daemon"), the TLS echo backend at kVip in
// namespace `backend`, joined by a veth pair; clients are this process in "apps" or "other".
class LastmiledHostModeTest : public LastmiledInterceptionTest {
protected:
    void SetUp() override {
        if (auto missing = test::kernelEnvMissing()) {
            GTEST_SKIP() << *missing;
        }
        appliance_ = std::make_unique<test::Netns>("lmd");
        backendNs_ = std::make_unique<test::Netns>("lmb");
        test::ip({"link", "add", "a0", "netns", appliance_->name(), "type", "veth", "peer", "name",
                  "b0", "netns", backendNs_->name()});
        appliance_->ip({"addr", "add", "10.98.0.2/24", "dev", "a0"});
        appliance_->ip({"link", "set", "a0", "up"});
        backendNs_->ip({"addr", "add", std::string(kVip) + "/24", "dev", "b0"});
        backendNs_->ip({"link", "set", "b0", "up"});
        cgroups_ = std::make_unique<test::TestCgroup>(
            std::vector<std::string>{"apps", "daemon", "other"});
        port_ = test::freePort();
        backend_ = startBackend(*backendNs_, kVip, port_);
    }

    void TearDown() override {
        LastmiledInterceptionTest::TearDown();
        backend_.reset();
        if (cgroups_) {
            cgroups_->enter("");
        }
        cgroups_.reset();
        backendNs_.reset();
        appliance_.reset();
    }

    // lastmiled in cgroup "daemon", intercepting connects from cgroup "apps" to addresses
    // of `addresses` (interception.addresses).
    void startDaemon(const std::string& addresses = "[10.96.0.0/14]") {
        cgroups_->enter("daemon");
        LastmiledInterceptionTest::startDaemon(
            *appliance_, "{cgroups: [" + cgroups_->path("apps") + "], addresses: " + addresses +
                             "}");
        cgroups_->enter("other");
    }

    // A client socket of cgroup `child` in the appliance namespace, connected to `to`.
    Result<UniqueFd> connectFrom(const std::string& child, const bpf::Endpoint& to,
                                 int family = AF_INET) {
        InNetns in(*appliance_);
        cgroups_->enter(child);
        UniqueFd fd = test::tcpSocket(family);
        cgroups_->enter("other");
        LM_TRY(test::connectWithin(fd.get(), to));
        return fd;
    }

    std::unique_ptr<test::Netns> appliance_;
    std::unique_ptr<test::Netns> backendNs_;
    std::unique_ptr<test::TestCgroup> cgroups_;
    std::unique_ptr<test::TlsBackend> backend_;
    std::uint16_t port_ = 0;
};

TEST_F(LastmiledHostModeTest, AClientInTheCgroupDiallingTheBackendGetsVerifiedTls) {
    startDaemon();
    applyTopology(kVip, port_);

    const auto vip = *bpf::Endpoint::parse(kVip, port_);
    auto client = connectFrom("apps", vip);
    ASSERT_TRUE(client) << client.error().message();
    EXPECT_EQ(bpf::Endpoint::peerOf(client->get())->toString(), vip.toString())
        << "the client sees the address it dialled";
    EXPECT_EQ(roundTrip(client->get(), "through lastmile"), "through lastmile");
    expectVerifiedTls(*backend_);

    // A dual-stack socket dialling the IPv4-mapped address goes through connect6.
    auto mapped = connectFrom("apps", *bpf::Endpoint::parse(std::string("::ffff:") + kVip, port_),
                              AF_INET6);
    ASSERT_TRUE(mapped) << mapped.error().message();
    EXPECT_EQ(roundTrip(mapped->get(), "mapped"), "mapped");
    EXPECT_TRUE(test::eventually([&] { return intercepted(*appliance_, "host") == 2; }))
        << intercepted(*appliance_, "host");

    const auto described = ctl({"describe", "gateway", "edge"});
    ASSERT_EQ(described.exitCode, 0) << described.err;
    for (const std::string& line :
         {"takes over " + vip.toString() + " (host mode)", std::string("Interception:"),
          std::string(kVip), std::string("usable"), "lm_connect4 on " + cgroups_->path("apps")}) {
        EXPECT_NE(described.out.find(line), std::string::npos) << line << "\n" << described.out;
    }
    EXPECT_EQ(described.out.find("detached"), std::string::npos) << described.out;
}

// One virtual address:port has one listener: another project's Gateway asking for it (from
// another bind address, so the bind claims do not collide) is refused without naming it.
TEST_F(LastmiledHostModeTest, AVirtualAddressTakenOverIsRefusedToAnotherGateway) {
    startDaemon();
    applyTopology(kVip, port_);
    apply("apiVersion: gateway.networking.k8s.io/v1\nkind: Gateway\nmetadata:\n  name: late\n"
          "spec:\n  gatewayClassName: lastmile\n  addresses:\n  - {type: IPAddress, value: "
          "127.0.0.2}\n  - {type: IPAddress, value: " + std::string(kVip) + "}\n  listeners:\n"
          "  - name: tcp\n    port: " + std::to_string(port_) + "\n    protocol: TCP\n",
          "tenant-b");
    const json programmed = notUsable("late", "tenant-b");
    ASSERT_FALSE(programmed.is_null()) << gateway("late", "tenant-b").dump(2);
    const std::string message = programmed.value("message", "");
    EXPECT_NE(message.find("is already taken over by another listener"), std::string::npos)
        << message;
    EXPECT_EQ(message.find("default"), std::string::npos) << message;
    EXPECT_EQ(message.find("edge"), std::string::npos) << message;
    EXPECT_TRUE(test::conditionTrue(gateway(), "Programmed")) << "the first keeps it";

    ASSERT_EQ(ctl({"delete", "gateway", "edge"}).exitCode, 0);
    EXPECT_TRUE(test::eventually([&] { return test::conditionTrue(gateway("late", "tenant-b"),
                                                                  "Programmed"); }))
        << "the address is taken over by the next one once it is free: "
        << gateway("late", "tenant-b").dump(2);
}

// A tenant's Gateway may only take over addresses the operator listed: a virtual address
// captures every intercepted client's connections, whoever they belong to. Outside
// interception.addresses the Gateway says why, and a client in the cgroup reaches the real
// destination untouched.
TEST_F(LastmiledHostModeTest, AnAddressOutsideTheOperatorsNetworksIsNotTakenOver) {
    startDaemon("[10.99.0.0/16]");
    applyTopology(kVip, port_, /*expectProgrammed=*/false);
    const json programmed = notUsable();
    ASSERT_FALSE(programmed.is_null()) << gateway().dump(2);
    EXPECT_NE(programmed.value("message", "").find(
                  std::string(kVip) + " is not an address of this host, nor in the networks "
                                      "interception may take over (interception.addresses)"),
              std::string::npos)
        << programmed.dump(2);
    auto client = connectFrom("apps", *bpf::Endpoint::parse(kVip, port_));
    ASSERT_TRUE(client) << client.error().message();
    EXPECT_NE(roundTrip(client->get(), "plaintext"), "plaintext");
    ASSERT_TRUE(backend_->waitForObservations(1, 5s));
    EXPECT_FALSE(backend_->observations().at(0).handshakeOk) << "the backend itself answered";
    EXPECT_LE(intercepted(*appliance_, "host"), 0) << "absent (no connection) or zero";
}

// Outside the configured cgroup nothing changes: the connect reaches the backend itself,
// which then sees plaintext where it expects TLS, and lastmiled counts nothing.
TEST_F(LastmiledHostModeTest, AClientOutsideTheCgroupReachesTheBackendDirectly) {
    startDaemon();
    applyTopology(kVip, port_);
    auto client = connectFrom("other", *bpf::Endpoint::parse(kVip, port_));
    ASSERT_TRUE(client) << client.error().message();
    EXPECT_NE(roundTrip(client->get(), "plaintext"), "plaintext");
    ASSERT_TRUE(backend_->waitForObservations(1, 5s));
    EXPECT_FALSE(backend_->observations().at(0).handshakeOk);
    EXPECT_LE(intercepted(*appliance_, "host"), 0) << "absent (no connection) or zero";
}

// Three namespaces joined by veth: client -- appliance (lastmiled, forwarding) -- backend.
// The client dials the backend's own address; routed mode hands listed ports to lastmiled.
class LastmiledRoutedModeTest : public LastmiledInterceptionTest {
protected:
    static constexpr const char* kBackendIp = "10.97.2.2";

    void SetUp() override {
        if (auto missing = test::kernelEnvMissing()) {
            GTEST_SKIP() << *missing;
        }
        client_ = std::make_unique<test::Netns>("lrc");
        appliance_ = std::make_unique<test::Netns>("lra");
        backendNs_ = std::make_unique<test::Netns>("lrb");
        test::ip({"link", "add", "c0", "netns", client_->name(), "type", "veth", "peer", "name",
                  "a-cli", "netns", appliance_->name()});
        test::ip({"link", "add", "b0", "netns", backendNs_->name(), "type", "veth", "peer", "name",
                  "a-be", "netns", appliance_->name()});
        client_->ip({"addr", "add", "10.97.1.2/24", "dev", "c0"});
        client_->ip({"link", "set", "c0", "up"});
        client_->ip({"route", "add", "default", "via", "10.97.1.1"});
        appliance_->ip({"addr", "add", "10.97.1.1/24", "dev", "a-cli"});
        appliance_->ip({"link", "set", "a-cli", "up"});
        appliance_->ip({"addr", "add", "10.97.2.1/24", "dev", "a-be"});
        appliance_->ip({"link", "set", "a-be", "up"});
        backendNs_->ip({"addr", "add", std::string(kBackendIp) + "/24", "dev", "b0"});
        backendNs_->ip({"link", "set", "b0", "up"});
        backendNs_->ip({"route", "add", "default", "via", "10.97.2.1"});
        {
            InNetns in(*appliance_);
            std::ofstream("/proc/sys/net/ipv4/ip_forward") << "1";
        }
        port_ = test::freePort();
        unlisted_ = test::freePort();
        while (unlisted_ == port_) {
            unlisted_ = test::freePort();
        }
        backend_ = startBackend(*backendNs_, kBackendIp, port_);
        plain_ = startBackend(*backendNs_, kBackendIp, unlisted_, true);
    }

    void TearDown() override {
        LastmiledInterceptionTest::TearDown();
        backend_.reset();
        plain_.reset();
        backendNs_.reset();
        appliance_.reset();
        client_.reset();
    }

    Result<UniqueFd> dialFromClient(std::uint16_t port) {
        InNetns in(*client_);
        UniqueFd fd = test::tcpSocket(AF_INET);
        LM_TRY(test::connectWithin(fd.get(), *bpf::Endpoint::parse(kBackendIp, port)));
        return fd;
    }

    std::unique_ptr<test::Netns> client_;
    std::unique_ptr<test::Netns> appliance_;
    std::unique_ptr<test::Netns> backendNs_;
    std::unique_ptr<test::TlsBackend> backend_;
    std::unique_ptr<test::TlsBackend> plain_;
    std::uint16_t port_ = 0;
    std::uint16_t unlisted_ = 0;

    // lastmiled intercepting what arrives on a-cli for the backend's network, and the Gateway
    // at the backend's own address.
    void startRouted() {
        startDaemon(*appliance_, "{interfaces: [a-cli], addresses: [10.97.2.0/24]}");
        applyTopology(kBackendIp, port_);
    }
};

TEST_F(LastmiledRoutedModeTest, TheBackendsAddressIsTakenOverAndAnUnlistedPortPasses) {
    startRouted();
    auto client = dialFromClient(port_);
    ASSERT_TRUE(client) << client.error().message();
    EXPECT_EQ(roundTrip(client->get(), "routed through lastmile"), "routed through lastmile");
    expectVerifiedTls(*backend_);
    EXPECT_TRUE(test::eventually([&] { return intercepted(*appliance_, "routed") == 1; }))
        << intercepted(*appliance_, "routed");

    auto other = dialFromClient(unlisted_);
    ASSERT_TRUE(other) << other.error().message();
    EXPECT_EQ(roundTrip(other->get(), "untouched"), "untouched");
    EXPECT_EQ(intercepted(*appliance_, "routed"), 1) << "the unlisted port was forwarded";
}

// Links die with the process: after SIGKILL the client's connect reaches the backend itself
// (which then sees plaintext where it expects TLS), never a black hole.
TEST_F(LastmiledRoutedModeTest, AfterSigkillTheClientReachesTheBackendDirectly) {
    startRouted();
    auto through = dialFromClient(port_);
    ASSERT_TRUE(through) << through.error().message();
    EXPECT_EQ(roundTrip(through->get(), "before"), "before");
    through->reset();
    daemon_->signal(SIGKILL);
    daemon_->wait();
    ASSERT_TRUE(backend_->waitForObservations(1, 5s));
    auto direct = dialFromClient(port_);
    ASSERT_TRUE(direct) << direct.error().message();
    EXPECT_NE(roundTrip(direct->get(), "after"), "after");
    ASSERT_TRUE(backend_->waitForObservations(2, 5s));
    EXPECT_FALSE(backend_->observations().at(1).handshakeOk) << "plaintext reached the backend";
}

}  // namespace
}  // namespace lastmile

#else

TEST(LastmiledInterceptionTest, NeedsTheBpfFeature) {
    GTEST_SKIP() << "this lastmiled was built without BPF interception";
}

#endif
