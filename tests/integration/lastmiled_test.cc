// SPDX-License-Identifier: Apache-2.0
// End-to-end: a real lastmiled process driven by the real lastmilectl, as an operator would.
#include <signal.h>

#include <gtest/gtest.h>

#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include <algorithm>
#include <cstdlib>
#include <cstring>
#include <memory>
#include <regex>
#include <nlohmann/json.hpp>

#include "dataplane/tls/certificate_info.h"
#include "tests/support/client.h"
#include "tests/support/process.h"
#include "tests/support/seed_manifests.h"
#include "tests/support/test_pki.h"

namespace lastmile {
namespace {

using nlohmann::json;

std::string binary(const char* var) {
    const char* path = std::getenv(var);
    if (path == nullptr) {
        throw std::runtime_error(std::string(var) + " is not set (run through meson test)");
    }
    return path;
}

// A Gateway of lastmile's class, a TCPRoute to Service my-backend:443 and its endpoints.
constexpr const char* kLoopbackBackends = "allowedBackendNetworks: [\"127.0.0.0/8\", \"::1/128\"]\n";

constexpr const char* kTopology = R"(apiVersion: gateway.networking.k8s.io/v1
kind: Gateway
metadata:
  name: edge
spec:
  gatewayClassName: lastmile
  listeners:
  - name: tcp
    port: 8443
    protocol: TCP
---
apiVersion: gateway.networking.k8s.io/v1alpha2
kind: TCPRoute
metadata:
  name: to-backend
spec:
  parentRefs:
  - name: edge
    sectionName: tcp
  rules:
  - backendRefs:
    - name: my-backend
      port: 443
---
apiVersion: v1
kind: Service
metadata:
  name: my-backend
spec:
  ports:
  - name: https
    port: 443
---
apiVersion: discovery.k8s.io/v1
kind: EndpointSlice
metadata:
  name: my-backend-1
  labels:
    kubernetes.io/service-name: my-backend
addressType: IPv4
endpoints:
- addresses: ["127.0.0.1"]
ports:
- name: https
  port: 9443
)";

using test::kSeedPolicyYaml;

std::string caPolicy(const std::string& name) {
    return R"(apiVersion: gateway.networking.k8s.io/v1
kind: BackendTLSPolicy
metadata:
  name: )" + name + R"(
spec:
  targetRefs:
  - group: ""
    kind: Service
    name: my-backend
  validation:
    hostname: backend.example.com
    caCertificateRefs:
    - group: ""
      kind: ConfigMap
      name: backend-ca
)";
}

std::string caConfigMap(const std::string& pem) {
    std::string indented;
    for (std::size_t start = 0; start < pem.size();) {
        auto end = pem.find('\n', start);
        if (end == std::string::npos) end = pem.size();
        indented += "    " + pem.substr(start, end - start) + "\n";
        start = end + 1;
    }
    return "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: backend-ca\ndata:\n  ca.crt: |\n" + indented;
}

class LastmiledTest : public ::testing::Test {
protected:
    void SetUp() override {
        ::mkdir((dir_.path() + "/logs").c_str(), 0700);
    }

    std::string socketPath() const { return dir_.path() + "/api.sock"; }

    // The configuration file is lastmiled.yaml in dir_, holding `config` (tests that reload
    // rewrite it). By default it lets lastmiled dial the topology's loopback backend, which
    // the default refuses.
    void startDaemon(const std::vector<std::string>& extra = {},
                     std::map<std::string, std::string> env = {},
                     const std::string& config = kLoopbackBackends) {
        notify_.reset();
        notify_ = std::make_unique<test::NotifySocket>(dir_.path() + "/notify");
        const std::string configFile = dir_.write("lastmiled.yaml", config);
        std::vector<std::string> argv{binary("LASTMILED"), "--config", configFile,
                                      "--state-dir", dir_.path() + "/state",
                                      "--api-socket", socketPath(), "--admin-http", "127.0.0.1:0"};
        argv.insert(argv.end(), extra.begin(), extra.end());
        env["NOTIFY_SOCKET"] = notify_->path();
        daemon_ = std::make_unique<test::ChildProcess>(argv, env, dir_.path() + "/logs");
        notify_->waitFor("READY=1");
    }

    test::Outcome ctl(std::vector<std::string> args, const std::string& input = "") {
        args.insert(args.begin(), binary("LASTMILECTL"));
        return test::runProcess(args, {{"LASTMILE_SERVER", "unix://" + socketPath()}}, input);
    }

    json getJson(const std::string& kind, const std::string& name,
                 const std::string& project = "default") {
        auto r = ctl({"get", kind, name, "-o", "json", "--project", project});
        EXPECT_EQ(r.exitCode, 0) << r.err;
        return json::parse(r.out);
    }

    // Our ancestor entry's condition of `type` on a policy.
    static json condition(const json& policy, const std::string& type) {
        for (const auto& ancestor : policy.at("status").at("ancestors")) {
            for (const auto& c : ancestor.at("conditions")) {
                if (c.at("type") == type) {
                    return c;
                }
            }
        }
        return json();
    }

    test::TempDir dir_;
    std::unique_ptr<test::NotifySocket> notify_;
    std::unique_ptr<test::ChildProcess> daemon_;
};

TEST_F(LastmiledTest, SeedPolicyIsAcceptedAndDescribed) {
    startDaemon();
    auto applied = ctl({"apply", "-f", dir_.write("all.yaml", std::string(kTopology) + "---\n" + kSeedPolicyYaml)});
    ASSERT_EQ(applied.exitCode, 0) << applied.out << applied.err;
    EXPECT_NE(applied.out.find("backendtlspolicy.gateway.networking.k8s.io/secure-backend created"),
              std::string::npos)
        << applied.out;

    auto policy = getJson("backendtlspolicy", "secure-backend");
    EXPECT_EQ(condition(policy, "Accepted").value("status", ""), "True") << policy.dump(2);
    EXPECT_EQ(condition(policy, "ResolvedRefs").value("status", ""), "True") << policy.dump(2);
    EXPECT_EQ(policy["status"]["ancestors"][0]["ancestorRef"]["name"], "edge");

    auto described = ctl({"describe", "backendtlspolicy", "secure-backend"});
    ASSERT_EQ(described.exitCode, 0) << described.err;
    for (const char* expected : {"secure-backend", "Accepted", "ResolvedRefs", "backend.example.com",
                                 "lastmile.dev/appliance"}) {
        EXPECT_NE(described.out.find(expected), std::string::npos) << expected << "\n" << described.out;
    }
}

TEST_F(LastmiledTest, DescribeShowsTheCompiledTrustAnchor) {
    test::TestPki pki;
    startDaemon();
    auto applied = ctl({"apply", "-f",
                        dir_.write("all.yaml", std::string(kTopology) + "---\n" + caConfigMap(pki.caPem()) +
                                                   "---\n" + caPolicy("pinned"))});
    ASSERT_EQ(applied.exitCode, 0) << applied.out << applied.err;
    auto described = ctl({"describe", "btlspolicy", "pinned"});
    ASSERT_EQ(described.exitCode, 0) << described.err;
    auto anchors = tls::inspectPemBundle(pki.caPem());
    ASSERT_TRUE(anchors) << anchors.error().message();
    EXPECT_NE(described.out.find(anchors->front().sha256), std::string::npos) << described.out;
}

TEST_F(LastmiledTest, ConfigMapChangesAreReconciledLive) {
    test::TestPki pki;
    startDaemon();
    ASSERT_EQ(ctl({"apply", "-f", dir_.write("t.yaml", std::string(kTopology) + "---\n" + caPolicy("p"))})
                  .exitCode,
              0);
    EXPECT_EQ(condition(getJson("backendtlspolicy", "p"), "ResolvedRefs").value("reason", ""),
              "InvalidCACertificateRef");

    ASSERT_EQ(ctl({"apply", "-f", dir_.write("cm.yaml", caConfigMap(pki.caPem()))}).exitCode, 0);
    EXPECT_EQ(condition(getJson("backendtlspolicy", "p"), "ResolvedRefs").value("status", ""), "True");

    ASSERT_EQ(ctl({"delete", "configmap", "backend-ca"}).exitCode, 0);
    auto policy = getJson("backendtlspolicy", "p");
    EXPECT_EQ(condition(policy, "Accepted").value("reason", ""), "NoValidCACertificate");
    EXPECT_EQ(condition(policy, "ResolvedRefs").value("reason", ""), "InvalidCACertificateRef");
}

TEST_F(LastmiledTest, InvalidObjectsAreRefusedWithEveryFieldPathAndValidOnesStored) {
    startDaemon();
    const std::string file = dir_.write("mixed.yaml", R"(apiVersion: v1
kind: ConfigMap
metadata:
  name: fine
data:
  a: b
---
apiVersion: gateway.networking.k8s.io/v1
kind: BackendTLSPolicy
metadata:
  name: broken
spec:
  targetRefs:
  - group: ""
    kind: Service
    name: my-backend
  validation:
    hostname: Backend.Example.com.
    caCertificateRefs:
    - group: ""
      kind: ConfigMap
      name: ca
    wellKnownCACertificates: System
)");
    auto r = ctl({"apply", "-f", file});
    EXPECT_NE(r.exitCode, 0);
    EXPECT_NE(r.err.find("spec.validation.hostname"), std::string::npos) << r.err;
    EXPECT_NE(r.err.find("must not contain both CACertificateRefs and WellKnownCACertificates"),
              std::string::npos)
        << r.err;
    EXPECT_EQ(ctl({"get", "configmap", "fine"}).exitCode, 0);
    EXPECT_NE(ctl({"get", "backendtlspolicy", "broken"}).exitCode, 0);
}

TEST_F(LastmiledTest, AcknowledgedApplySurvivesKill9) {
    startDaemon();
    auto r = ctl({"apply", "-f", dir_.write("cm.yaml", "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: durable\ndata:\n  k: v\n")});
    ASSERT_EQ(r.exitCode, 0) << r.err;
    // Killed the moment the acknowledgement arrived: nothing else ran in between.
    daemon_->signal(SIGKILL);
    EXPECT_EQ(daemon_->wait(), 128 + SIGKILL);

    startDaemon();
    auto after = getJson("configmap", "durable");
    EXPECT_EQ(after["data"]["k"], "v");
    EXPECT_EQ(after["metadata"]["generation"], 1);
}

TEST_F(LastmiledTest, StaleUpdateIsAConflict) {
    startDaemon();
    ASSERT_EQ(ctl({"apply", "-f", dir_.write("a.yaml", "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: c\ndata:\n  k: v1\n")}).exitCode, 0);
    ASSERT_EQ(ctl({"apply", "-f", dir_.write("b.yaml", "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: c\ndata:\n  k: v2\n")}).exitCode, 0);
    auto current = getJson("configmap", "c");
    const std::string stale = std::to_string(std::stoll(current["metadata"]["resourceVersion"].get<std::string>()) - 1);
    auto r = ctl({"apply", "-f", dir_.write("stale.yaml", "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: c\n  resourceVersion: \"" + stale + "\"\ndata:\n  k: v3\n")});
    EXPECT_NE(r.exitCode, 0);
    EXPECT_NE(r.err.find("Conflict"), std::string::npos) << r.err;
    EXPECT_EQ(getJson("configmap", "c")["data"]["k"], "v2");
}

TEST_F(LastmiledTest, ProjectsDoNotSeeEachOther) {
    startDaemon();
    ASSERT_EQ(ctl({"apply", "--project", "tenant-a", "-f",
                   dir_.write("a.yaml", "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: secret-plans\n")})
                  .exitCode,
              0);
    EXPECT_EQ(ctl({"get", "configmap", "secret-plans", "--project", "tenant-a"}).exitCode, 0);
    auto other = ctl({"get", "configmap", "secret-plans", "--project", "tenant-b"});
    EXPECT_NE(other.exitCode, 0);
    EXPECT_NE(other.err.find("NotFound"), std::string::npos) << other.err;
    auto list = ctl({"get", "configmaps", "-A", "--project", "tenant-b"});
    EXPECT_EQ(list.out.find("secret-plans"), std::string::npos) << list.out;
}

TEST_F(LastmiledTest, DeeplyNestedBodiesGet400AndTheDaemonKeepsServing) {
    startDaemon();
    const std::string path = "/projects/default/api/v1/namespaces/default/configmaps/deep";
    const std::string head = R"({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "deep"}, "data": )";
    const std::string open(100'000, '[');
    for (const auto& body : {head + open + std::string(100'000, ']') + "}", head + open,
                             head + std::string(65, '[') + std::string(65, ']') + "}"}) {
        auto r = test::apiRequest(socketPath(), "PUT", path, body);
        ASSERT_EQ(r.status, 400) << "the daemon did not answer: " << daemon_->stderrText();
        auto status = json::parse(r.body);
        EXPECT_EQ(status["kind"], "Status");
        EXPECT_EQ(status["reason"], "BadRequest");
    }
    EXPECT_EQ(test::apiRequest(socketPath(), "GET", "/healthz", "").status, 200);
    EXPECT_EQ(ctl({"apply", "-f", dir_.write("cm.yaml", "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: after\n")})
                  .exitCode,
              0);
}

TEST_F(LastmiledTest, NonUtf8PathGetsAStatusAndTheDaemonKeepsServing) {
    startDaemon();
    auto r = test::apiRequest(socketPath(), "GET", "/projects/default/api/v1/co%ff%fe", "");
    ASSERT_EQ(r.status, 404) << "the daemon did not answer: " << daemon_->stderrText();
    EXPECT_EQ(json::parse(r.body)["kind"], "Status");
    EXPECT_EQ(test::apiRequest(socketPath(), "GET", "/healthz", "").status, 200);
}

TEST_F(LastmiledTest, TruncatedRequestsAreClosedAtOnce) {
    startDaemon();
    // Well below the server's 30 s idle timeout: the end of input itself must close them.
    for (const std::string partial :
         {"GET /projects/default/api/v1/namesp",
          "PUT /projects/default/api/v1/namespaces/default/configmaps/c HTTP/1.1\r\nHost: l\r\n"
          "Content-Length: 100\r\n\r\n{\"apiVersion\""}) {
        EXPECT_TRUE(test::exchangeUnix(socketPath(), partial, 10).ended) << partial;
    }
    EXPECT_EQ(test::apiRequest(socketPath(), "GET", "/healthz", "").status, 200);
}

TEST_F(LastmiledTest, DeeplyNestedManifestsAreRefusedAndTheDaemonKeepsServing) {
    test::TempDir manifests;
    const std::string head = "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: deep\ndata:\n";
    manifests.write("10-flow.yaml", head + "  k: " + std::string(100'000, '[') + "\n");
    std::string block = head;
    for (int i = 1; i <= 100; ++i) {
        block += std::string(2 * i, ' ') + "k:\n";
    }
    manifests.write("20-block.yaml", block);
    manifests.write("30-fine.yaml", "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: fine\n");
    startDaemon({"--manifests", manifests.path()});
    EXPECT_EQ(ctl({"get", "configmap", "fine"}).exitCode, 0);
    EXPECT_NE(ctl({"get", "configmap", "deep"}).exitCode, 0);
    auto sent = ctl({"apply", "-f", manifests.path() + "/20-block.yaml"});
    EXPECT_NE(sent.exitCode, 0);
    EXPECT_NE(sent.err.find("nests deeper than 64 levels"), std::string::npos) << sent.err;
}

// Runs lastmilectl as uid/gid 65534 (nobody/nogroup) with no supplementary groups.
class LastmiledAccessTest : public LastmiledTest {
protected:
    void SetUp() override {
        LastmiledTest::SetUp();
        if (::geteuid() != 0) {
            GTEST_SKIP() << "needs root to run a client as another uid";
        }
        if (::access("/usr/bin/setpriv", X_OK) != 0) {
            GTEST_SKIP() << "needs setpriv (util-linux) to drop to another uid";
        }
    }

    // The kernel lets nobody connect (the directory and socket are opened up); whether it
    // gets anything is lastmiled's decision alone.
    void openSocketToEveryone() {
        ASSERT_EQ(::chmod(dir_.path().c_str(), 0755), 0);
        ASSERT_EQ(::chmod(socketPath().c_str(), 0666), 0);
    }

    test::Outcome ctlAsNobody(std::vector<std::string> args) {
        args.insert(args.begin(), {"/usr/bin/setpriv", "--reuid=65534", "--regid=65534",
                                   "--clear-groups", "--", binary("LASTMILECTL")});
        return test::runProcess(args, {{"LASTMILE_SERVER", "unix://" + socketPath()}});
    }

    void seed(const std::string& project, const std::string& name) {
        auto r = ctl({"apply", "--project", project, "-f",
                      dir_.write(name + ".yaml", "apiVersion: v1\nkind: Secret\nmetadata:\n  name: " +
                                                     name + "\ndata:\n  key: c2VjcmV0LWJ5dGVz\n")});
        ASSERT_EQ(r.exitCode, 0) << r.err;
    }

    static void expectForbidden(const test::Outcome& r, const std::string& hidden) {
        EXPECT_NE(r.exitCode, 0);
        EXPECT_NE(r.err.find("Error from server (Forbidden)"), std::string::npos) << r.err;
        EXPECT_EQ((r.out + r.err).find(hidden), std::string::npos) << r.out << r.err;
        EXPECT_EQ((r.out + r.err).find("c2VjcmV0LWJ5dGVz"), std::string::npos) << r.out << r.err;
    }
};

TEST_F(LastmiledAccessTest, CallerWithoutAGrantIsForbiddenAndSeesNothing) {
    startDaemon();
    openSocketToEveryone();
    seed("default", "db-password");
    seed("team-a", "team-a-key");
    expectForbidden(ctlAsNobody({"get", "secret", "db-password"}), "db-password");
    expectForbidden(ctlAsNobody({"get", "secrets"}), "db-password");
    expectForbidden(ctlAsNobody({"get", "secrets", "-A", "--project", "team-a"}), "team-a-key");
    expectForbidden(ctlAsNobody({"get", "secret", "db-password", "-o", "yaml"}), "db-password");
    expectForbidden(ctlAsNobody({"describe", "secret", "db-password"}), "db-password");
    expectForbidden(ctlAsNobody({"apply", "-f", dir_.write("mine.yaml", "apiVersion: v1\nkind: "
                                                                         "ConfigMap\nmetadata:\n  name: mine\n")}),
                    "db-password");
    expectForbidden(ctlAsNobody({"delete", "secret", "db-password"}), "db-password");
    EXPECT_EQ(ctl({"get", "secret", "db-password"}).exitCode, 0);
    EXPECT_NE(ctl({"get", "configmap", "mine"}).exitCode, 0);
}

TEST_F(LastmiledAccessTest, GrantedGroupSeesOnlyItsProjects) {
    startDaemon({}, {}, "apiAccess:\n  - {group: nogroup, projects: [team-a]}\n");
    openSocketToEveryone();
    seed("default", "db-password");
    seed("team-a", "team-a-key");
    seed("team-b", "team-b-key");
    auto own = ctlAsNobody({"get", "secrets", "-A", "--project", "team-a"});
    EXPECT_EQ(own.exitCode, 0) << own.err;
    EXPECT_NE(own.out.find("team-a-key"), std::string::npos) << own.out;
    EXPECT_EQ(own.out.find("team-b-key"), std::string::npos) << own.out;
    EXPECT_EQ(own.out.find("db-password"), std::string::npos) << own.out;
    auto applied = ctlAsNobody({"apply", "--project", "team-a", "-f",
                                dir_.write("mine.yaml", "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: mine\n")});
    EXPECT_EQ(applied.exitCode, 0) << applied.err;
    EXPECT_EQ(ctlAsNobody({"delete", "configmap", "mine", "--project", "team-a"}).exitCode, 0);
    expectForbidden(ctlAsNobody({"get", "secrets", "-A", "--project", "team-b"}), "team-b-key");
    expectForbidden(ctlAsNobody({"get", "secret", "db-password"}), "db-password");
    expectForbidden(ctlAsNobody({"delete", "secret", "team-b-key", "--project", "team-b"}), "team-b-key");
}

TEST_F(LastmiledAccessTest, ReloadSwapsTheGrantsAndKeepsThemOnABadName) {
    startDaemon({}, {}, "logLevel: info\n");
    openSocketToEveryone();
    seed("team-a", "team-a-key");
    expectForbidden(ctlAsNobody({"get", "secrets", "--project", "team-a"}), "team-a-key");

    dir_.write("lastmiled.yaml", "apiAccess:\n  - {user: nobody, projects: [team-a]}\n");
    daemon_->signal(SIGHUP);
    notify_->waitFor("READY=1");
    auto granted = ctlAsNobody({"get", "secrets", "--project", "team-a"});
    EXPECT_EQ(granted.exitCode, 0) << granted.err;
    EXPECT_NE(granted.out.find("team-a-key"), std::string::npos) << granted.out;

    // A name the system does not know: the running grants stay, nothing is opened or closed.
    dir_.write("lastmiled.yaml", "apiAccess:\n  - {user: no-such-user-lm, projects: [\"*\"]}\n");
    daemon_->signal(SIGHUP);
    notify_->waitFor("READY=1");
    EXPECT_EQ(ctlAsNobody({"get", "secrets", "--project", "team-a"}).exitCode, 0);
    expectForbidden(ctlAsNobody({"get", "secrets", "--project", "default"}), "team-a-key");
}

TEST_F(LastmiledTest, UnknownNameInApiAccessStopsTheDaemonAtStart) {
    auto config = dir_.write("lastmiled.yaml",
                             "apiAccess:\n  - {user: no-such-user-lm, projects: [team-a]}\n");
    auto r = test::runProcess({binary("LASTMILED"), "--config", config, "--state-dir",
                               dir_.path() + "/state", "--api-socket", socketPath(),
                               "--admin-http", ""});
    EXPECT_EQ(r.exitCode, 1);
    EXPECT_NE(r.err.find("unknown user \"no-such-user-lm\""), std::string::npos) << r.err;
}

TEST_F(LastmiledTest, ManifestsDirectoryIsAppliedAtStart) {
    test::TempDir manifests;
    manifests.write("10-topology.yaml", kTopology);
    manifests.write("20-policy.yaml", kSeedPolicyYaml);
    startDaemon({"--manifests", manifests.path()});
    auto policy = getJson("backendtlspolicy", "secure-backend");
    EXPECT_EQ(condition(policy, "Accepted").value("status", ""), "True") << policy.dump(2);
}

TEST_F(LastmiledTest, FeedsTheSystemdWatchdogWhenAskedTo) {
    startDaemon({}, {{"WATCHDOG_USEC", "200000"}});
    notify_->waitFor("WATCHDOG=1", std::chrono::seconds(10));
}

// Hosts are often named in ways a fleet node's key cannot be (a VM without a name has
// "(none)"): only fleet mode needs nodeName then.
TEST_F(LastmiledTest, AHostNameThatCannotNameAFleetNodeDoesNotStopOneAppliance) {
    if (::geteuid() != 0) {
        GTEST_SKIP() << "naming the host in a UTS namespace of its own needs root";
    }
    notify_ = std::make_unique<test::NotifySocket>(dir_.path() + "/notify");
    daemon_ = std::make_unique<test::ChildProcess>(
        std::vector<std::string>{"/usr/bin/unshare", "--uts", "/bin/sh", "-c",
                                 "echo '(none)' > /proc/sys/kernel/hostname && exec \"$0\" \"$@\"",
                                 binary("LASTMILED"), "--state-dir", dir_.path() + "/state",
                                 "--api-socket", socketPath(), "--admin-http", ""},
        std::map<std::string, std::string>{{"NOTIFY_SOCKET", notify_->path()}},
        dir_.path() + "/logs");
    notify_->waitFor("READY=1", std::chrono::seconds(10));
    auto nodes = ctl({"get", "nodes"});
    EXPECT_EQ(nodes.exitCode, 0) << nodes.err;
    EXPECT_NE(nodes.out.find("(none)"), std::string::npos) << nodes.out;
    // The usable engines by name, as a fleet node lists them.
    auto listed = json::parse(ctl({"get", "nodes", "-o", "json"}).out, nullptr, false);
    ASSERT_TRUE(listed.is_object()) << listed;
    EXPECT_EQ(listed["items"][0]["engines"].back(), "openssl") << listed;
}

TEST_F(LastmiledTest, SighupReappliesManifestsAndStaysReady) {
    test::TempDir manifests;
    startDaemon({"--manifests", manifests.path()});
    manifests.write("cm.yaml", "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: late\n");
    daemon_->signal(SIGHUP);
    notify_->waitFor("READY=1");
    EXPECT_EQ(ctl({"get", "configmap", "late"}).exitCode, 0);
}

TEST_F(LastmiledTest, SecondInstanceOnTheSameStateRefusesToStart) {
    startDaemon();
    auto second = test::runProcess({binary("LASTMILED"), "--state-dir", dir_.path() + "/state",
                                    "--api-socket", dir_.path() + "/other.sock", "--admin-http", ""});
    EXPECT_EQ(second.exitCode, 1);
    EXPECT_NE(second.err.find("in use by another lastmiled"), std::string::npos) << second.err;
    EXPECT_EQ(ctl({"get", "gateways"}).exitCode, 0) << "the first instance must keep serving";
}

TEST_F(LastmiledTest, ReadyLineNamesTheBoundAdminPort) {
    startDaemon();
    const std::string log = daemon_->stderrText();
    EXPECT_TRUE(std::regex_search(log, std::regex("admin http://127\\.0\\.0\\.1:[1-9][0-9]*")))
        << log;
}

TEST(LastmiledFlagsTest, UsageErrorsExitTwoAndHelpExitsZero) {
    EXPECT_EQ(test::runProcess({binary("LASTMILED"), "--bogus"}).exitCode, 2);
    EXPECT_EQ(test::runProcess({binary("LASTMILED"), "--config", "/nonexistent.yaml"}).exitCode, 2);
    auto help = test::runProcess({binary("LASTMILED"), "--help"});
    EXPECT_EQ(help.exitCode, 0);
    EXPECT_NE(help.out.find("--state-dir"), std::string::npos) << help.out;
}

TEST_F(LastmiledTest, SigtermStopsCleanlyAndRemovesTheSocket) {
    startDaemon();
    daemon_->signal(SIGTERM);
    EXPECT_EQ(daemon_->wait(), 0) << daemon_->stderrText();
    EXPECT_NE(::access(socketPath().c_str(), F_OK), 0);
}

TEST(LastmilectlTest, UnreachableServerIsOneClearLine) {
    auto r = test::runProcess({binary("LASTMILECTL"), "get", "services"},
                              {{"LASTMILE_SERVER", "unix:///nonexistent/lastmile.sock"}});
    EXPECT_EQ(r.exitCode, 1);
    EXPECT_NE(r.err.find("cannot reach lastmiled"), std::string::npos) << r.err;
    EXPECT_EQ(std::count(r.err.begin(), r.err.end(), '\n'), 1) << r.err;
}

TEST(LastmilectlTest, MissingFileIsOneClearLine) {
    auto r = test::runProcess({binary("LASTMILECTL"), "apply", "-f", "/nonexistent/x.yaml"},
                              {{"LASTMILE_SERVER", "unix:///nonexistent/lastmile.sock"}});
    EXPECT_EQ(r.exitCode, 1);
    EXPECT_NE(r.err.find("/nonexistent/x.yaml"), std::string::npos) << r.err;
}

TEST(LastmilectlTest, ExplainRecursivePrintsTheWholePolicyTree) {
    auto r = test::runProcess({binary("LASTMILECTL"), "explain", "backendtlspolicies", "--recursive"});
    ASSERT_EQ(r.exitCode, 0) << r.err;
    for (const char* field : {"targetRefs", "sectionName", "validation", "caCertificateRefs",
                              "wellKnownCACertificates", "hostname", "subjectAltNames", "uri",
                              "options", "ancestors", "controllerName"}) {
        EXPECT_NE(r.out.find(field), std::string::npos) << field << "\n" << r.out;
    }
}

}  // namespace
}  // namespace lastmile
