// SPDX-License-Identifier: Apache-2.0
// End-to-end dataplane: a real lastmiled forwarding real sockets to in-process TLS backends.
#include <arpa/inet.h>
#include <netinet/in.h>
#include <signal.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cctype>
#include <atomic>
#include <cerrno>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <ctime>
#include <iostream>
#include <map>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include <gtest/gtest.h>

#include <nlohmann/json.hpp>

#include "base/unique_fd.h"
#include "tests/support/admin.h"
#include "tests/support/client.h"
#include "tests/support/process.h"
#include "tests/support/test_pki.h"
#include "tests/support/tls_backend.h"
#include "tests/support/tls_stat.h"

namespace lastmile {
namespace {

using namespace std::chrono_literals;
using nlohmann::json;
using test::BackendMode;
using test::countFds;
using test::dial;
using test::eventually;
using test::freePort;
using test::readExactly;
using test::readToEnd;
using test::rssKiB;
using test::ReadResult;
using test::sendAll;
using test::IssueOptions;
using test::TestPki;
using test::TlsBackend;
using test::TlsBackendOptions;
using SteadyClock = std::chrono::steady_clock;

constexpr const char* kHostname = "backend.example.com";
constexpr const char* kSpiffe = "spiffe://cluster.local/ns/default/sa/backend";

// Under AddressSanitizer freed memory sits in a quarantine, so RSS says nothing of leaks.
#if defined(__SANITIZE_ADDRESS__)
constexpr bool kAddressSanitizer = true;
#elif defined(__has_feature)
#if __has_feature(address_sanitizer)
constexpr bool kAddressSanitizer = true;
#else
constexpr bool kAddressSanitizer = false;
#endif
#else
constexpr bool kAddressSanitizer = false;
#endif

// One round trip on a fresh connection: what came back for `payload`.
std::string echoOnce(const std::string& address, const std::string& payload) {
    UniqueFd fd = dial(address);
    if (!sendAll(fd.get(), payload)) {
        return {};
    }
    return readExactly(fd.get(), payload.size());
}

// An HTTP/1.1 request on a fresh connection; the whole answer up to the server's close.
ReadResult httpGet(const std::string& address, int timeoutSeconds = 10) {
    UniqueFd fd = dial(address, nullptr, timeoutSeconds);
    sendAll(fd.get(),
            std::string("GET / HTTP/1.1\r\nHost: ") + kHostname + "\r\nConnection: close\r\n\r\n");
    return readToEnd(fd.get());
}

std::string statusLine(const std::string& response) {
    return response.substr(0, response.find("\r\n"));
}

std::string body(const std::string& response) {
    auto end = response.find("\r\n\r\n");
    return end == std::string::npos ? std::string() : response.substr(end + 4);
}

// A blocking socket listening on 127.0.0.1 at a port the kernel picks, written to `port`.
UniqueFd listenOnLoopback(std::uint16_t& port) {
    UniqueFd fd(::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0));
    sockaddr_in a{};
    a.sin_family = AF_INET;
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    socklen_t len = sizeof(a);
    if (!fd.valid() || ::bind(fd.get(), reinterpret_cast<sockaddr*>(&a), sizeof(a)) != 0 ||
        ::listen(fd.get(), 4) != 0 ||
        ::getsockname(fd.get(), reinterpret_cast<sockaddr*>(&a), &len) != 0) {
        throw std::runtime_error(std::string("listening on 127.0.0.1: ") + std::strerror(errno));
    }
    port = ntohs(a.sin_port);
    return fd;
}

// ---- Manifests.

std::string indentBlock(const std::string& text, const std::string& prefix) {
    std::string out;
    for (std::size_t start = 0; start < text.size();) {
        auto end = text.find('\n', start);
        if (end == std::string::npos) end = text.size();
        out += prefix + text.substr(start, end - start) + "\n";
        start = end + 1;
    }
    return out;
}

struct ListenerSpec {
    std::string name;
    std::uint16_t port = 0;
    std::string protocol;  // "TCP" or "HTTP"
};

std::string gatewayYaml(const std::vector<ListenerSpec>& listeners,
                        const std::string& clientCertSecret = "") {
    std::string y = R"(apiVersion: gateway.networking.k8s.io/v1
kind: Gateway
metadata:
  name: edge
spec:
  gatewayClassName: lastmile
  addresses:
  - type: IPAddress
    value: 127.0.0.1
  listeners:
)";
    for (const auto& l : listeners) {
        y += "  - name: " + l.name + "\n    port: " + std::to_string(l.port) +
             "\n    protocol: " + l.protocol + "\n";
    }
    if (!clientCertSecret.empty()) {
        y += "  tls:\n    backend:\n      clientCertificateRef:\n        group: \"\"\n";
        y += "        kind: Secret\n        name: " + clientCertSecret + "\n";
    }
    return y;
}

std::string routeYaml(const std::string& kind, const std::string& name, const std::string& section,
                      const std::string& service, int port) {
    const std::string version = kind == "TCPRoute" ? "v1alpha2" : "v1";
    return "apiVersion: gateway.networking.k8s.io/" + version + "\nkind: " + kind +
           "\nmetadata:\n  name: " + name +
           "\nspec:\n  parentRefs:\n  - name: edge\n    sectionName: " + section +
           "\n  rules:\n  - backendRefs:\n    - name: " + service +
           "\n      port: " + std::to_string(port) + "\n";
}

std::string serviceYaml(const std::string& name,
                        const std::vector<std::pair<std::string, int>>& ports) {
    std::string y =
        "apiVersion: v1\nkind: Service\nmetadata:\n  name: " + name + "\nspec:\n  ports:\n";
    for (const auto& [portName, port] : ports) {
        y += "  - name: " + portName + "\n    port: " + std::to_string(port) + "\n";
    }
    return y;
}

// One EndpointSlice of `service` at 127.0.0.1 with the given named ports.
std::string sliceYaml(const std::string& name, const std::string& service,
                      const std::vector<std::pair<std::string, int>>& ports) {
    std::string y =
        "apiVersion: discovery.k8s.io/v1\nkind: EndpointSlice\nmetadata:\n  name: " + name +
        "\n  labels:\n    kubernetes.io/service-name: " + service +
        "\naddressType: IPv4\nendpoints:\n- addresses: [\"127.0.0.1\"]\nports:\n";
    for (const auto& [portName, port] : ports) {
        y += "- name: " + portName + "\n  port: " + std::to_string(port) + "\n";
    }
    return y;
}

std::string caConfigMapYaml(const std::string& pem, const std::string& name = "backend-ca") {
    if (pem.empty()) {
        return "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: " + name +
               "\ndata:\n  ca.crt: \"\"\n";
    }
    return "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: " + name +
           "\ndata:\n  ca.crt: |\n" + indentBlock(pem, "    ");
}

std::string caSecretYaml(const std::string& name, const std::string& pem) {
    return "apiVersion: v1\nkind: Secret\nmetadata:\n  name: " + name +
           "\nstringData:\n  ca.crt: |\n" + indentBlock(pem, "    ");
}

std::string tlsSecretYaml(const std::string& name, const test::IssuedCert& cert) {
    return "apiVersion: v1\nkind: Secret\nmetadata:\n  name: " + name +
           "\ntype: kubernetes.io/tls\nstringData:\n  tls.crt: |\n" +
           indentBlock(cert.chainPem, "    ") + "  tls.key: |\n" + indentBlock(cert.keyPem, "    ");
}

struct San {
    std::string type;  // "Hostname" or "URI"
    std::string value;
};

struct PolicySpec {
    std::string name = "backend-tls";
    std::string service = "svc";
    std::string sectionName;  // empty: the whole Service
    std::string hostname = kHostname;
    // CA references as (kind, name), group "". Empty: wellKnownCACertificates below.
    std::vector<std::pair<std::string, std::string>> caRefs = {{"ConfigMap", "backend-ca"}};
    std::string wellKnown = "System";
    std::vector<San> sans;
    std::map<std::string, std::string> options;     // keys without the lastmile.dev/ prefix
    std::map<std::string, std::string> rawOptions;  // full keys, e.g. of another domain
};

std::string policyYaml(const PolicySpec& p) {
    std::string y =
        "apiVersion: gateway.networking.k8s.io/v1\nkind: BackendTLSPolicy\nmetadata:\n  name: " +
        p.name +
        "\nspec:\n  targetRefs:\n  - group: \"\"\n    kind: Service\n    name: " + p.service + "\n";
    if (!p.sectionName.empty()) {
        y += "    sectionName: " + p.sectionName + "\n";
    }
    y += "  validation:\n    hostname: " + p.hostname + "\n";
    if (p.caRefs.empty()) {
        y += "    wellKnownCACertificates: " + p.wellKnown + "\n";
    } else {
        y += "    caCertificateRefs:\n";
        for (const auto& [kind, name] : p.caRefs) {
            y += "    - group: \"\"\n      kind: " + kind + "\n      name: " + name + "\n";
        }
    }
    if (!p.sans.empty()) {
        y += "    subjectAltNames:\n";
        for (const auto& s : p.sans) {
            y += "    - type: " + s.type + "\n      " + (s.type == "URI" ? "uri: " : "hostname: ") +
                 "\"" + s.value + "\"\n";
        }
    }
    if (!p.options.empty() || !p.rawOptions.empty()) {
        y += "  options:\n";
        for (const auto& [k, v] : p.options) {
            y += "    lastmile.dev/" + k + ": \"" + v + "\"\n";
        }
        for (const auto& [k, v] : p.rawOptions) {
            y += "    " + k + ": \"" + v + "\"\n";
        }
    }
    return y;
}

std::string join(const std::vector<std::string>& docs) {
    std::string out;
    for (const auto& d : docs) {
        out += (out.empty() ? "" : "---\n") + d;
    }
    return out;
}

// Where the standard topology listens: a TCP and an HTTP listener, both routed to svc:443.
struct Listeners {
    std::string tcp;
    std::string http;
};

// How to start the daemon under test.
struct DaemonSetup {
    std::map<std::string, std::string> env;
    std::string timeouts = "1s";  // connectTimeout and handshakeTimeout
    std::string idleTimeout = "30s";
    std::string drainTimeout = "5s";
    // Most cases check the names and addresses an error answer gives; the default is reason.
    std::string errorDetail = "full";
    // The backends are on loopback, which the default refuses; "" leaves the default.
    std::string allowedBackendNetworks = R"(["127.0.0.0/8", "::1/128"])";
    std::string extraConfig;  // more lines of the config file
    std::vector<std::string> extraArgs;
};

class DataplaneE2eTest : public ::testing::Test {
protected:
    static void SetUpTestSuite() {
        // 1,000 concurrent connections need ~3,000 descriptors here and ~2,000 in lastmiled.
        rlimit r{};
        if (::getrlimit(RLIMIT_NOFILE, &r) == 0 && r.rlim_cur < r.rlim_max) {
            r.rlim_cur = r.rlim_max;
            ::setrlimit(RLIMIT_NOFILE, &r);
        }
    }

    void SetUp() override { ::mkdir((dir_.path() + "/logs").c_str(), 0700); }

    void TearDown() override {
        if (HasFailure() && daemon_) {
            try {
                const int code = daemon_->wait(0ms);
                std::cerr << "---- lastmiled is gone: exit status " << code
                          << (code > 128 ? " (killed by a signal)" : "") << " ----\n";
            } catch (const std::exception&) {
                // Still running: the usual case.
            }
            std::cerr << "---- lastmiled stderr (tail) ----\n";
            const std::string log = daemon_->stderrText();
            std::cerr << (log.size() > 4000 ? log.substr(log.size() - 4000) : log) << "\n";
        }
    }

    std::string socketPath() const { return dir_.path() + "/api.sock"; }

    void startDaemon(DaemonSetup setup = {}) {
        const std::string config = dir_.write(
            "lastmiled.yaml",
            "workers: 2\nbindAddress: 127.0.0.1\nconnectTimeout: " + setup.timeouts +
                "\nhandshakeTimeout: " + setup.timeouts + "\nidleTimeout: " + setup.idleTimeout +
                "\ndrainTimeout: " + setup.drainTimeout + "\nerrorDetail: " + setup.errorDetail +
                "\n" +
                (setup.allowedBackendNetworks.empty()
                     ? ""
                     : "allowedBackendNetworks: " + setup.allowedBackendNetworks + "\n") +
                setup.extraConfig);
        notify_ = std::make_unique<test::NotifySocket>(dir_.path() + "/notify");
        std::vector<std::string> argv{
            test::requiredEnv("LASTMILED"),    "--config",     config,       "--state-dir",
            dir_.path() + "/state", "--api-socket", socketPath(), "--admin-http",
            "127.0.0.1:0"};
        argv.insert(argv.end(), setup.extraArgs.begin(), setup.extraArgs.end());
        setup.env["NOTIFY_SOCKET"] = notify_->path();
        daemon_ = std::make_unique<test::ChildProcess>(argv, setup.env, dir_.path() + "/logs");
        notify_->waitFor("READY=1");
        admin_ = test::adminAddress(daemon_->stderrText());
    }

    test::Outcome ctl(std::vector<std::string> args) {
        args.insert(args.begin(), test::requiredEnv("LASTMILECTL"));
        return test::runProcess(args, {{"LASTMILE_SERVER", "unix://" + socketPath()}});
    }

    void apply(const std::string& yaml, const std::string& project = "default") {
        const std::string file = dir_.write("apply-" + std::to_string(++applied_) + ".yaml", yaml);
        auto r = ctl({"apply", "-f", file, "--project", project});
        if (r.exitCode != 0) {
            // Nothing after a refused apply means anything: stop the test here.
            throw std::runtime_error("lastmilectl apply failed: " + r.out + r.err + "\n" + yaml);
        }
    }

    json getJson(const std::string& kind, const std::string& name,
                 const std::string& project = "default") {
        auto r = ctl({"get", kind, name, "-o", "json", "--project", project});
        if (r.exitCode != 0) {
            return json();
        }
        return json::parse(r.out, nullptr, false);
    }

    bool gatewayProgrammed() { return test::conditionTrue(getJson("gateway", "edge"), "Programmed"); }

    // Through lastmiled with the cryptodev engine on `device` (a software vdev).
    void expectCryptodevCarriesSessions(const std::string& device);

    // Reads a Source backend's stream through `address` to its end: `total` pattern bytes.
    void expectSourceStream(const std::string& address, std::uint64_t total) {
        UniqueFd fd = dial(address);
        auto r = readToEnd(fd.get());
        EXPECT_TRUE(r.ended) << "the connection ends instead of hanging";
        ASSERT_EQ(r.data.size(), total);
        EXPECT_TRUE(test::matchesSourcePattern(
            0, {reinterpret_cast<const std::uint8_t*>(r.data.data()), r.data.size()}))
            << "no corrupt byte";
    }

    // The standard topology: Gateway edge (TCP + HTTP listeners) -> svc:443 -> endpoints at
    // `backendPorts` (one EndpointSlice each), plus `extra` documents in the same apply.
    Listeners serve(const std::vector<std::uint16_t>& backendPorts,
                    const std::vector<std::string>& extra = {},
                    const std::string& clientCertSecret = "") {
        Listeners l;
        apply(topology(backendPorts, extra, clientCertSecret, l));
        if (!eventually([&] { return gatewayProgrammed(); })) {
            throw std::runtime_error("Gateway edge is not Programmed: " +
                                     getJson("gateway", "edge").dump(2));
        }
        return l;
    }

    // The documents of serve(), with fresh listener ports written to `l`.
    static std::string topology(const std::vector<std::uint16_t>& backendPorts,
                                const std::vector<std::string>& extra,
                                const std::string& clientCertSecret, Listeners& l) {
        const std::uint16_t tcpPort = freePort();
        std::uint16_t httpPort = freePort();
        while (httpPort == tcpPort) {
            httpPort = freePort();
        }
        l.tcp = "127.0.0.1:" + std::to_string(tcpPort);
        l.http = "127.0.0.1:" + std::to_string(httpPort);
        std::vector<std::string> docs = extra;
        docs.push_back(
            gatewayYaml({{"tcp", tcpPort, "TCP"}, {"http", httpPort, "HTTP"}}, clientCertSecret));
        docs.push_back(routeYaml("TCPRoute", "tcp-route", "tcp", "svc", 443));
        docs.push_back(routeYaml("HTTPRoute", "http-route", "http", "svc", 443));
        docs.push_back(serviceYaml("svc", {{"https", 443}}));
        for (std::size_t i = 0; i < backendPorts.size(); ++i) {
            docs.push_back(
                sliceYaml("svc-" + std::to_string(i), "svc", {{"https", backendPorts[i]}}));
        }
        return join(docs);
    }

    // The standard topology plus the CA ConfigMap of pki_ and `policy`.
    Listeners serveWithPolicy(const TlsBackend& backend, const PolicySpec& policy) {
        return serve({backend.port()}, {caConfigMapYaml(pki_.caPem()), policyYaml(policy)});
    }

    std::unique_ptr<TlsBackend> startBackend(TlsBackendOptions options) {
        auto backend = TlsBackend::start(std::move(options));
        if (!backend) {
            throw std::runtime_error("backend: " + backend.error().message());
        }
        return std::move(*backend);
    }

    TlsBackendOptions backendOptions(const test::IssuedCert& cert,
                                     BackendMode mode = BackendMode::Echo) {
        TlsBackendOptions o;
        o.serverCert = cert;
        o.mode = mode;
        return o;
    }

    std::unique_ptr<TlsBackend> echoBackend(const std::vector<std::string>& names = {kHostname},
                                            const IssueOptions& issue = {}) {
        return startBackend(backendOptions(pki_.issueServer(names, issue)));
    }

    std::string metricsText() { return test::metricsText(admin_); }

    // The value of one series, e.g. `lastmile_failures_total{reason="verify_failed"}`; -1 if
    // absent.
    double metric(const std::string& series) { return test::metricValue(metricsText(), series); }

    // Asks the HTTP listener at `address` until it answers `status` (each request with a
    // 2 s timeout, so a request that is served and held open does not stall the wait, for
    // up to 5 s); returns the last answer.
    std::string awaitHttpStatus(const std::string& address, const std::string& status) {
        std::string answer;
        eventually(
            [&] {
                answer = httpGet(address, 2).data;
                return statusLine(answer) == status;
            },
            5s);
        return answer;
    }

    // A TCP-listener connection lastmiled must close without a byte: sends some plaintext,
    // expects EOF (or reset) with nothing read.
    void expectClosedWithoutData(const std::string& address) {
        UniqueFd fd = dial(address);
        sendAll(fd.get(), "plaintext that must never reach the backend");
        auto r = readToEnd(fd.get());
        EXPECT_TRUE(r.ended) << "lastmiled neither answered nor closed within 10 s";
        EXPECT_EQ(r.data, "");
    }

    test::TempDir dir_;
    TestPki pki_;
    std::unique_ptr<test::NotifySocket> notify_;
    std::unique_ptr<test::ChildProcess> daemon_;
    std::string admin_;
    int applied_ = 0;
};

TEST_F(DataplaneE2eTest, AdminListenerServesHealthzAndTheListenersAreProgrammed) {
    startDaemon();
    auto l = serve({freePort()});
    UniqueFd fd = dial(admin_);
    sendAll(fd.get(), "GET /healthz HTTP/1.1\r\nHost: lastmiled\r\nConnection: close\r\n\r\n");
    auto r = readToEnd(fd.get());
    EXPECT_EQ(statusLine(r.data), "HTTP/1.1 200 OK") << r.data;
    EXPECT_EQ(body(r.data), "ok\n");
    EXPECT_TRUE(gatewayProgrammed());
    EXPECT_EQ(metric("lastmile_workers"), 2);
    // The only endpoint is a port nobody listens on: the HTTP listener says so, naming the
    // Service.
    auto refused = httpGet(l.http);
    EXPECT_EQ(statusLine(refused.data), "HTTP/1.1 503 Service Unavailable") << refused.data;
    EXPECT_NE(body(refused.data).find("svc"), std::string::npos) << refused.data;
}

// A port still held when the Gateway is programmed (the socket of a crashed predecessor the
// kernel has not released yet, another program) is bound as soon as it is free, with no new
// apply; until then the status says why, and the retries do not rewrite it.
TEST_F(DataplaneE2eTest, AListenerWhosePortIsHeldBindsOnceThePortIsFree) {
    TlsBackendOptions o;
    o.plain = true;
    auto backend = startBackend(o);
    startDaemon();
    std::uint16_t port = 0;
    UniqueFd holder = listenOnLoopback(port);
    apply(join({gatewayYaml({{"tcp", port, "TCP"}}),
                routeYaml("TCPRoute", "tcp-route", "tcp", "svc", 443),
                serviceYaml("svc", {{"https", 443}}),
                sliceYaml("svc-0", "svc", {{"https", backend->port()}})}));
    ASSERT_TRUE(eventually([&] {
        const std::string status = getJson("gateway", "edge").dump();
        return status.find("Address already in use") != std::string::npos;
    })) << getJson("gateway", "edge").dump(2);
    EXPECT_FALSE(gatewayProgrammed());
    const json held = getJson("gateway", "edge");
    std::this_thread::sleep_for(std::chrono::milliseconds(2500));  // two retries, at least
    EXPECT_EQ(getJson("gateway", "edge")["metadata"]["resourceVersion"],
              held["metadata"]["resourceVersion"])
        << "a retry that changes nothing writes nothing";

    holder.reset();
    EXPECT_TRUE(eventually([&] { return gatewayProgrammed(); }))
        << getJson("gateway", "edge").dump(2);
    EXPECT_EQ(echoOnce("127.0.0.1:" + std::to_string(port), "bound at last"), "bound at last");
}

// Without `interception:` an address that is not this host's cannot be served: its Gateway
// says so and binds nothing (not even the default address), and another Gateway's listener
// keeps working.
TEST_F(DataplaneE2eTest, AVirtualAddressWithoutInterceptionIsNotUsableAndOthersKeepWorking) {
    TlsBackendOptions o;
    o.plain = true;
    auto backend = startBackend(o);
    startDaemon();
    auto l = serve({backend->port()});
    const std::uint16_t port = freePort();
    apply("apiVersion: gateway.networking.k8s.io/v1\nkind: Gateway\nmetadata:\n  name: vip\n"
          "spec:\n  gatewayClassName: lastmile\n  addresses:\n  - type: IPAddress\n"
          "    value: 198.51.100.7\n  listeners:\n  - name: tcp\n    port: " +
          std::to_string(port) + "\n    protocol: TCP\n");
    json programmed;
    ASSERT_TRUE(eventually([&] {
        const json status = getJson("gateway", "vip")["status"];
        for (const auto& c : status.value("conditions", json::array())) {
            if (c.value("type", "") == "Programmed") {
                programmed = c;
            }
        }
        return programmed.value("reason", "") == "AddressNotUsable";
    })) << getJson("gateway", "vip").dump(2);
    EXPECT_EQ(programmed.value("status", ""), "False");
    EXPECT_NE(programmed.value("message", "").find(
                  "198.51.100.7 is not an address of this host and interception is not configured"),
              std::string::npos)
        << programmed.dump();
    EXPECT_FALSE(getJson("gateway", "vip")["status"].contains("addresses"));
    EXPECT_THROW(dial("127.0.0.1:" + std::to_string(port), nullptr, 2), std::exception)
        << "nothing listens for the Gateway whose only address is virtual";
    EXPECT_TRUE(gatewayProgrammed());
    EXPECT_EQ(echoOnce(l.tcp, "still served"), "still served");
}

TEST_F(DataplaneE2eTest, ServiceWithoutAPolicyIsForwardedAsPlainTcp) {
    TlsBackendOptions o;
    o.plain = true;
    auto backend = startBackend(o);
    startDaemon();
    auto l = serve({backend->port()});
    EXPECT_EQ(echoOnce(l.tcp, "no policy, no TLS"), "no policy, no TLS");
    EXPECT_GE(metric("lastmile_plain_backend_connections_total"), 1);
}

// ---- Verification.

TEST_F(DataplaneE2eTest, ValidPolicyEchoesAndTheBackendSawTheSni) {
    auto backend = echoBackend();
    startDaemon();
    auto l = serveWithPolicy(*backend, {});
    EXPECT_EQ(echoOnce(l.tcp, "hello through lastmiled"), "hello through lastmiled");
    ASSERT_TRUE(backend->waitForObservations(1, 5s));
    const auto o = backend->observations().front();
    EXPECT_TRUE(o.handshakeOk) << o.handshakeError;
    EXPECT_EQ(o.sni, kHostname);
    EXPECT_FALSE(o.version.empty());
    EXPECT_GE(metric("lastmile_handshakes_full_total"), 1);
}

TEST_F(DataplaneE2eTest, WrongCaClosesTheTcpConnectionAndTheBackendGetsNoPlaintext) {
    TestPki other;
    auto backend = startBackend(backendOptions(other.issueServer(kHostname)));
    startDaemon();
    auto l = serveWithPolicy(*backend, {});
    expectClosedWithoutData(l.tcp);
    ASSERT_TRUE(backend->waitForObservations(1, 5s));
    EXPECT_FALSE(backend->observations().front().handshakeOk);
    EXPECT_EQ(backend->totalBytesReceived(), 0u);
    EXPECT_GE(metric("lastmile_failures_total{reason=\"verify_failed\"}"), 1);
}

TEST_F(DataplaneE2eTest, WrongCaOnAnHttpListenerAnswers502NamingTheProblem) {
    TestPki other;
    auto backend = startBackend(backendOptions(other.issueServer(kHostname)));
    startDaemon();
    auto l = serveWithPolicy(*backend, {});
    auto r = httpGet(l.http);
    EXPECT_EQ(statusLine(r.data), "HTTP/1.1 502 Bad Gateway") << r.data;
    EXPECT_NE(body(r.data).find("CA not trusted"), std::string::npos) << r.data;
    EXPECT_NE(body(r.data).find(other.caName()), std::string::npos)
        << "names the issuer: " << r.data;
    EXPECT_EQ(backend->totalBytesReceived(), 0u);
}

TEST_F(DataplaneE2eTest, HostnameMismatchAnswers502NamingExpectedAndPresentedNames) {
    auto backend = echoBackend({"other.example.com"});
    startDaemon();
    auto l = serveWithPolicy(*backend, {});
    auto r = httpGet(l.http);
    EXPECT_EQ(statusLine(r.data), "HTTP/1.1 502 Bad Gateway") << r.data;
    EXPECT_NE(body(r.data).find(kHostname), std::string::npos) << r.data;
    EXPECT_NE(body(r.data).find("other.example.com"), std::string::npos) << r.data;
    EXPECT_EQ(backend->totalBytesReceived(), 0u);
}

TEST_F(DataplaneE2eTest, ByDefaultA502NamesTheFailureClassButNoNameOrAddress) {
    auto backend = echoBackend({"other.example.com"});
    startDaemon({.errorDetail = "reason"});
    auto l = serveWithPolicy(*backend, {});
    auto r = httpGet(l.http);
    EXPECT_EQ(statusLine(r.data), "HTTP/1.1 502 Bad Gateway") << r.data;
    EXPECT_EQ(body(r.data), "verify_failed: the backend's certificate was rejected\n") << r.data;
    EXPECT_EQ(metric("lastmile_failures_total{reason=\"verify_failed\"}"), 1);
}

TEST_F(DataplaneE2eTest, SanHostnameMatchIsAcceptedAndTheHostnameIsThenNotChecked) {
    auto backend = echoBackend({"api.internal"});  // no backend.example.com anywhere
    startDaemon();
    PolicySpec p;
    p.sans = {{"Hostname", "api.internal"}};
    auto l = serveWithPolicy(*backend, p);
    EXPECT_EQ(echoOnce(l.tcp, "san"), "san");
    ASSERT_TRUE(backend->waitForObservations(1, 5s));
    EXPECT_EQ(backend->observations().front().sni, kHostname) << "hostname is still the SNI";
}

TEST_F(DataplaneE2eTest, SanHostnameMismatchIsRefused) {
    auto backend = echoBackend({"api.internal", kHostname});
    startDaemon();
    PolicySpec p;
    p.sans = {{"Hostname", "other.internal"}};
    auto l = serveWithPolicy(*backend, p);
    auto r = httpGet(l.http);
    EXPECT_EQ(statusLine(r.data), "HTTP/1.1 502 Bad Gateway") << r.data;
    EXPECT_NE(body(r.data).find("other.internal"), std::string::npos) << r.data;
    EXPECT_NE(body(r.data).find("api.internal"), std::string::npos) << r.data;
    EXPECT_EQ(backend->totalBytesReceived(), 0u);
}

TEST_F(DataplaneE2eTest, SpiffeUriSanMatchIsAccepted) {
    IssueOptions issue;
    issue.uris = {kSpiffe};
    auto backend = echoBackend({"unrelated.example"}, issue);
    startDaemon();
    PolicySpec p;
    p.sans = {{"URI", kSpiffe}};
    auto l = serveWithPolicy(*backend, p);
    EXPECT_EQ(echoOnce(l.tcp, "spiffe"), "spiffe");
}

TEST_F(DataplaneE2eTest, SpiffeUriSanMismatchIsRefused) {
    IssueOptions issue;
    issue.uris = {"spiffe://cluster.local/ns/default/sa/impostor"};
    auto backend = echoBackend({kHostname}, issue);
    startDaemon();
    PolicySpec p;
    p.sans = {{"URI", kSpiffe}};
    auto l = serveWithPolicy(*backend, p);
    auto r = httpGet(l.http);
    EXPECT_EQ(statusLine(r.data), "HTTP/1.1 502 Bad Gateway") << r.data;
    EXPECT_NE(body(r.data).find("impostor"), std::string::npos) << r.data;
    expectClosedWithoutData(l.tcp);
    EXPECT_EQ(backend->totalBytesReceived(), 0u);
}

TEST_F(DataplaneE2eTest, SeveralSansAreOredAndTheSecondOneMatches) {
    IssueOptions issue;
    issue.uris = {kSpiffe};
    auto backend = echoBackend({"unrelated.example"}, issue);
    startDaemon();
    PolicySpec p;
    p.sans = {{"Hostname", "nope.internal"}, {"URI", kSpiffe}};
    auto l = serveWithPolicy(*backend, p);
    EXPECT_EQ(echoOnce(l.tcp, "either"), "either");
}

TEST_F(DataplaneE2eTest, ExpiredBackendCertificateIsRefused) {
    IssueOptions issue;
    issue.notBeforeOffset = -std::chrono::hours(48);
    issue.notAfterOffset = -std::chrono::hours(24);
    auto backend = echoBackend({kHostname}, issue);
    startDaemon();
    auto l = serveWithPolicy(*backend, {});
    auto r = httpGet(l.http);
    EXPECT_EQ(statusLine(r.data), "HTTP/1.1 502 Bad Gateway") << r.data;
    EXPECT_NE(body(r.data).find("expired"), std::string::npos) << r.data;
    EXPECT_EQ(backend->totalBytesReceived(), 0u);
}

TEST_F(DataplaneE2eTest, NotYetValidBackendCertificateIsRefused) {
    IssueOptions issue;
    issue.notBeforeOffset = std::chrono::hours(24);
    issue.notAfterOffset = std::chrono::hours(48);
    auto backend = echoBackend({kHostname}, issue);
    startDaemon();
    auto l = serveWithPolicy(*backend, {});
    auto r = httpGet(l.http);
    EXPECT_EQ(statusLine(r.data), "HTTP/1.1 502 Bad Gateway") << r.data;
    EXPECT_NE(body(r.data).find("not yet valid"), std::string::npos) << r.data;
    EXPECT_EQ(backend->totalBytesReceived(), 0u);
}

TEST_F(DataplaneE2eTest, SystemTrustStoreAcceptsABackendThatSslCertFileTrusts) {
    auto backend = echoBackend();
    startDaemon({.env = {{"SSL_CERT_FILE", dir_.write("system-ca.pem", pki_.caPem())}}});
    PolicySpec p;
    p.caRefs.clear();
    auto l = serve({backend->port()}, {policyYaml(p)});
    EXPECT_EQ(echoOnce(l.tcp, "system"), "system");
}

TEST_F(DataplaneE2eTest, SystemTrustStoreRefusesAPrivateCaItDoesNotHold) {
    auto backend = echoBackend();
    startDaemon();
    PolicySpec p;
    p.caRefs.clear();
    auto l = serve({backend->port()}, {policyYaml(p)});
    auto r = httpGet(l.http);
    EXPECT_EQ(statusLine(r.data), "HTTP/1.1 502 Bad Gateway") << r.data;
    expectClosedWithoutData(l.tcp);
    EXPECT_EQ(backend->totalBytesReceived(), 0u);
}

// An operator adds a CA to the system store and reloads: SIGHUP takes it, no restart.
TEST_F(DataplaneE2eTest, SighupReloadsTheSystemTrustStore) {
    auto backend = echoBackend();
    TestPki otherCa;
    const std::string systemStore = dir_.write("system-ca.pem", otherCa.caPem());
    startDaemon({.env = {{"SSL_CERT_FILE", systemStore}, {"SSL_CERT_DIR", dir_.path()}}});
    PolicySpec p;
    p.caRefs.clear();
    auto l = serve({backend->port()}, {policyYaml(p)});
    expectClosedWithoutData(l.tcp);

    dir_.write("system-ca.pem", otherCa.caPem() + pki_.caPem());
    daemon_->signal(SIGHUP);
    EXPECT_TRUE(eventually([&] { return echoOnce(l.tcp, "trusted") == "trusted"; }))
        << "the backend's CA, now in the system store, is still not trusted after SIGHUP";
}

// ---- Options.

TEST_F(DataplaneE2eTest, MinTls13IsRefusedByABackendLimitedToTls12) {
    auto o = backendOptions(pki_.issueServer(kHostname));
    o.maxVersion = tls::TlsVersion::Tls12;
    auto backend = startBackend(o);
    startDaemon();
    PolicySpec p;
    p.options = {{"min-tls-version", "1.3"}};
    auto l = serveWithPolicy(*backend, p);
    expectClosedWithoutData(l.tcp);
    EXPECT_EQ(backend->totalBytesReceived(), 0u);
}

TEST_F(DataplaneE2eTest, BackendLimitedToTls12WorksWithoutTheMinVersionOption) {
    auto o = backendOptions(pki_.issueServer(kHostname));
    o.maxVersion = tls::TlsVersion::Tls12;
    auto backend = startBackend(o);
    startDaemon();
    auto l = serveWithPolicy(*backend, {});
    EXPECT_EQ(echoOnce(l.tcp, "tls12"), "tls12");
    ASSERT_TRUE(backend->waitForObservations(1, 5s));
    EXPECT_EQ(backend->observations().front().version, "TLSv1.2");
}

TEST_F(DataplaneE2eTest, Tls13CipherSuiteOptionIsWhatTheBackendNegotiates) {
    auto backend = echoBackend();
    startDaemon();
    PolicySpec p;
    p.options = {{"cipher-suites", "TLS_AES_256_GCM_SHA384"}};
    auto l = serveWithPolicy(*backend, p);
    EXPECT_EQ(echoOnce(l.tcp, "cipher"), "cipher");
    ASSERT_TRUE(backend->waitForObservations(1, 5s));
    EXPECT_EQ(backend->observations().front().cipher, "TLS_AES_256_GCM_SHA384");
}

TEST_F(DataplaneE2eTest, Tls12CipherSuiteOptionWithMaxTls12IsWhatTheBackendNegotiates) {
    auto backend = echoBackend();
    startDaemon();
    PolicySpec p;
    p.options = {{"max-tls-version", "1.2"}, {"cipher-suites", "ECDHE-ECDSA-CHACHA20-POLY1305"}};
    auto l = serveWithPolicy(*backend, p);
    EXPECT_EQ(echoOnce(l.tcp, "cipher12"), "cipher12");
    ASSERT_TRUE(backend->waitForObservations(1, 5s));
    const auto obs = backend->observations().front();
    EXPECT_EQ(obs.version, "TLSv1.2");
    EXPECT_EQ(obs.cipher, "ECDHE-ECDSA-CHACHA20-POLY1305");
}

TEST_F(DataplaneE2eTest, EcdhCurvesOptionReachesABackendRestrictedToOneGroup) {
    auto o = backendOptions(pki_.issueServer(kHostname));
    o.groups = "P-384";
    auto backend = startBackend(o);
    startDaemon();
    PolicySpec p;
    p.options = {{"ecdh-curves", "P-384"}};
    auto l = serveWithPolicy(*backend, p);
    EXPECT_EQ(echoOnce(l.tcp, "curve"), "curve");
}

TEST_F(DataplaneE2eTest, EcdhCurvesWithoutTheBackendsGroupIsRefused) {
    auto o = backendOptions(pki_.issueServer(kHostname));
    o.groups = "P-384";
    auto backend = startBackend(o);
    startDaemon();
    PolicySpec p;
    p.options = {{"ecdh-curves", "X25519"}};
    auto l = serveWithPolicy(*backend, p);
    expectClosedWithoutData(l.tcp);
    EXPECT_EQ(backend->totalBytesReceived(), 0u);
}

TEST_F(DataplaneE2eTest, AlpnH2IsObservedByTheBackend) {
    auto o = backendOptions(pki_.issueServer(kHostname));
    o.alpn = {"h2", "http/1.1"};
    auto backend = startBackend(o);
    startDaemon();
    PolicySpec p;
    p.options = {{"alpn-protocols", "h2"}};
    auto l = serveWithPolicy(*backend, p);
    EXPECT_EQ(echoOnce(l.tcp, "alpn"), "alpn");
    ASSERT_TRUE(backend->waitForObservations(1, 5s));
    EXPECT_EQ(backend->observations().front().alpn, "h2");
}

// ---- Client certificates.

TEST_F(DataplaneE2eTest, BackendRequiringAClientCertificateRefusesAGatewayWithoutOne) {
    auto o = backendOptions(pki_.issueServer(kHostname));
    o.clientCaPem = pki_.caPem();
    o.requireClientCert = true;
    auto backend = startBackend(o);
    startDaemon();
    auto l = serveWithPolicy(*backend, {});
    expectClosedWithoutData(l.tcp);
    ASSERT_TRUE(backend->waitForObservations(1, 5s));
    EXPECT_FALSE(backend->observations().front().handshakeOk);
    EXPECT_EQ(backend->totalBytesReceived(), 0u);
}

TEST_F(DataplaneE2eTest, GatewayClientCertificateRefIsPresentedAndTheBackendSeesItsCn) {
    auto o = backendOptions(pki_.issueServer(kHostname));
    o.clientCaPem = pki_.caPem();
    o.requireClientCert = true;
    auto backend = startBackend(o);
    startDaemon();
    auto l = serve({backend->port()},
                   {caConfigMapYaml(pki_.caPem()), policyYaml({}),
                    tlsSecretYaml("gateway-client", pki_.issueClient("lastmile-gateway"))},
                   "gateway-client");
    EXPECT_EQ(echoOnce(l.tcp, "mtls"), "mtls");
    ASSERT_TRUE(backend->waitForObservations(1, 5s));
    EXPECT_EQ(backend->observations().front().clientCn, "lastmile-gateway");
}

// ---- What the policy may say (spec sections 2 and 4).

TEST_F(DataplaneE2eTest, SecretHoldingTheCaIsAcceptedAsACaSource) {
    auto backend = echoBackend();
    startDaemon();
    PolicySpec p;
    p.caRefs = {{"Secret", "backend-ca-secret"}};
    auto l =
        serve({backend->port()}, {caSecretYaml("backend-ca-secret", pki_.caPem()), policyYaml(p)});
    EXPECT_EQ(echoOnce(l.tcp, "secret ca"), "secret ca");
}

TEST_F(DataplaneE2eTest, SeveralCaRefsAreConcatenated) {
    TestPki other;
    auto backend = echoBackend();  // issued by pki_, the second ref
    startDaemon();
    PolicySpec p;
    p.caRefs = {{"ConfigMap", "other-ca"}, {"ConfigMap", "backend-ca"}};
    auto l = serve({backend->port()}, {caConfigMapYaml(other.caPem(), "other-ca"),
                                       caConfigMapYaml(pki_.caPem()), policyYaml(p)});
    EXPECT_EQ(echoOnce(l.tcp, "bundle"), "bundle");
}

TEST_F(DataplaneE2eTest, OneBadCaRefFailsTheWholePolicyClosed) {
    auto backend = echoBackend();
    startDaemon();
    PolicySpec p;
    p.caRefs = {{"ConfigMap", "backend-ca"}, {"ConfigMap", "missing-ca"}};
    auto l = serve({backend->port()}, {caConfigMapYaml(pki_.caPem()), policyYaml(p)});
    auto r = httpGet(l.http);
    EXPECT_EQ(statusLine(r.data), "HTTP/1.1 503 Service Unavailable") << r.data;
    EXPECT_NE(body(r.data).find("missing-ca"), std::string::npos) << r.data;
    EXPECT_EQ(backend->acceptedConnections(), 0u);
}

TEST_F(DataplaneE2eTest, CaRefOfAnUnsupportedKindFailsClosed) {
    auto backend = echoBackend();
    startDaemon();
    PolicySpec p;
    p.caRefs = {{"Pod", "backend-ca"}};
    auto l = serve({backend->port()}, {caConfigMapYaml(pki_.caPem()), policyYaml(p)});
    auto r = httpGet(l.http);
    EXPECT_EQ(statusLine(r.data), "HTTP/1.1 503 Service Unavailable") << r.data;
    expectClosedWithoutData(l.tcp);
    EXPECT_EQ(backend->acceptedConnections(), 0u);
}

TEST_F(DataplaneE2eTest, UnsupportedWellKnownCaFailsClosed) {
    auto backend = echoBackend();
    startDaemon();
    PolicySpec p;
    p.caRefs.clear();
    p.wellKnown = "example.com/corporate";
    auto l = serve({backend->port()}, {policyYaml(p)});
    auto r = httpGet(l.http);
    EXPECT_EQ(statusLine(r.data), "HTTP/1.1 503 Service Unavailable") << r.data;
    EXPECT_EQ(backend->acceptedConnections(), 0u);
}

TEST_F(DataplaneE2eTest, IpLiteralHostnameFailsClosed) {
    auto backend = echoBackend({"127.0.0.1"});
    startDaemon();
    PolicySpec p;
    p.hostname = "127.0.0.1";
    auto l = serveWithPolicy(*backend, p);
    auto r = httpGet(l.http);
    EXPECT_EQ(statusLine(r.data), "HTTP/1.1 503 Service Unavailable") << r.data;
    EXPECT_EQ(backend->acceptedConnections(), 0u);
}

TEST_F(DataplaneE2eTest, UnknownLastmileOptionFailsClosedAndOtherDomainsAreIgnored) {
    auto backend = echoBackend();
    startDaemon();
    PolicySpec p;
    p.options = {{"turbo", "on"}};
    auto l = serveWithPolicy(*backend, p);
    auto r = httpGet(l.http);
    EXPECT_EQ(statusLine(r.data), "HTTP/1.1 503 Service Unavailable") << r.data;
    EXPECT_NE(body(r.data).find("turbo"), std::string::npos) << r.data;
    EXPECT_EQ(backend->acceptedConnections(), 0u);

    p.options.clear();
    p.rawOptions = {{"example.com/turbo", "on"}};
    apply(policyYaml(p));
    EXPECT_TRUE(eventually([&] { return echoOnce(l.tcp, "ignored") == "ignored"; }, 5s));
}

TEST_F(DataplaneE2eTest, WildcardCertificateMatchesTheHostname) {
    auto backend = echoBackend({"*.example.com"});
    startDaemon();
    auto l = serveWithPolicy(*backend, {});
    EXPECT_EQ(echoOnce(l.tcp, "wildcard"), "wildcard");
}

TEST_F(DataplaneE2eTest, WildcardSanEntryMatchesOnlyALiteralWildcardCertificateName) {
    auto backend = echoBackend({kHostname});
    startDaemon();
    PolicySpec p;
    p.sans = {{"Hostname", "*.example.com"}};
    auto l = serveWithPolicy(*backend, p);
    auto r = httpGet(l.http);
    EXPECT_EQ(statusLine(r.data), "HTTP/1.1 502 Bad Gateway") << r.data;

    auto literal = echoBackend({"*.example.com"});
    apply(sliceYaml("svc-0", "svc", {{"https", literal->port()}}));
    EXPECT_TRUE(eventually([&] { return echoOnce(l.tcp, "literal") == "literal"; }, 5s));
}

TEST_F(DataplaneE2eTest, EndpointSliceChangesApplyToNewConnections) {
    auto first = echoBackend();
    auto second = echoBackend();
    startDaemon();
    auto l = serveWithPolicy(*first, {});
    ASSERT_EQ(echoOnce(l.tcp, "first"), "first");
    apply(sliceYaml("svc-0", "svc", {{"https", second->port()}}));
    EXPECT_TRUE(eventually(
        [&] { return echoOnce(l.tcp, "second") == "second" && second->acceptedConnections() > 0; },
        5s));
    const auto firstCount = first->acceptedConnections();
    for (int i = 0; i < 4; ++i) {
        EXPECT_EQ(echoOnce(l.tcp, "moved"), "moved");
    }
    EXPECT_EQ(first->acceptedConnections(), firstCount);
}

// ---- Policy selection.

TEST_F(DataplaneE2eTest, OfTwoConflictingPoliciesTheOlderOnesSniIsUsed) {
    auto backend = echoBackend({"older.example.com", "newer.example.com"});
    startDaemon();
    PolicySpec older;
    older.name = "zz-older";  // loses the name tie-break: only its age can make it win
    older.hostname = "older.example.com";
    auto l = serveWithPolicy(*backend, older);
    // creationTimestamp has one-second resolution: create the second policy a second later.
    const std::string created =
        getJson("backendtlspolicy", "zz-older")["metadata"].value("creationTimestamp", "");
    ASSERT_FALSE(created.empty());
    ASSERT_TRUE(eventually(
        [&] {
            char now[32];
            const std::time_t t = std::time(nullptr);
            std::tm tm{};
            ::gmtime_r(&t, &tm);
            std::strftime(now, sizeof(now), "%Y-%m-%dT%H:%M:%SZ", &tm);
            return std::string(now) > created;
        },
        3s));
    PolicySpec newer;
    newer.name = "aa-newer";
    newer.hostname = "newer.example.com";
    apply(policyYaml(newer));
    EXPECT_EQ(echoOnce(l.tcp, "conflict"), "conflict");
    ASSERT_TRUE(backend->waitForObservations(1, 5s));
    EXPECT_EQ(backend->observations().back().sni, "older.example.com");
}

TEST_F(DataplaneE2eTest, PortSpecificAndWholeServicePoliciesEachGovernTheirOwnPort) {
    auto web = echoBackend({"whole.example.com"});
    auto admin = echoBackend({"admin.example.com"});
    startDaemon();
    const std::uint16_t webPort = freePort();
    std::uint16_t adminPort = freePort();
    while (adminPort == webPort) {
        adminPort = freePort();
    }
    PolicySpec whole;
    whole.name = "whole";
    whole.hostname = "whole.example.com";
    PolicySpec port;
    port.name = "admin-port";
    port.sectionName = "admin";
    port.hostname = "admin.example.com";
    apply(join({gatewayYaml({{"web", webPort, "TCP"}, {"admin", adminPort, "TCP"}}),
                routeYaml("TCPRoute", "web", "web", "svc", 443),
                routeYaml("TCPRoute", "admin", "admin", "svc", 8443),
                serviceYaml("svc", {{"https", 443}, {"admin", 8443}}),
                sliceYaml("svc-1", "svc", {{"https", web->port()}, {"admin", admin->port()}}),
                caConfigMapYaml(pki_.caPem()), policyYaml(whole), policyYaml(port)}));
    ASSERT_TRUE(eventually([&] { return gatewayProgrammed(); }));
    EXPECT_EQ(echoOnce("127.0.0.1:" + std::to_string(webPort), "web"), "web");
    EXPECT_EQ(echoOnce("127.0.0.1:" + std::to_string(adminPort), "admin"), "admin");
    ASSERT_TRUE(web->waitForObservations(1, 5s));
    ASSERT_TRUE(admin->waitForObservations(1, 5s));
    EXPECT_EQ(web->observations().front().sni, "whole.example.com");
    EXPECT_EQ(admin->observations().front().sni, "admin.example.com");
}

// A Service numbering an SCTP port like its TCP one: the Route to that number dials the TCP
// port, which the policy on its name governs. The backend is a raw socket, so what arrives is
// seen as it is on the wire: a TLS ClientHello, never the client's bytes.
TEST_F(DataplaneE2eTest, PolicyOnTheTcpPortSharingItsNumberWithAnSctpPortIsHonoured) {
    std::uint16_t backendPort = 0;
    UniqueFd backend = listenOnLoopback(backendPort);
    startDaemon();
    const std::uint16_t port = freePort();
    PolicySpec p;
    p.sectionName = "https";
    apply(join({gatewayYaml({{"tcp", port, "TCP"}}), routeYaml("TCPRoute", "t", "tcp", "svc", 443),
                "apiVersion: v1\nkind: Service\nmetadata:\n  name: svc\nspec:\n  ports:\n"
                "  - name: other\n    port: 443\n    protocol: SCTP\n"
                "  - name: https\n    port: 443\n    protocol: TCP\n",
                // Both names at the one backend: a wrong choice shows as plaintext there.
                sliceYaml("svc-1", "svc", {{"other", backendPort}, {"https", backendPort}}),
                caConfigMapYaml(pki_.caPem()), policyYaml(p)}));
    ASSERT_TRUE(eventually([&] { return gatewayProgrammed(); }));
    const std::string secret = "plaintext that must only travel inside TLS";
    UniqueFd client = dial("127.0.0.1:" + std::to_string(port));
    ASSERT_TRUE(sendAll(client.get(), secret));
    timeval timeout{5, 0};
    ::setsockopt(backend.get(), SOL_SOCKET, SO_RCVTIMEO, &timeout, sizeof(timeout));
    UniqueFd conn(::accept4(backend.get(), nullptr, nullptr, SOCK_CLOEXEC));
    ASSERT_TRUE(conn.valid()) << "lastmiled never dialled the TCP port";
    ::setsockopt(conn.get(), SOL_SOCKET, SO_RCVTIMEO, &timeout, sizeof(timeout));
    // The record header and the handshake type: 0x16 (handshake), 0x03 (TLS), then after
    // the length, 0x01 (ClientHello).
    const std::string hello = readExactly(conn.get(), 6);
    ASSERT_EQ(hello.size(), 6u);
    EXPECT_EQ(static_cast<unsigned char>(hello[0]), 0x16);
    EXPECT_EQ(static_cast<unsigned char>(hello[1]), 0x03);
    EXPECT_EQ(static_cast<unsigned char>(hello[5]), 0x01);
    // Nothing answers the handshake; lastmiled gives up after handshakeTimeout and closes.
    const std::string rest = hello + readToEnd(conn.get()).data;
    EXPECT_EQ(rest.find(secret), std::string::npos) << "the client's bytes reached the backend";
}

// ---- Live changes.

TEST_F(DataplaneE2eTest, EmptiedCaConfigMapFailsNewConnectionsClosedAndClosesTheOpenOnes) {
    auto backend = echoBackend();
    startDaemon();
    auto l = serveWithPolicy(*backend, {});
    UniqueFd longLived = dial(l.tcp);
    ASSERT_TRUE(sendAll(longLived.get(), "before"));
    ASSERT_EQ(readExactly(longLived.get(), 6), "before");

    apply(caConfigMapYaml(""));
    const std::string refused = awaitHttpStatus(l.http, "HTTP/1.1 503 Service Unavailable");
    EXPECT_EQ(statusLine(refused), "HTTP/1.1 503 Service Unavailable") << refused;
    const auto acceptedWhileEmpty = backend->acceptedConnections();
    auto again = httpGet(l.http);
    EXPECT_EQ(statusLine(again.data), "HTTP/1.1 503 Service Unavailable") << again.data;
    EXPECT_NE(body(again.data).find("backend-ca"), std::string::npos)
        << "names the bad ref: " << again.data;
    expectClosedWithoutData(l.tcp);
    EXPECT_EQ(backend->acceptedConnections(), acceptedWhileEmpty)
        << "the backend must receive nothing";

    EXPECT_TRUE(readToEnd(longLived.get()).ended)
        << "a session whose backend now fails closed is closed";
    EXPECT_EQ(metric("lastmile_connections_closed_total{reason=\"policy_change\"}"), 1);

    apply(caConfigMapYaml(pki_.caPem()));
    EXPECT_TRUE(eventually([&] { return echoOnce(l.tcp, "restored") == "restored"; }, 5s));
}

TEST_F(DataplaneE2eTest, PlaintextConnectionOpenBeforeAPolicyIsClosedWhenThePolicyLands) {
    TlsBackendOptions o;
    o.plain = true;
    auto backend = startBackend(o);
    startDaemon();
    auto l = serve({backend->port()});
    UniqueFd open = dial(l.tcp);
    ASSERT_TRUE(sendAll(open.get(), "plain"));
    ASSERT_EQ(readExactly(open.get(), 5), "plain");

    apply(join({caConfigMapYaml(pki_.caPem()), policyYaml({})}));
    const auto r = readToEnd(open.get());
    EXPECT_TRUE(r.ended) << "still forwarding plaintext to a backend a policy now covers";
    EXPECT_EQ(r.data, "");
    EXPECT_EQ(metric("lastmile_connections_closed_total{reason=\"policy_change\"}"), 1);
}

TEST_F(DataplaneE2eTest, CaRotationToACaThatDoesNotSignTheBackendClosesTheOpenSession) {
    TestPki other;
    auto backend = echoBackend();
    startDaemon();
    auto l = serveWithPolicy(*backend, {});
    UniqueFd open = dial(l.tcp);
    ASSERT_TRUE(sendAll(open.get(), "before"));
    ASSERT_EQ(readExactly(open.get(), 6), "before");
    ASSERT_TRUE(eventually([&] { return backend->totalBytesReceived() == 6; }));
    const auto received = backend->totalBytesReceived();

    apply(caConfigMapYaml(other.caPem()));
    const auto r = readToEnd(open.get());
    EXPECT_TRUE(r.ended) << "a session the new CA cannot verify keeps running";
    EXPECT_EQ(r.data, "");
    EXPECT_EQ(metric("lastmile_connections_closed_total{reason=\"policy_change\"}"), 1);
    sendAll(open.get(), "after");
    EXPECT_EQ(backend->totalBytesReceived(), received) << "nothing reached the backend after";
}

TEST_F(DataplaneE2eTest, CaRotationThatStillVerifiesTheBackendKeepsTheOpenSessionsFlowing) {
    TestPki next;
    auto backend = echoBackend();
    startDaemon();
    PolicySpec p;
    p.options = {{"offload", "userspace"}};
    auto l = serveWithPolicy(*backend, p);
    UniqueFd open = dial(l.tcp);
    ASSERT_TRUE(sendAll(open.get(), "before"));
    ASSERT_EQ(readExactly(open.get(), 6), "before");
    UniqueFd resumed = dial(l.tcp);  // a resumed session: its peer chain comes from the session
    ASSERT_TRUE(sendAll(resumed.get(), "again"));
    ASSERT_EQ(readExactly(resumed.get(), 5), "again");

    apply(caConfigMapYaml(pki_.caPem() + next.caPem()));  // the old CA and the next one
    ASSERT_TRUE(eventually([&] {
        return metricsText().find(next.caName()) != std::string::npos;  // published
    }));
    ASSERT_TRUE(sendAll(open.get(), "after"));
    EXPECT_EQ(readExactly(open.get(), 5), "after");
    ASSERT_TRUE(sendAll(resumed.get(), "still"));
    EXPECT_EQ(readExactly(resumed.get(), 5), "still");
    EXPECT_EQ(metric("lastmile_connections_closed_total{reason=\"policy_change\"}"), 0);

    // And the next rotation, to the new CA alone, does close them.
    apply(caConfigMapYaml(next.caPem()));
    EXPECT_TRUE(readToEnd(open.get()).ended);
    EXPECT_TRUE(readToEnd(resumed.get()).ended);
    EXPECT_EQ(metric("lastmile_connections_closed_total{reason=\"policy_change\"}"), 2);
}

TEST_F(DataplaneE2eTest, NewPolicyHostnameAppliesToNewConnectionsWithinOneSecond) {
    auto backend = echoBackend({"first.example.com", "second.example.com"});
    startDaemon();
    PolicySpec p;
    p.hostname = "first.example.com";
    auto l = serveWithPolicy(*backend, p);
    ASSERT_EQ(echoOnce(l.tcp, "one"), "one");
    p.hostname = "second.example.com";
    apply(policyYaml(p));
    const auto applied = SteadyClock::now();
    ASSERT_TRUE(eventually(
        [&] {
            const auto seen = backend->observations().size();
            if (echoOnce(l.tcp, "two") != "two" || !backend->waitForObservations(seen + 1, 2s)) {
                return false;
            }
            return backend->observations().back().sni == "second.example.com";
        },
        5s));
    const auto took =
        std::chrono::duration_cast<std::chrono::milliseconds>(SteadyClock::now() - applied);
    EXPECT_LT(took, 1s) << "took " << took.count() << " ms";
}

// ---- Sessions, balancing, limits, reload.

TEST_F(DataplaneE2eTest, SecondConnectionResumesTheBackendSession) {
    auto backend = echoBackend();
    startDaemon();
    auto l = serveWithPolicy(*backend, {});
    ASSERT_EQ(echoOnce(l.tcp, "first"), "first");
    ASSERT_EQ(echoOnce(l.tcp, "second"), "second");
    ASSERT_TRUE(backend->waitForObservations(2, 5s));
    const auto obs = backend->observations();
    EXPECT_FALSE(obs[0].resumed);
    EXPECT_TRUE(obs[1].resumed);
    EXPECT_GE(metric("lastmile_handshakes_resumed_total"), 1);
}

TEST_F(DataplaneE2eTest, SessionResumptionFalseAlwaysHandshakesInFull) {
    auto backend = echoBackend();
    startDaemon();
    PolicySpec p;
    p.options = {{"session-resumption", "false"}};
    auto l = serveWithPolicy(*backend, p);
    for (int i = 0; i < 3; ++i) {
        ASSERT_EQ(echoOnce(l.tcp, "full"), "full");
    }
    ASSERT_TRUE(backend->waitForObservations(3, 5s));
    for (const auto& o : backend->observations()) {
        EXPECT_FALSE(o.resumed);
    }
    EXPECT_EQ(metric("lastmile_handshakes_resumed_total"), 0);
}

// A cached session was verified against the old trust; resuming it after a rotation
// would skip the new verification.
TEST_F(DataplaneE2eTest, RotatedCaIsEnforcedEvenWhenAResumableSessionExists) {
    TestPki other;
    auto backend = echoBackend();
    startDaemon();
    auto l = serveWithPolicy(*backend, {});
    ASSERT_EQ(echoOnce(l.tcp, "trusted"), "trusted");
    ASSERT_EQ(echoOnce(l.tcp, "resumed"), "resumed");
    apply(caConfigMapYaml(other.caPem()));
    const std::string r = awaitHttpStatus(l.http, "HTTP/1.1 502 Bad Gateway");
    EXPECT_EQ(statusLine(r), "HTTP/1.1 502 Bad Gateway") << r;
    const auto received = backend->totalBytesReceived();
    expectClosedWithoutData(l.tcp);
    EXPECT_EQ(backend->totalBytesReceived(), received);
}

TEST_F(DataplaneE2eTest, ChangedHostnameIsVerifiedEvenWhenAResumableSessionExists) {
    auto backend = echoBackend({"first.example.com"});
    startDaemon();
    PolicySpec p;
    p.hostname = "first.example.com";
    auto l = serveWithPolicy(*backend, p);
    ASSERT_EQ(echoOnce(l.tcp, "first"), "first");
    ASSERT_EQ(echoOnce(l.tcp, "again"), "again");
    p.hostname = "second.example.com";
    apply(policyYaml(p));
    const std::string r = awaitHttpStatus(l.http, "HTTP/1.1 502 Bad Gateway");
    EXPECT_EQ(statusLine(r), "HTTP/1.1 502 Bad Gateway") << r;
    EXPECT_NE(body(r).find("second.example.com"), std::string::npos) << r;
}

TEST_F(DataplaneE2eTest, HttpListenerForwardsRequestsToTheTlsBackend) {
    auto backend = startBackend(backendOptions(pki_.issueServer(kHostname), BackendMode::Http));
    startDaemon();
    auto l = serveWithPolicy(*backend, {});
    auto r = httpGet(l.http);
    EXPECT_TRUE(r.ended);
    EXPECT_EQ(statusLine(r.data), "HTTP/1.1 200 OK") << r.data;
    EXPECT_EQ(body(r.data), "ok\n");
    ASSERT_TRUE(backend->waitForObservations(1, 5s));
    EXPECT_EQ(backend->observations().front().sni, kHostname);
}

TEST_F(DataplaneE2eTest, ConnectionsAreSpreadOverBothEndpoints) {
    auto a = echoBackend();
    auto b = echoBackend();
    startDaemon();
    auto l = serve({a->port(), b->port()}, {caConfigMapYaml(pki_.caPem()), policyYaml({})});
    for (int i = 0; i < 10; ++i) {
        ASSERT_EQ(echoOnce(l.tcp, "rr"), "rr");
    }
    // Round robin per worker: whichever worker takes a connection, neither endpoint starves.
    EXPECT_GE(a->acceptedConnections(), 3u);
    EXPECT_GE(b->acceptedConnections(), 3u);
    EXPECT_EQ(a->acceptedConnections() + b->acceptedConnections(), 10u);
}

TEST_F(DataplaneE2eTest, ConnectionsBeyondMaxConnectionsAreClosed) {
    auto backend = echoBackend();
    startDaemon({.extraConfig = "maxConnections: 2\n"});
    auto l = serveWithPolicy(*backend, {});
    UniqueFd first = dial(l.tcp);
    UniqueFd second = dial(l.tcp);
    ASSERT_TRUE(sendAll(first.get(), "1") && sendAll(second.get(), "2"));
    ASSERT_EQ(readExactly(first.get(), 1), "1");
    ASSERT_EQ(readExactly(second.get(), 1), "2");
    expectClosedWithoutData(l.tcp);
    EXPECT_GE(metric("lastmile_failures_total{reason=\"connection_limit\"}"), 1);
    first.reset();
    EXPECT_TRUE(eventually([&] { return echoOnce(l.tcp, "room again") == "room again"; }, 5s));
}

TEST_F(DataplaneE2eTest, SighupReappliesTheManifestsDirectory) {
    auto backend = echoBackend({"first.example.com", "second.example.com"});
    test::TempDir manifests;
    Listeners l;
    PolicySpec p;
    p.hostname = "first.example.com";
    manifests.write("10-topology.yaml",
                    topology({backend->port()}, {caConfigMapYaml(pki_.caPem())}, "", l));
    manifests.write("20-policy.yaml", policyYaml(p));
    startDaemon({.extraArgs = {"--manifests", manifests.path()}});
    ASSERT_TRUE(eventually([&] { return gatewayProgrammed(); }));
    ASSERT_EQ(echoOnce(l.tcp, "before"), "before");
    p.hostname = "second.example.com";
    manifests.write("20-policy.yaml", policyYaml(p));
    daemon_->signal(SIGHUP);
    notify_->waitFor("READY=1");
    ASSERT_EQ(echoOnce(l.tcp, "after"), "after");
    ASSERT_TRUE(backend->waitForObservations(2, 5s));
    const auto obs = backend->observations();
    EXPECT_EQ(obs.front().sni, "first.example.com");
    EXPECT_EQ(obs.back().sni, "second.example.com");
}

TEST_F(DataplaneE2eTest, WarmPoolConnectionsOfARotatedCaAreNeverHandedOut) {
    TestPki other;
    auto backend = echoBackend();
    startDaemon();
    PolicySpec p;
    p.options = {{"warm-pool", "2"}};
    auto l = serveWithPolicy(*backend, p);
    ASSERT_TRUE(eventually([&] { return metric("lastmile_warm_pool_connections") >= 2; }));
    apply(caConfigMapYaml(other.caPem()));
    for (int i = 0; i < 4; ++i) {
        auto r = httpGet(l.http, 3);
        EXPECT_EQ(statusLine(r.data), "HTTP/1.1 502 Bad Gateway")
            << "attempt " << i << ": " << r.data;
    }
    EXPECT_EQ(backend->totalBytesReceived(), 0u);
}

TEST_F(DataplaneE2eTest, IdleConnectionIsClosedAfterTheIdleTimeout) {
    auto backend = echoBackend();
    startDaemon({.idleTimeout = "1s"});
    auto l = serveWithPolicy(*backend, {});
    UniqueFd fd = dial(l.tcp);
    ASSERT_TRUE(sendAll(fd.get(), "then silence"));
    ASSERT_EQ(readExactly(fd.get(), 12), "then silence");
    const auto start = SteadyClock::now();
    auto r = readToEnd(fd.get());
    const auto took = SteadyClock::now() - start;
    EXPECT_TRUE(r.ended);
    EXPECT_GE(took, 800ms);
    EXPECT_LT(took, 5s);
    EXPECT_GE(metric("lastmile_failures_total{reason=\"idle_timeout\"}"), 1);
}

TEST_F(DataplaneE2eTest, ClientsHangingUpMidHandshakeLeaveNoConnectionOrDescriptorBehind) {
    // A backend slow to finish handshakes is not needed: 200 clients that close at once
    // race every stage of their connection (connect, handshake, first bytes).
    auto backend = echoBackend();
    startDaemon();
    auto l = serveWithPolicy(*backend, {});
    ASSERT_EQ(echoOnce(l.tcp, "warm up"), "warm up");
    ASSERT_TRUE(eventually([&] { return metric("lastmile_connections_active") == 0; }));
    const auto fdsBefore = countFds(daemon_->pid());
    for (int i = 0; i < 200; ++i) {
        UniqueFd fd = dial(l.tcp);
        if (i % 2 == 0) {
            sendAll(fd.get(), "bye");
        }
    }
    EXPECT_TRUE(eventually([&] { return metric("lastmile_connections_active") == 0; }))
        << metric("lastmile_connections_active");
    EXPECT_TRUE(eventually([&] { return countFds(daemon_->pid()) <= fdsBefore; }))
        << countFds(daemon_->pid()) << " fds, " << fdsBefore << " before";
    EXPECT_EQ(echoOnce(l.tcp, "still fine"), "still fine");
}

TEST_F(DataplaneE2eTest, SigtermClosesWhatIsStillOpenAfterTheDrainTimeoutAndExitsZero) {
    auto backend = echoBackend();
    startDaemon({.drainTimeout = "1s"});
    auto l = serveWithPolicy(*backend, {});
    UniqueFd fd = dial(l.tcp);
    ASSERT_TRUE(sendAll(fd.get(), "idle"));
    ASSERT_EQ(readExactly(fd.get(), 4), "idle");
    const auto start = SteadyClock::now();
    daemon_->signal(SIGTERM);
    EXPECT_EQ(daemon_->wait(10s), 0) << daemon_->stderrText();
    EXPECT_LT(SteadyClock::now() - start, 5s);
    auto r = readToEnd(fd.get());
    EXPECT_TRUE(r.ended) << "the client is told the connection is over";
}

TEST_F(DataplaneE2eTest, BackendRejectingTheClientCertificateAfterTheHandshakeGets502OnHttp) {
    // In TLS 1.3 the server judges the client certificate after the client's handshake is
    // done, so the refusal arrives as an alert where the first response was expected.
    auto o = backendOptions(pki_.issueServer(kHostname), BackendMode::Http);
    o.clientCaPem = pki_.caPem();
    o.requireClientCert = true;
    auto backend = startBackend(o);
    startDaemon();
    auto l = serveWithPolicy(*backend, {});
    auto r = httpGet(l.http, 5);
    EXPECT_TRUE(r.ended);
    EXPECT_EQ(statusLine(r.data), "HTTP/1.1 502 Bad Gateway") << "got: " << r.data;
    EXPECT_NE(body(r.data).find("certificate"), std::string::npos) << r.data;
    if (HasFailure()) {
        std::cerr << metricsText();
    }
}

TEST_F(DataplaneE2eTest, ListenersFollowTheGatewayWhenItsPortChanges) {
    auto backend = echoBackend();
    startDaemon();
    auto l = serveWithPolicy(*backend, {});
    ASSERT_EQ(echoOnce(l.tcp, "old port"), "old port");
    const std::uint16_t httpPort = static_cast<std::uint16_t>(std::stoi(l.http.substr(10)));
    std::string current = l.tcp;
    // Many moves: each retires a listener whose accept is still in flight (a race that
    // crashed lastmiled in about one move of fifteen).
    for (int move = 0; move < 30; ++move) {
        const std::uint16_t next = freePort();
        apply(gatewayYaml({{"tcp", next, "TCP"}, {"http", httpPort, "HTTP"}}));
        const std::string nextAddress = "127.0.0.1:" + std::to_string(next);
        EXPECT_TRUE(eventually([&] {
            try {
                return echoOnce(nextAddress, "new port") == "new port";
            } catch (const std::exception&) {
                return false;
            }
        })) << "move "
            << move;
        EXPECT_TRUE(eventually([&] {
            try {
                dial(current);
                return false;
            } catch (const std::exception&) {
                return true;  // connection refused: the old port is closed
            }
        })) << "move "
            << move;
        current = nextAddress;
    }
    EXPECT_EQ(echoOnce(l.http.substr(0, 10) + std::to_string(httpPort), "untouched"), "untouched")
        << "the other listener kept serving";
}

TEST_F(DataplaneE2eTest, SigtermWithAFullWarmPoolExitsZeroPromptly) {
    auto backend = echoBackend();
    startDaemon();
    PolicySpec p;
    p.options = {{"warm-pool", "4"}};
    serveWithPolicy(*backend, p);
    ASSERT_TRUE(eventually([&] { return metric("lastmile_warm_pool_connections") >= 4; }));
    const auto start = SteadyClock::now();
    daemon_->signal(SIGTERM);
    EXPECT_EQ(daemon_->wait(10s), 0) << daemon_->stderrText();
    EXPECT_LT(SteadyClock::now() - start, 3s) << "pooled connections are not client connections";
    EXPECT_TRUE(backend->waitForClosed(4, 5s)) << "the pooled backend connections were closed";
}

TEST_F(DataplaneE2eTest, DeletingTheGatewayClosesItsListeners) {
    auto backend = echoBackend();
    startDaemon();
    auto l = serveWithPolicy(*backend, {});
    ASSERT_EQ(echoOnce(l.tcp, "before"), "before");
    auto r = ctl({"delete", "gateway", "edge"});
    ASSERT_EQ(r.exitCode, 0) << r.err;
    for (const auto& address : {l.tcp, l.http}) {
        EXPECT_TRUE(eventually([&] {
            try {
                dial(address);
                return false;
            } catch (const std::exception&) {
                return true;
            }
        })) << address;
    }
    EXPECT_EQ(ctl({"get", "gateways"}).exitCode, 0) << "lastmiled is still serving its API";
}

TEST_F(DataplaneE2eTest, ClientThatStopsReadingDoesNotMakeLastmiledBufferWithoutBound) {
    auto o = backendOptions(pki_.issueServer(kHostname), BackendMode::Source);
    o.sourceBytes = 0;  // streams until the client goes away
    auto backend = startBackend(o);
    startDaemon();
    auto l = serveWithPolicy(*backend, {});
    UniqueFd fd = dial(l.tcp);
    ASSERT_EQ(readExactly(fd.get(), 1 << 20).size(), 1u << 20);
    const auto rssBefore = rssKiB(daemon_->pid());
    // The client reads nothing now; whatever lastmiled holds must stay bounded. The
    // backend's send count settles once every buffer on the way is full.
    std::uint64_t sent = 0;
    auto lastChange = SteadyClock::now();
    EXPECT_TRUE(eventually(
        [&] {
            const auto now = backend->observations().front().bytesSent;
            if (now != sent) {
                sent = now;
                lastChange = SteadyClock::now();
                return false;
            }
            return sent > 0 && SteadyClock::now() - lastChange >= 300ms;
        },
        10s))
        << "the backend kept sending: nothing pushed back";
    const auto rssAfter = rssKiB(daemon_->pid());
    std::printf("stalled client: backend sent %llu bytes, lastmiled VmRSS %llu -> %llu KiB\n",
                static_cast<unsigned long long>(sent), static_cast<unsigned long long>(rssBefore),
                static_cast<unsigned long long>(rssAfter));
    EXPECT_LE(rssAfter, rssBefore + 16 * 1024);
    // And the stream resumes intact where it stopped.
    std::string more = readExactly(fd.get(), 8 << 20);
    ASSERT_EQ(more.size(), 8u << 20);
    EXPECT_TRUE(test::matchesSourcePattern(
        1 << 20, {reinterpret_cast<const std::uint8_t*>(more.data()), more.size()}));
}

TEST_F(DataplaneE2eTest, ListenerWhoseRouteIsDeletedAnswers503NoBackend) {
    auto backend = echoBackend();
    startDaemon();
    auto l = serveWithPolicy(*backend, {});
    ASSERT_EQ(echoOnce(l.tcp, "routed"), "routed");
    auto r = ctl({"delete", "httproute", "http-route"});
    ASSERT_EQ(r.exitCode, 0) << r.err;
    const std::string answer = awaitHttpStatus(l.http, "HTTP/1.1 503 Service Unavailable");
    EXPECT_EQ(statusLine(answer), "HTTP/1.1 503 Service Unavailable") << answer;
    EXPECT_NE(body(answer).find("no backend"), std::string::npos) << answer;
}

TEST_F(DataplaneE2eTest, ListenerPortTakenByAnotherProcessIsNotProgrammedAndSaysWhy) {
    std::uint16_t port = 0;
    UniqueFd squatter = listenOnLoopback(port);
    startDaemon();
    apply(gatewayYaml({{"tcp", port, "TCP"}}));
    json gw;
    json programmed;
    ASSERT_TRUE(eventually([&] {
        gw = getJson("gateway", "edge");
        if (!gw.is_object() || !gw.contains("status")) {
            return false;
        }
        for (const auto& c : gw["status"].value("conditions", json::array())) {
            if (c.value("type", "") == "Programmed") {
                programmed = c;
            }
        }
        return programmed.is_object();
    }));
    EXPECT_EQ(programmed.value("status", ""), "False") << gw.dump(2);
    EXPECT_NE(programmed.value("message", "").find("in use"), std::string::npos) << gw.dump(2);
}

// Project A's wildcard listener on P and project B's later 127.0.0.1 on P: B is refused
// (it would take A's clients' connections to 127.0.0.1:P) without naming A, and a client of
// 127.0.0.1:P still reaches A's backend, on every connection.
TEST_F(DataplaneE2eTest, AnotherProjectsSpecificAddressCannotCaptureAWildcardListener) {
    TlsBackendOptions o;
    o.plain = true;
    auto backendA = startBackend(o);
    auto backendB = startBackend(o);
    startDaemon();
    const std::uint16_t port = freePort();
    auto topologyFor = [&](const std::string& gateway, const std::string& address,
                           std::uint16_t backendPort) {
        return join({"apiVersion: gateway.networking.k8s.io/v1\nkind: Gateway\nmetadata:\n"
                     "  name: " + gateway + "\nspec:\n  gatewayClassName: lastmile\n"
                     "  addresses:\n  - type: IPAddress\n    value: " + address + "\n"
                     "  listeners:\n  - name: tcp\n    port: " + std::to_string(port) +
                         "\n    protocol: TCP\n",
                     "apiVersion: gateway.networking.k8s.io/v1alpha2\nkind: TCPRoute\nmetadata:\n"
                     "  name: r\nspec:\n  parentRefs:\n  - name: " + gateway +
                         "\n  rules:\n  - backendRefs:\n    - name: svc\n      port: 443\n",
                     serviceYaml("svc", {{"https", 443}}),
                     sliceYaml("svc-1", "svc", {{"https", backendPort}})});
    };
    apply(topologyFor("tenant-a-gw", "0.0.0.0", backendA->port()), "tenant-a");
    auto programmed = [&](const std::string& project, const std::string& gateway) {
        json gw = getJson("gateway", gateway, project);
        const json status = gw.value("status", json::object());
        for (const auto& c : status.value("conditions", json::array())) {
            if (c.value("type", "") == "Programmed") {
                return c;
            }
        }
        return json();
    };
    ASSERT_TRUE(eventually(
        [&] { return programmed("tenant-a", "tenant-a-gw").value("status", "") == "True"; }));
    apply(topologyFor("edge", "127.0.0.1", backendB->port()), "tenant-b");
    json refused;
    ASSERT_TRUE(eventually([&] {
        refused = programmed("tenant-b", "edge");
        return refused.value("reason", "") == "AddressNotUsable";
    })) << refused.dump(2);
    EXPECT_EQ(refused.value("status", ""), "False");
    const std::string message = refused.value("message", "");
    EXPECT_NE(message.find("already claimed by another Gateway"), std::string::npos) << message;
    EXPECT_EQ(message.find("tenant-a"), std::string::npos) << message;
    for (int i = 0; i < 8; ++i) {
        EXPECT_EQ(echoOnce("127.0.0.1:" + std::to_string(port), "for a"), "for a") << i;
    }
    EXPECT_EQ(backendB->observations().size(), 0u) << "project B captured project A's clients";
    EXPECT_GE(backendA->observations().size(), 8u);
    EXPECT_EQ(programmed("tenant-a", "tenant-a-gw").value("status", ""), "True");
}

TEST_F(DataplaneE2eTest, PolicyChurnWhileTrafficFlowsDropsNoConnection) {
    auto o = backendOptions(pki_.issueServer({"first.example.com", "second.example.com"}));
    o.workers = 2;
    auto backend = startBackend(o);
    startDaemon();
    PolicySpec p;
    p.hostname = "first.example.com";
    auto l = serveWithPolicy(*backend, p);
    std::atomic<bool> stop{false};
    std::atomic<int> good{0};
    std::atomic<int> bad{0};
    std::vector<std::thread> clients;
    for (int t = 0; t < 4; ++t) {
        clients.emplace_back([&] {
            while (!stop) {
                try {
                    (echoOnce(l.tcp, "churn") == "churn" ? good : bad)++;
                } catch (const std::exception&) {
                    bad++;
                }
            }
        });
    }
    for (int i = 0; i < 20; ++i) {
        p.hostname = i % 2 == 0 ? "second.example.com" : "first.example.com";
        p.options = {{"warm-pool", std::to_string(i % 3)}};
        apply(policyYaml(p));
    }
    stop = true;
    for (auto& t : clients) {
        t.join();
    }
    EXPECT_GT(good.load(), 0);
    EXPECT_EQ(bad.load(), 0) << good.load() << " good";
    EXPECT_EQ(echoOnce(l.tcp, "after"), "after");
}

// ---- Streams.

// Streams `total` pattern bytes from a writer thread (then shuts the write side if asked)
// and checks what comes back against the same pattern; returns the bytes verified.
std::uint64_t streamPattern(int fd, std::uint64_t total, bool shutdownAfter, bool* ended) {
    std::atomic<bool> writeOk{true};
    std::thread writer([&] {
        std::vector<std::uint8_t> chunk(256 * 1024);
        for (std::uint64_t off = 0; off < total;) {
            const std::size_t n =
                static_cast<std::size_t>(std::min<std::uint64_t>(chunk.size(), total - off));
            for (std::size_t i = 0; i < n; ++i) {
                chunk[i] = test::sourcePatternByte(off + i);
            }
            if (!sendAll(fd, std::string_view(reinterpret_cast<const char*>(chunk.data()), n))) {
                writeOk = false;
                return;
            }
            off += n;
        }
        if (shutdownAfter) {
            ::shutdown(fd, SHUT_WR);
        }
    });
    std::uint64_t verified = 0;
    std::vector<std::uint8_t> buf(256 * 1024);
    *ended = false;
    for (;;) {
        const std::size_t want =
            shutdownAfter
                ? buf.size()
                : static_cast<std::size_t>(std::min<std::uint64_t>(buf.size(), total - verified));
        if (want == 0) {
            break;
        }
        const ssize_t n = ::recv(fd, buf.data(), want, 0);
        if (n <= 0) {
            *ended = n == 0;
            break;
        }
        if (!test::matchesSourcePattern(verified, {buf.data(), static_cast<std::size_t>(n)})) {
            ADD_FAILURE() << "corrupted stream at offset " << verified;
            break;
        }
        verified += static_cast<std::uint64_t>(n);
    }
    writer.join();
    EXPECT_TRUE(writeOk.load());
    return verified;
}

TEST_F(DataplaneE2eTest, SixtyFourMibEachWayArriveIntact) {
    auto backend = echoBackend();
    startDaemon();
    auto l = serveWithPolicy(*backend, {});
    constexpr std::uint64_t kTotal = 64ull << 20;
    UniqueFd fd = dial(l.tcp);
    bool ended = false;
    EXPECT_EQ(streamPattern(fd.get(), kTotal, false, &ended), kTotal);
    // The backend counts what it received after echoing it: the echo can arrive first.
    EXPECT_TRUE(eventually([&] { return backend->totalBytesReceived() == kTotal; }))
        << backend->totalBytesReceived();
}

TEST_F(DataplaneE2eTest, ClientHalfCloseGetsTheFullEchoThenEof) {
    auto backend = echoBackend();
    startDaemon();
    auto l = serveWithPolicy(*backend, {});
    constexpr std::uint64_t kTotal = 4ull << 20;
    UniqueFd fd = dial(l.tcp);
    bool ended = false;
    EXPECT_EQ(streamPattern(fd.get(), kTotal, true, &ended), kTotal);
    EXPECT_TRUE(ended) << "EOF after the echo, not a timeout";
    ASSERT_TRUE(backend->waitForClosed(1, 5s));
    EXPECT_TRUE(backend->observations().front().closeNotifyReceived)
        << "lastmiled ends TLS with close_notify";
}

TEST_F(DataplaneE2eTest, BackendClosingFirstGivesTheClientEofAfterAllBytes) {
    constexpr std::uint64_t kTotal = 4ull << 20;
    auto o = backendOptions(pki_.issueServer(kHostname), BackendMode::Source);
    o.sourceBytes = kTotal;
    auto backend = startBackend(o);
    startDaemon();
    auto l = serveWithPolicy(*backend, {});
    UniqueFd fd = dial(l.tcp);
    auto r = readToEnd(fd.get());
    EXPECT_TRUE(r.ended);
    ASSERT_EQ(r.data.size(), kTotal);
    EXPECT_TRUE(test::matchesSourcePattern(
        0, {reinterpret_cast<const std::uint8_t*>(r.data.data()), r.data.size()}));
    // The client's write side still works until it closes: the half-close went one way only.
    EXPECT_TRUE(sendAll(fd.get(), "late")) << "client half still open";
}

TEST_F(DataplaneE2eTest, BackendFinWithoutCloseNotifyResetsTheClientAfterAllBytes) {
    constexpr std::uint64_t kTotal = 1ull << 20;
    auto o = backendOptions(pki_.issueServer(kHostname), BackendMode::Source);
    o.sourceBytes = kTotal;
    o.closeNotify = false;
    auto backend = startBackend(o);
    startDaemon();
    PolicySpec p;
    p.options = {{"offload", "userspace"}};
    auto l = serveWithPolicy(*backend, p);
    UniqueFd fd = dial(l.tcp);
    const ReadResult r = readToEnd(fd.get());
    EXPECT_TRUE(r.ended);
    EXPECT_EQ(r.error, ECONNRESET) << "a cut stream must not look complete (0: a clean EOF)";
    ASSERT_EQ(r.data.size(), kTotal) << "every byte before the cut arrives";
    EXPECT_TRUE(test::matchesSourcePattern(
        0, {reinterpret_cast<const std::uint8_t*>(r.data.data()), r.data.size()}));
    EXPECT_EQ(metric("lastmile_backend_truncations_total"), 1);
    EXPECT_EQ(metric("lastmile_failures_total{reason=\"truncated\"}"), 1);
}

// ---- Budgets.

// `streams` connections to `address` at once, each echoing `total` pattern bytes; how many
// came back intact.
int streamConcurrently(const std::string& address, int streams, std::uint64_t total) {
    std::vector<std::thread> threads;
    std::atomic<int> intact{0};
    for (int i = 0; i < streams; ++i) {
        threads.emplace_back([&] {
            UniqueFd fd = dial(address, nullptr, 30);
            bool ended = false;
            if (streamPattern(fd.get(), total, false, &ended) == total) {
                ++intact;
            }
        });
    }
    for (auto& t : threads) {
        t.join();
    }
    return intact;
}

// One buffer (ChunkPool's chunk): 256 KiB of data plus room for sixteen records' framing.
constexpr double kBufferBytes = 256 * 1024 + 16 * 256 + 16;

TEST_F(DataplaneE2eTest, TricklingClientsPinNoBuffers) {
    auto backend = echoBackend();
    startDaemon();
    auto l = serveWithPolicy(*backend, {});
    constexpr int kClients = 32;
    std::vector<UniqueFd> fds;
    for (int i = 0; i < kClients; ++i) {
        fds.push_back(dial(l.tcp));
        ASSERT_TRUE(sendAll(fds.back().get(), "x"));
        ASSERT_EQ(readExactly(fds.back().get(), 1), "x");
    }
    // A byte every half second each: more often than a quiet side parks (1 s), so only
    // parking after a small receive keeps these from holding two buffers each.
    double most = 0;
    for (int round = 0; round < 8; ++round) {
        for (auto& fd : fds) {
            ASSERT_TRUE(sendAll(fd.get(), "y"));
            ASSERT_EQ(readExactly(fd.get(), 1), "y") << "round " << round;
        }
        std::this_thread::sleep_for(500ms);
        if (round >= 4) {  // the handshakes' buffers have been given back by now
            most = std::max(most, metric("lastmile_buffer_memory_bytes"));
        }
    }
    std::printf("%d trickling clients: buffer memory at most %.0f bytes\n", kClients, most);
    EXPECT_GE(most, 0) << "the gauge is exported";
    // What one exchange uses (two receive and two record buffers), kept for reuse by each
    // of the two workers; without parking it is two per client, 64 here.
    EXPECT_LE(most, 12 * kBufferBytes) << "trickling clients pin buffers: " << most / kBufferBytes;
}

// Streams that together want far more buffers than the budget wait for memory and all
// finish intact; with a plaintext backend every buffer is a receive buffer, so the budget
// is a hard ceiling.
TEST_F(DataplaneE2eTest, BufferBudgetPausesReceivesAndEveryStreamFinishesIntact) {
    TlsBackendOptions o;
    o.plain = true;
    o.workers = 2;
    auto backend = startBackend(o);
    startDaemon({.extraConfig = "maxBufferMemory: 2Mi\n"});
    auto l = serve({backend->port()});
    ASSERT_EQ(metric("lastmile_buffer_memory_limit_bytes"), 2 << 20);
    constexpr int kStreams = 12;  // two receive buffers each: 24 wanted, 7 fit
    constexpr std::uint64_t kTotal = 4ull << 20;
    std::atomic<bool> done{false};
    std::atomic<double> most{0};
    std::thread sampler([&] {
        while (!done) {
            most = std::max(most.load(), metric("lastmile_buffer_memory_bytes"));
            std::this_thread::sleep_for(20ms);
        }
    });
    const int intact = streamConcurrently(l.tcp, kStreams, kTotal);
    done = true;
    sampler.join();
    EXPECT_EQ(intact, kStreams);
    std::printf("buffer memory at most %.0f of %d bytes\n", most.load(), 2 << 20);
    EXPECT_GT(most, 0);
    EXPECT_LE(most, 2 << 20);
    // The clients have every byte; lastmiled closes each connection once it saw both ends.
    EXPECT_TRUE(eventually([&] { return metric("lastmile_connections_active") == 0; }))
        << metric("lastmile_connections_active") << " connection(s) still open";
}

TEST_F(DataplaneE2eTest, TlsStreamsUnderATinyBufferBudgetAllFinishIntact) {
    auto o = backendOptions(pki_.issueServer(kHostname));
    o.workers = 2;
    auto backend = startBackend(o);
    // Handshakes wait for buffer memory too: give them time while the first streams run.
    startDaemon({.timeouts = "30s", .extraConfig = "maxBufferMemory: 2Mi\n"});
    auto l = serveWithPolicy(*backend, {});
    constexpr int kStreams = 8;
    constexpr std::uint64_t kTotal = 4ull << 20;
    const int intact = streamConcurrently(l.tcp, kStreams, kTotal);
    EXPECT_EQ(intact, kStreams);
    EXPECT_EQ(metric("lastmile_failures_total{reason=\"handshake_timeout\"}"), 0);
}

TEST_F(DataplaneE2eTest, WarmPoolAndClientsShareTheBackendConnectionBudget) {
    auto backend = echoBackend();
    startDaemon({.extraConfig = "maxBackendConnections: 4\n"});
    PolicySpec p;
    p.options = {{"warm-pool", "8"}};
    auto l = serveWithPolicy(*backend, p);
    EXPECT_EQ(metric("lastmile_backend_connections_limit"), 4);
    // The warm pool takes at most half of the budget.
    ASSERT_TRUE(eventually([&] { return metric("lastmile_warm_pool_connections") == 2; }));
    std::this_thread::sleep_for(500ms);
    EXPECT_EQ(metric("lastmile_warm_pool_connections"), 2);
    EXPECT_EQ(metric("lastmile_backend_connections"), 2);
    // Clients come first: pooled connections (on whichever worker) make room for them.
    std::vector<UniqueFd> clients;
    for (int i = 0; i < 4; ++i) {
        clients.push_back(dial(l.tcp));
        ASSERT_TRUE(sendAll(clients.back().get(), "in"));
        ASSERT_EQ(readExactly(clients.back().get(), 2), "in") << "client " << i;
    }
    EXPECT_EQ(metric("lastmile_backend_connections"), 4);
    EXPECT_EQ(metric("lastmile_warm_pool_connections"), 0);
    // A fifth waits connectTimeout (1 s here) for a slot, then is refused.
    const auto refused = httpGet(l.http, 5);
    EXPECT_EQ(statusLine(refused.data), "HTTP/1.1 503 Service Unavailable") << refused.data;
    EXPECT_NE(refused.data.find("maxBackendConnections"), std::string::npos) << refused.data;
    EXPECT_EQ(metric("lastmile_failures_total{reason=\"backend_connection_limit\"}"), 1);
    clients.clear();
    EXPECT_TRUE(eventually([&] { return metric("lastmile_backend_connections") <= 2; }))
        << "closed connections give their slots back";
}

TEST_F(DataplaneE2eTest, ThousandConcurrentConnectionsAllEchoCorrectly) {
    auto o = backendOptions(pki_.issueServer(kHostname));
    o.workers = 2;
    auto backend = startBackend(o);
    // A burst of 1,000 handshakes on a shared 2-core machine takes seconds: this test is
    // about every connection being served correctly, not about handshake latency.
    startDaemon({.timeouts = "30s"});
    auto l = serveWithPolicy(*backend, {});
    constexpr int kConnections = 1000;
    std::vector<UniqueFd> fds;
    fds.reserve(kConnections);
    const auto start = SteadyClock::now();
    for (int i = 0; i < kConnections; ++i) {
        fds.push_back(dial(l.tcp, nullptr, 30));
    }
    for (int i = 0; i < kConnections; ++i) {
        ASSERT_TRUE(sendAll(fds[i].get(), "connection-" + std::to_string(i) + "\n"));
    }
    int good = 0;
    std::string firstBad;
    for (int i = 0; i < kConnections; ++i) {
        const std::string expected = "connection-" + std::to_string(i) + "\n";
        const std::string got = readExactly(fds[i].get(), expected.size());
        if (got == expected) {
            ++good;
        } else if (firstBad.empty()) {
            firstBad = "connection " + std::to_string(i) + " got \"" + got + "\" (errno " +
                       std::strerror(errno) + ")";
        }
    }
    EXPECT_EQ(good, kConnections) << firstBad << "\n" << metricsText();
    std::printf("1,000 concurrent connections echoed in %lld ms\n",
                static_cast<long long>(std::chrono::duration_cast<std::chrono::milliseconds>(
                                           SteadyClock::now() - start)
                                           .count()));
    EXPECT_TRUE(
        eventually([&] { return metric("lastmile_connections_active") == kConnections; }, 5s))
        << metric("lastmile_connections_active");
    fds.clear();
    EXPECT_TRUE(eventually([&] { return metric("lastmile_connections_active") == 0; }, 10s));
}

// ---- Warm pool.

TEST_F(DataplaneE2eTest, WarmPoolHandshakesBeforeAnyClientServesOneAndRefills) {
    auto backend = echoBackend();
    startDaemon();
    PolicySpec p;
    p.options = {{"warm-pool", "4"}};
    auto l = serveWithPolicy(*backend, p);
    ASSERT_TRUE(backend->waitForObservations(4, 10s)) << "no handshakes before the first client";
    for (const auto& o : backend->observations()) {
        EXPECT_TRUE(o.handshakeOk) << o.handshakeError;
        EXPECT_EQ(o.sni, kHostname);
    }
    double pooled = 0;
    ASSERT_TRUE(
        eventually([&] { return (pooled = metric("lastmile_warm_pool_connections")) >= 4; }, 10s))
        << pooled;
    const double hitsBefore = metric("lastmile_warm_pool_hits_total");
    const auto acceptedBefore = backend->acceptedConnections();
    EXPECT_EQ(echoOnce(l.tcp, "warm"), "warm");
    EXPECT_GT(metric("lastmile_warm_pool_hits_total"), hitsBefore);
    EXPECT_TRUE(eventually([&] { return backend->acceptedConnections() > acceptedBefore; }, 5s))
        << "the pool opened no replacement";
    EXPECT_TRUE(eventually([&] { return metric("lastmile_warm_pool_connections") >= pooled; }, 5s))
        << "the pool did not refill to " << pooled;
}

// ---- Failing closed.

TEST_F(DataplaneE2eTest, InvalidPolicyOptionGets503AndTheBackendAcceptsNothing) {
    auto backend = echoBackend();
    startDaemon();
    PolicySpec p;
    p.options = {{"min-tls-version", "1.4"}};
    auto l = serveWithPolicy(*backend, p);
    auto r = httpGet(l.http);
    EXPECT_EQ(statusLine(r.data), "HTTP/1.1 503 Service Unavailable") << r.data;
    EXPECT_NE(body(r.data).find("min-tls-version"), std::string::npos) << r.data;
    EXPECT_EQ(std::count(r.data.begin(), r.data.end(), '\n') -
                  std::count(r.data.begin(), r.data.end(), '\r'),
              1)
        << "a one-line reason: " << r.data;
    expectClosedWithoutData(l.tcp);
    EXPECT_EQ(backend->acceptedConnections(), 0u);
    EXPECT_GE(metric("lastmile_failures_total{reason=\"fail_closed\"}"), 2);
}

// Security issue item 1: a backend that offers only suites without a certificate or without
// encryption must never get a client byte, not even when a cipher-suites option tries to
// enable those suites (the policy is then Invalid and fails closed, naming the entry).
struct WeakSuiteCase {
    const char* name;
    const char* backendCiphers;            // the backend's TLS 1.2 list, at security level 0
    std::vector<const char*> optionValues;  // cipher-suites values that try to enable them
};

class WeakSuiteBackendTest : public DataplaneE2eTest,
                             public ::testing::WithParamInterface<WeakSuiteCase> {};

TEST_P(WeakSuiteBackendTest, NeverReceivesTheClientsBytes) {
    const WeakSuiteCase& c = GetParam();
    auto o = backendOptions(pki_.issueServer(kHostname));
    o.maxVersion = tls::TlsVersion::Tls12;  // TLS 1.3 has no such suites
    o.cipherList = c.backendCiphers;
    auto backend = startBackend(o);
    startDaemon();
    PolicySpec p;
    auto l = serveWithPolicy(*backend, p);
    expectClosedWithoutData(l.tcp);
    auto r = httpGet(l.http);
    EXPECT_EQ(statusLine(r.data), "HTTP/1.1 502 Bad Gateway") << r.data;
    const std::size_t refusedHandshakes = backend->acceptedConnections();

    for (const char* value : c.optionValues) {
        p.options = {{"cipher-suites", value}, {"max-tls-version", "1.2"}};
        apply(policyYaml(p));
        std::string answer;
        EXPECT_TRUE(eventually([&] {
            answer = httpGet(l.http, 2).data;
            return statusLine(answer) == "HTTP/1.1 503 Service Unavailable" &&
                   body(answer).find("\"" + std::string(value) + "\"") != std::string::npos;
        }))
            << value << ": " << answer;
        EXPECT_NE(body(answer).find("spec.options[lastmile.dev/cipher-suites]"), std::string::npos)
            << answer;
        expectClosedWithoutData(l.tcp);
    }
    EXPECT_EQ(backend->acceptedConnections(), refusedHandshakes) << "fail closed: no dial";
    EXPECT_EQ(backend->totalBytesReceived(), 0u);
    for (const auto& obs : backend->observations()) {
        EXPECT_FALSE(obs.handshakeOk) << obs.cipher;
    }
}

INSTANTIATE_TEST_SUITE_P(
    AnonymousAndNullSuites, WeakSuiteBackendTest,
    ::testing::Values(
        WeakSuiteCase{"Anonymous", "aNULL:@SECLEVEL=0",
                      {"ADH-AES256-GCM-SHA384@SECLEVEL=0", "aNULL@SECLEVEL=0", "ALL@SECLEVEL=0",
                       "ADH-AES256-GCM-SHA384", "ECDHE-ECDSA-AES128-GCM-SHA256;aNULL"}},
        WeakSuiteCase{"Null", "eNULL:@SECLEVEL=0",
                      {"ECDHE-ECDSA-NULL-SHA@SECLEVEL=0", "eNULL@SECLEVEL=0",
                       "ECDHE-ECDSA-NULL-SHA", "TLS_ECDHE_ECDSA_WITH_NULL_SHA"}}),
    [](const ::testing::TestParamInfo<WeakSuiteCase>& param) { return param.param.name; });

TEST_F(DataplaneE2eTest, BackendThatNeverAnswersTheHandshakeGets504WithinAFewSeconds) {
    // A plain TCP server whose kernel accepts connections nobody ever reads.
    UniqueFd silent(::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0));
    sockaddr_in a{};
    a.sin_family = AF_INET;
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    ASSERT_EQ(::bind(silent.get(), reinterpret_cast<sockaddr*>(&a), sizeof(a)), 0);
    ASSERT_EQ(::listen(silent.get(), 16), 0);
    socklen_t len = sizeof(a);
    ::getsockname(silent.get(), reinterpret_cast<sockaddr*>(&a), &len);
    startDaemon();
    auto l = serve({ntohs(a.sin_port)}, {caConfigMapYaml(pki_.caPem()), policyYaml({})});
    const auto start = SteadyClock::now();
    auto r = httpGet(l.http);
    const auto took = SteadyClock::now() - start;
    EXPECT_EQ(statusLine(r.data), "HTTP/1.1 504 Gateway Timeout") << r.data;
    EXPECT_LT(took, 5s);
    EXPECT_GE(took, 900ms) << "handshakeTimeout is 1s";
}

TEST_F(DataplaneE2eTest, EndpointThatRefusesIsSkipped) {
    auto backend = echoBackend();
    startDaemon();
    const std::uint16_t dead = freePort();
    auto l = serve({dead, backend->port()}, {caConfigMapYaml(pki_.caPem()), policyYaml({})});
    for (int i = 0; i < 10; ++i) {
        EXPECT_EQ(echoOnce(l.tcp, "alive-" + std::to_string(i)), "alive-" + std::to_string(i));
    }
    EXPECT_GE(metric("lastmile_endpoint_retries_total"), 1);
}

// ---- Backends lastmiled must not dial (allowedBackendNetworks, its own listeners).

// Condition `type` of a Route's first parent entry; null when absent.
json routeCondition(const json& route, const std::string& type) {
    if (!route.is_object()) {
        return json();
    }
    const json parents = route.value("status", json::object()).value("parents", json::array());
    const json conditions =
        parents.empty() ? json::array() : parents[0].value("conditions", json::array());
    for (const auto& c : conditions) {
        if (c.value("type", "") == type) {
            return c;
        }
    }
    return json();
}

TEST_F(DataplaneE2eTest, LoopbackBackendIsNeverDialledUnderTheDefaultNetworksAndTheRouteSaysWhy) {
    auto backend = echoBackend();
    DaemonSetup setup;
    setup.allowedBackendNetworks = "";  // the default: every unicast address except loopback
    startDaemon(setup);
    auto l = serve({backend->port()});
    auto r = httpGet(l.http);
    EXPECT_EQ(statusLine(r.data), "HTTP/1.1 503 Service Unavailable") << r.data;
    EXPECT_NE(body(r.data).find("endpoint 127.0.0.1 is outside allowedBackendNetworks"),
              std::string::npos)
        << r.data;
    expectClosedWithoutData(l.tcp);
    EXPECT_EQ(backend->acceptedConnections(), 0u) << "no connection may reach the backend";
    EXPECT_GE(metric("lastmile_failures_total{reason=\"backend_not_permitted\"}"), 2);
    // A refused dial opens no socket, so it must not keep a backend connection slot: each one
    // kept would use up maxBackendConnections for good.
    EXPECT_EQ(metric("lastmile_backend_connections"), 0);
    const json resolved = routeCondition(getJson("httproute", "http-route"), "ResolvedRefs");
    EXPECT_EQ(resolved.value("status", ""), "False") << resolved.dump();
    EXPECT_EQ(resolved.value("reason", ""), "BackendNotPermitted") << resolved.dump();
    EXPECT_NE(resolved.value("message", "").find("127.0.0.1"), std::string::npos)
        << resolved.dump();
}

TEST_F(DataplaneE2eTest, EndpointOnTheAdminOrAListenerAddressIsRefusedEvenWithLoopbackAllowed) {
    startDaemon();  // allowedBackendNetworks includes 127.0.0.0/8
    const auto portOf = [](const std::string& address) {
        return static_cast<std::uint16_t>(std::stoi(address.substr(address.find(':') + 1)));
    };
    const std::uint16_t adminPort = portOf(admin_);
    auto l = serve({adminPort});
    auto r = httpGet(l.http);
    EXPECT_EQ(statusLine(r.data), "HTTP/1.1 503 Service Unavailable") << r.data;
    EXPECT_NE(body(r.data).find("own listening"), std::string::npos) << r.data;
    EXPECT_EQ(body(r.data).find("lastmile_"), std::string::npos) << "metrics leaked: " << r.data;
    json resolved = routeCondition(getJson("httproute", "http-route"), "ResolvedRefs");
    EXPECT_EQ(resolved.value("reason", ""), "BackendNotPermitted") << resolved.dump();

    // The endpoint is the HTTP listener itself: lastmiled would dial into itself.
    const std::uint16_t httpPort = portOf(l.http);
    apply(sliceYaml("svc-0", "svc", {{"https", httpPort}}));
    EXPECT_TRUE(eventually([&] {
        return body(httpGet(l.http, 2).data).find("port " + std::to_string(httpPort)) !=
               std::string::npos;
    })) << httpGet(l.http).data;
    resolved = routeCondition(getJson("httproute", "http-route"), "ResolvedRefs");
    EXPECT_EQ(resolved.value("reason", ""), "BackendNotPermitted") << resolved.dump();
    EXPECT_NE(resolved.value("message", "").find("own listening"), std::string::npos)
        << resolved.dump();
    expectClosedWithoutData(l.tcp);
    EXPECT_GE(metric("lastmile_failures_total{reason=\"backend_not_permitted\"}"), 3);
}

TEST_F(DataplaneE2eTest, ExternalNameResolvingToLoopbackIsNotDialledUnderTheDefault) {
    auto backend = echoBackend();
    DaemonSetup setup;
    setup.allowedBackendNetworks = "";
    startDaemon(setup);
    auto l = serve({});
    const int port = backend->port();
    apply(join({"apiVersion: v1\nkind: Service\nmetadata:\n  name: svc\nspec:\n"
                "  type: ExternalName\n  externalName: localhost\n  ports:\n  - name: https\n"
                "    port: " + std::to_string(port) + "\n",
                routeYaml("TCPRoute", "tcp-route", "tcp", "svc", port),
                routeYaml("HTTPRoute", "http-route", "http", "svc", port)}));
    std::string answer;
    EXPECT_TRUE(eventually([&] {
        answer = httpGet(l.http, 2).data;
        return body(answer).find("outside allowedBackendNetworks") != std::string::npos;
    })) << answer;
    EXPECT_EQ(statusLine(answer), "HTTP/1.1 503 Service Unavailable") << answer;
    expectClosedWithoutData(l.tcp);
    EXPECT_EQ(backend->acceptedConnections(), 0u) << "localhost must not be dialled";
    EXPECT_GE(metric("lastmile_failures_total{reason=\"backend_not_permitted\"}"), 2);
}

// ---- Process life.

TEST_F(DataplaneE2eTest, SigtermLetsAnOpenConnectionFinishThenExitsZero) {
    auto backend = echoBackend();
    startDaemon();
    auto l = serveWithPolicy(*backend, {});
    UniqueFd fd = dial(l.tcp);
    ASSERT_TRUE(sendAll(fd.get(), "first"));
    ASSERT_EQ(readExactly(fd.get(), 5), "first");
    daemon_->signal(SIGTERM);
    // New connections stop being accepted while the open one is drained.
    EXPECT_TRUE(eventually(
        [&] {
            try {
                UniqueFd probe = dial(l.tcp);
                return false;
            } catch (const std::exception&) {
                return true;
            }
        },
        5s));
    ASSERT_TRUE(sendAll(fd.get(), "still here"));
    EXPECT_EQ(readExactly(fd.get(), 10), "still here");
    ::shutdown(fd.get(), SHUT_WR);
    auto rest = readToEnd(fd.get());
    EXPECT_TRUE(rest.ended);
    EXPECT_EQ(rest.data, "");
    EXPECT_EQ(daemon_->wait(10s), 0) << daemon_->stderrText();
}

TEST_F(DataplaneE2eTest, ManySequentialShortConnectionsDoNotGrowFdsOrMemory) {
    auto o = backendOptions(pki_.issueServer(kHostname));
    o.workers = 2;
    auto backend = startBackend(o);
    startDaemon();
    auto l = serveWithPolicy(*backend, {});
    // The issue asks for 100,000; 60 s is the budget, stretched up to 180 s when a loaded
    // machine has not yet managed the 20,000 this test needs to say anything.
    constexpr int kGoal = 100'000;
    constexpr int kEnough = 20'000;
    constexpr int kBaseline = 2'000;
    constexpr auto kBudget = 60s;
    constexpr auto kHardLimit = 180s;
    const pid_t pid = daemon_->pid();
    auto settle = [&] {
        return eventually([&] { return metric("lastmile_connections_active") == 0; }, 10s);
    };
    std::uint64_t fdsAtBaseline = 0, rssAtBaseline = 0;
    const auto start = SteadyClock::now();
    int done = 0;
    int bad = 0;
    std::string trajectory;  // connections:fds/VmRSS, for the log
    char source[32];
    auto more = [&] {
        const auto elapsed = SteadyClock::now() - start;
        return done < kGoal && elapsed < kHardLimit && (elapsed < kBudget || done < kEnough);
    };
    for (; more(); ++done) {
        if (done == kBaseline) {
            ASSERT_TRUE(settle());
            fdsAtBaseline = countFds(pid);
            rssAtBaseline = rssKiB(pid);
        }
        if (done % 5'000 == 0) {
            trajectory += " " + std::to_string(done) + ":" + std::to_string(countFds(pid)) + "fd/" +
                          std::to_string(rssKiB(pid)) + "KiB";
        }
        // Rotating the source address keeps the client's TIME_WAIT sockets from exhausting
        // the ephemeral ports of one address.
        std::snprintf(source, sizeof(source), "127.0.%d.%d", 1 + (done / 250) % 250,
                      1 + done % 250);
        UniqueFd fd = dial(l.tcp, source);
        if (!sendAll(fd.get(), "ping-pong") || readExactly(fd.get(), 9) != "ping-pong") {
            ++bad;
        }
    }
    const auto took =
        std::chrono::duration_cast<std::chrono::milliseconds>(SteadyClock::now() - start);
    ASSERT_TRUE(settle());
    const std::uint64_t fdsAtEnd = countFds(pid);
    const std::uint64_t rssAtEnd = rssKiB(pid);
    std::printf(
        "sequential connections: %d in %lld ms (%d bad); lastmiled fds %llu -> %llu, "
        "VmRSS %llu -> %llu KiB\n",
        done, static_cast<long long>(took.count()), bad,
        static_cast<unsigned long long>(fdsAtBaseline), static_cast<unsigned long long>(fdsAtEnd),
        static_cast<unsigned long long>(rssAtBaseline), static_cast<unsigned long long>(rssAtEnd));
    std::printf("trajectory:%s\n", trajectory.c_str());
    EXPECT_EQ(bad, 0);
    ASSERT_GE(done, kEnough) << "too slow to say anything about growth";
    EXPECT_LE(fdsAtEnd, fdsAtBaseline + 8);
    if (kAddressSanitizer) {
        std::printf("VmRSS not checked: AddressSanitizer's quarantine holds freed memory "
                    "(LeakSanitizer checks leaks in this build)\n");
        return;
    }
    EXPECT_LE(rssAtEnd, rssAtBaseline + 2 * 1024) << "VmRSS grew by more than 2 MiB";
}

// ---- Kernel TLS. These need a kernel with kernel TLS: the VM suite (tests/vm) runs this
// binary under Debian's stock kernel; a host without it skips them, saying so.

// lastmiled with its kernel engine usable; skips, saying why, on a kernel without kernel TLS.
class KernelTlsE2eTest : public DataplaneE2eTest {
protected:
    void SetUp() override {
        DataplaneE2eTest::SetUp();
        startDaemon();
        if (!kernelEngineUsable()) {
            GTEST_SKIP() << "this kernel has no kernel TLS (CONFIG_TLS off or the tls module "
                            "absent); the VM suite (./run test-vm) runs this case under one "
                            "that has it";
        }
    }

    bool kernelEngineUsable() {
        return metric("lastmile_record_engine_usable{engine=\"kernel\"}") == 1;
    }

    static PolicySpec withOptions(std::map<std::string, std::string> options) {
        PolicySpec p;
        p.options = std::move(options);
        return p;
    }
};

struct CipherCase {
    const char* version;  // "1.2" or "1.3"
    const char* cipher;   // the OpenSSL name the policy asks for and the backend reports
};

class KernelTlsCipherTest : public KernelTlsE2eTest,
                            public ::testing::WithParamInterface<CipherCase> {};

TEST_P(KernelTlsCipherTest, SessionMovesToTheKernelAndSeveralMibEachWayArriveIntact) {
    const CipherCase c = GetParam();
    auto backend = echoBackend();
    // Without resumption even a first TLS 1.3 session goes to the kernel (see the ticket case).
    auto l = serveWithPolicy(*backend, withOptions({{"min-tls-version", c.version},
                                                    {"max-tls-version", c.version},
                                                    {"cipher-suites", c.cipher},
                                                    {"session-resumption", "false"}}));
    const auto before = test::tlsStat();
    constexpr std::uint64_t kTotal = 3ull << 20;
    UniqueFd fd = dial(l.tcp);
    bool ended = false;
    EXPECT_EQ(streamPattern(fd.get(), kTotal, true, &ended), kTotal);
    EXPECT_TRUE(ended) << "EOF after the echo";
    EXPECT_EQ(backend->totalBytesReceived(), kTotal) << "the stock OpenSSL backend read every byte";
    ASSERT_TRUE(backend->waitForClosed(1, 10s));
    const auto obs = backend->observations().front();
    EXPECT_EQ(obs.version, std::string("TLSv") + c.version);
    EXPECT_EQ(obs.cipher, c.cipher);
    EXPECT_TRUE(obs.closeNotifyReceived) << "close_notify sent through the kernel";
    const auto after = test::tlsStat();
    EXPECT_EQ(after.at("TlsTxSw") - before.at("TlsTxSw"), 1u) << "the kernel sealed the records";
    EXPECT_EQ(after.at("TlsRxSw") - before.at("TlsRxSw"), 1u) << "the kernel opened the records";
    EXPECT_EQ(metric("lastmile_engine_sessions_total{engine=\"kernel\"}"), 1);
    EXPECT_EQ(metric("lastmile_engine_sessions_total{engine=\"openssl\"}"), 0);
    EXPECT_EQ(metric("lastmile_backend_sent_bytes_total"), static_cast<double>(kTotal));
}

INSTANTIATE_TEST_SUITE_P(
    EveryVersionAndCipher, KernelTlsCipherTest,
    ::testing::Values(CipherCase{"1.3", "TLS_AES_128_GCM_SHA256"},
                      CipherCase{"1.3", "TLS_AES_256_GCM_SHA384"},
                      CipherCase{"1.3", "TLS_CHACHA20_POLY1305_SHA256"},
                      CipherCase{"1.2", "ECDHE-ECDSA-AES128-GCM-SHA256"},
                      CipherCase{"1.2", "ECDHE-ECDSA-AES256-GCM-SHA384"},
                      CipherCase{"1.2", "ECDHE-ECDSA-CHACHA20-POLY1305"}),
    [](const ::testing::TestParamInfo<CipherCase>& param) {
        std::string name = std::string("Tls") + param.param.version + "_" + param.param.cipher;
        std::replace_if(name.begin(), name.end(), [](char ch) { return !std::isalnum(ch); }, '_');
        return name;
    });

TEST_F(KernelTlsE2eTest, ThirtyTwoMibEachWayThroughTheKernelArriveIntactUnderBackpressure) {
    auto backend = echoBackend();
    auto l = serveWithPolicy(*backend, withOptions({{"session-resumption", "false"}}));
    constexpr std::uint64_t kTotal = 32ull << 20;  // far more than every buffer on the way
    UniqueFd fd = dial(l.tcp, nullptr, 60);
    bool ended = false;
    EXPECT_EQ(streamPattern(fd.get(), kTotal, true, &ended), kTotal);
    EXPECT_TRUE(ended);
    EXPECT_EQ(backend->totalBytesReceived(), kTotal);
    EXPECT_EQ(metric("lastmile_engine_sessions_total{engine=\"kernel\"}"), 1);
}

TEST_F(KernelTlsE2eTest, Tls13SessionThatDidNotResumeCollectsTicketsAndResumedOnesGoToTheKernel) {
    constexpr std::uint64_t kTotal = 2ull << 20;
    auto o = backendOptions(pki_.issueServer(kHostname), BackendMode::Source);
    o.sourceBytes = kTotal;  // tickets first (OpenSSL sends them after the handshake), then data
    auto backend = startBackend(o);
    auto l = serveWithPolicy(*backend, {});
    for (int i = 0; i < 3; ++i) {
        SCOPED_TRACE("connection " + std::to_string(i));
        expectSourceStream(l.tcp, kTotal);
    }
    ASSERT_TRUE(backend->waitForObservations(3, 5s));
    const auto obs = backend->observations();
    EXPECT_FALSE(obs[0].resumed);
    EXPECT_TRUE(obs[1].resumed);
    EXPECT_TRUE(obs[2].resumed) << "tickets the kernel dropped did not replace the good one";
    EXPECT_EQ(metric("lastmile_ticket_collecting_sessions_total"), 1);
    EXPECT_EQ(metric("lastmile_engine_sessions_total{engine=\"openssl\"}"), 1);
    EXPECT_EQ(metric("lastmile_engine_sessions_total{engine=\"kernel\"}"), 2);
    EXPECT_EQ(metric("lastmile_backend_truncations_total"), 0) << "ended by close_notify";
}

TEST_F(KernelTlsE2eTest, KeyUpdateFromTheBackendEndsTheStreamAfterEveryByteBeforeIt) {
    if (metric("lastmile_record_engine_feature{engine=\"kernel\",feature=\"rekey\"}") == 1) {
        GTEST_SKIP() << "this kernel follows KeyUpdate; the case is for kernels that cannot";
    }
    constexpr std::uint64_t kBefore = 1ull << 20;
    auto o = backendOptions(pki_.issueServer(kHostname), BackendMode::Source);
    o.sourceBytes = 2 * kBefore;
    o.keyUpdateAfterBytes = kBefore;
    auto backend = startBackend(o);
    // Without resumption the first session goes to the kernel.
    auto l = serveWithPolicy(*backend, withOptions({{"session-resumption", "false"}}));
    expectSourceStream(l.tcp, kBefore);  // every byte before the KeyUpdate, nothing after
    EXPECT_GE(metric("lastmile_failures_total{reason=\"stream_error\"}"), 1);
}

TEST_F(KernelTlsE2eTest, BackendCloseNotifyReachesTheClientAsEofAfterAllBytes) {
    constexpr std::uint64_t kTotal = 3ull << 20;
    auto o = backendOptions(pki_.issueServer(kHostname), BackendMode::Source);
    o.sourceBytes = kTotal;
    o.maxVersion = tls::TlsVersion::Tls12;
    auto backend = startBackend(o);
    auto l = serveWithPolicy(*backend, {});
    expectSourceStream(l.tcp, kTotal);
    EXPECT_EQ(metric("lastmile_engine_sessions_total{engine=\"kernel\"}"), 1);
    EXPECT_EQ(metric("lastmile_backend_truncations_total"), 0) << "close_notify, not a bare FIN";
}

TEST_F(KernelTlsE2eTest, BackendFinWithoutCloseNotifyResetsTheClientAfterAllBytes) {
    constexpr std::uint64_t kTotal = 3ull << 20;
    auto o = backendOptions(pki_.issueServer(kHostname), BackendMode::Source);
    o.sourceBytes = kTotal;
    o.closeNotify = false;
    auto backend = startBackend(o);
    auto l = serveWithPolicy(*backend, withOptions({{"session-resumption", "false"}}));
    UniqueFd fd = dial(l.tcp);
    const ReadResult r = readToEnd(fd.get());
    EXPECT_TRUE(r.ended);
    EXPECT_EQ(r.error, ECONNRESET) << "a cut stream must not look complete (0: a clean EOF)";
    ASSERT_EQ(r.data.size(), kTotal);
    EXPECT_TRUE(test::matchesSourcePattern(
        0, {reinterpret_cast<const std::uint8_t*>(r.data.data()), r.data.size()}));
    EXPECT_EQ(metric("lastmile_engine_sessions_total{engine=\"kernel\"}"), 1);
    EXPECT_EQ(metric("lastmile_backend_truncations_total"), 1);
    EXPECT_EQ(metric("lastmile_failures_total{reason=\"truncated\"}"), 1);
}

// A client that waits for the answer to each request before sending the next. Kernel
// sessions splice client bytes through a pipe; when client sockets were blocking, the splice
// waiting for the client's next request held the pipe's lock inside the kernel, so the
// request still in the pipe never reached the backend and every connection hung within a
// few dozen exchanges.
TEST_F(KernelTlsE2eTest, InteractiveClientsNeverStallOnKernelSessions) {
    constexpr int kClients = 3;
    constexpr int kRounds = 150;
    constexpr std::size_t kRequest = 8000;
    auto backend = echoBackend();
    auto l = serveWithPolicy(*backend, withOptions({{"session-resumption", "false"}}));
    std::atomic<int> completed{0};
    std::vector<std::thread> clients;
    for (int i = 0; i < kClients; ++i) {
        clients.emplace_back([&, i] {
            UniqueFd fd = dial(l.tcp);
            for (int round = 0; round < kRounds; ++round) {
                const std::string request(kRequest, static_cast<char>('a' + (i + round) % 26));
                if (!sendAll(fd.get(), request) || readExactly(fd.get(), kRequest) != request) {
                    return;  // a stall shows as the receive timing out
                }
            }
            completed.fetch_add(1);
        });
    }
    for (auto& t : clients) {
        t.join();
    }
    EXPECT_EQ(completed.load(), kClients) << "every exchange of every client was answered";
    EXPECT_EQ(metric("lastmile_engine_sessions_total{engine=\"kernel\"}"), kClients);
    EXPECT_EQ(metric("lastmile_failures_total{reason=\"stalled\"}"), 0);
}

// The backend ends its side and closes; bytes the client sends after that reach a closed
// socket, whose kernel answers with a reset, and our close_notify then fails. What the client sent last never reached the
// backend: the connection counts as failed, not as a clean close.
TEST_F(KernelTlsE2eTest, BackendGoneBeforeOurCloseNotifyCountsAsAFailure) {
    auto o = backendOptions(pki_.issueServer(kHostname), BackendMode::Source);
    o.sourceBytes = 1000;
    o.readAfterCloseNotify = false;
    auto backend = startBackend(o);
    auto l = serveWithPolicy(*backend, withOptions({{"session-resumption", "false"}}));
    UniqueFd fd = dial(l.tcp);
    const ReadResult r = readToEnd(fd.get());  // the backend's bytes, then its close_notify
    ASSERT_EQ(r.data.size(), 1000u);
    // The backend has closed: these bytes reach a closed socket, which answers with a reset.
    ASSERT_TRUE(sendAll(fd.get(), std::string(1000, 'x')));
    std::this_thread::sleep_for(300ms);
    ASSERT_EQ(::shutdown(fd.get(), SHUT_WR), 0);  // now lastmile sends its close_notify
    EXPECT_TRUE(eventually(
        [&] { return metric("lastmile_failures_total{reason=\"stream_error\"}") == 1; }))
        << "the failed close_notify is counted";
    EXPECT_EQ(metric("lastmile_engine_sessions_total{engine=\"kernel\"}"), 1);
}

TEST_F(KernelTlsE2eTest, CaRotationReverifiesKernelSessionsFromTheKeptPeerChain) {
    TestPki next;
    auto backend = echoBackend();
    auto l = serveWithPolicy(*backend, withOptions({{"session-resumption", "false"}}));
    UniqueFd open = dial(l.tcp);
    ASSERT_TRUE(sendAll(open.get(), "before"));
    ASSERT_EQ(readExactly(open.get(), 6), "before");
    ASSERT_EQ(metric("lastmile_engine_sessions_total{engine=\"kernel\"}"), 1);

    apply(caConfigMapYaml(pki_.caPem() + next.caPem()));
    ASSERT_TRUE(eventually([&] { return metricsText().find(next.caName()) != std::string::npos; }));
    ASSERT_TRUE(sendAll(open.get(), "after"));
    EXPECT_EQ(readExactly(open.get(), 5), "after");

    apply(caConfigMapYaml(next.caPem()));
    EXPECT_TRUE(readToEnd(open.get()).ended);
    EXPECT_EQ(metric("lastmile_connections_closed_total{reason=\"policy_change\"}"), 1);
}

TEST_F(KernelTlsE2eTest, CipherTheKernelCannotTakeFallsBackToOpensslAndIsCounted) {
    auto backend = echoBackend();
    auto l = serveWithPolicy(*backend, withOptions({{"max-tls-version", "1.2"},
                                                    {"cipher-suites", "ECDHE-ECDSA-AES128-SHA256"}}));
    EXPECT_EQ(echoOnce(l.tcp, "cbc"), "cbc");
    EXPECT_EQ(metric("lastmile_engine_sessions_total{engine=\"openssl\"}"), 1);
    EXPECT_EQ(metric("lastmile_engine_declines_total{engine=\"kernel\",reason=\"cipher\"}"), 1);
}

TEST_F(KernelTlsE2eTest, OffloadUserspaceKeepsTheSessionOnOpenssl) {
    auto backend = echoBackend();
    auto l = serveWithPolicy(*backend, withOptions({{"offload", "userspace"}}));
    const auto before = test::tlsStat();
    EXPECT_EQ(echoOnce(l.tcp, "userspace"), "userspace");
    EXPECT_EQ(metric("lastmile_engine_sessions_total{engine=\"openssl\"}"), 1);
    EXPECT_EQ(test::tlsStat().at("TlsTxSw"), before.at("TlsTxSw"));
}

TEST_F(KernelTlsE2eTest, WarmPoolConnectionsInTheKernelServeClients) {
    auto backend = echoBackend();
    // TLS 1.2 delivers its ticket inside the handshake: every session can go to the kernel.
    auto l = serveWithPolicy(*backend, withOptions({{"warm-pool", "2"}, {"max-tls-version", "1.2"}}));
    ASSERT_TRUE(eventually(
        [&] { return metric("lastmile_engine_sessions_total{engine=\"kernel\"}") >= 2; }));
    EXPECT_EQ(echoOnce(l.tcp, "pooled"), "pooled");
    EXPECT_GE(metric("lastmile_warm_pool_hits_total"), 1);
}

// recordEngines is the order sessions are offered to engines: with the floor first, the
// kernel engine is never reached, even where it would take every session (the VM suite).
TEST_F(DataplaneE2eTest, RecordEnginesAreOfferedSessionsInTheConfiguredOrder) {
    auto backend = echoBackend();
    DaemonSetup setup;
    setup.extraConfig = "recordEngines: [openssl, kernel]\n";
    startDaemon(setup);
    auto l = serveWithPolicy(*backend, {});
    EXPECT_EQ(echoOnce(l.tcp, "floor first"), "floor first");
    EXPECT_EQ(metric("lastmile_engine_sessions_total{engine=\"openssl\"}"), 1);
    EXPECT_EQ(metric("lastmile_engine_sessions_total{engine=\"kernel\"}"), 0);
    const std::string text = metricsText();
    const auto openssl = text.find("lastmile_record_engine_usable{engine=\"openssl\"}");
    const auto kernel = text.find("lastmile_record_engine_usable{engine=\"kernel\"}");
    ASSERT_NE(kernel, std::string::npos) << text;
    EXPECT_LT(openssl, kernel) << "listed in the configured order";
    EXPECT_EQ(text.find("lastmile_record_engine_usable{engine=\"nic\"}"), std::string::npos)
        << "an engine left out of the list is not built";
}

// A policy that prefers the cryptodev engine gets it: 64 MiB each way and an echo arrive
// byte-exact, and the backend sees our close_notify.
void DataplaneE2eTest::expectCryptodevCarriesSessions(const std::string& device) {
    DaemonSetup setup;
    setup.extraConfig = "cryptodev: {eal: [--vdev=" + device + "], devices: [" + device + "]}\n";
    startDaemon(setup);
    if (metric("lastmile_record_engine_usable{engine=\"cryptodev\"}") != 1) {
        GTEST_SKIP() << "this lastmiled has no usable cryptodev engine (built without DPDK, or "
                        "no "
                     << device << "): " << daemon_->stderrText();
    }
    PolicySpec p;
    // Without resumption no session stays on openssl to collect tickets for later ones.
    p.options = {{"offload", "cryptodev"}, {"session-resumption", "false"}};
    auto echo = echoBackend();
    auto l = serveWithPolicy(*echo, p);
    EXPECT_EQ(echoOnce(l.tcp, "sealed by the device"), "sealed by the device");
    EXPECT_EQ(metric("lastmile_engine_sessions_total{engine=\"cryptodev\"}"), 1);
    ASSERT_TRUE(eventually([&] {
        const auto seen = echo->observations();
        return !seen.empty() && seen.front().closeNotifyReceived;
    })) << "the backend got our close_notify";

    constexpr std::uint64_t kTotal = 64ull << 20;
    auto o = backendOptions(pki_.issueServer({kHostname}), BackendMode::Source);
    o.sourceBytes = kTotal;
    auto source = startBackend(std::move(o));
    expectSourceStream(serveWithPolicy(*source, p).tcp, kTotal);

    // And 64 MiB the other way: the backend counts them (a record it could not open would
    // have ended its stream) and answers once our close_notify ended the upload.
    auto sink = startBackend(backendOptions(pki_.issueServer({kHostname}), BackendMode::Sink));
    auto upload = serveWithPolicy(*sink, p);
    UniqueFd up = dial(upload.tcp);
    std::string block(1 << 20, '\0');
    for (std::size_t i = 0; i < block.size(); ++i) {
        block[i] = static_cast<char>(test::sourcePatternByte(i));
    }
    for (std::uint64_t sent = 0; sent < kTotal; sent += block.size()) {
        ASSERT_TRUE(sendAll(up.get(), block));
    }
    ::shutdown(up.get(), SHUT_WR);
    auto answer = readToEnd(up.get());
    EXPECT_NE(answer.data.find("bytes=67108864"), std::string::npos) << answer.data;
    EXPECT_TRUE(eventually([&] { return sink->totalBytesReceived() == kTotal; }));
    EXPECT_EQ(metric("lastmile_engine_sessions_total{engine=\"cryptodev\"}"), 3);
}

// crypto_aesni_gcm: the device's CPU path, in place in the connection's buffers.
TEST_F(DataplaneE2eTest, CryptodevEngineCarriesThePolicysSessionsByteExact) {
    expectCryptodevCarriesSessions("crypto_aesni_gcm0");
}

// crypto_openssl has no CPU path: every record goes to the device as an operation on the
// worker's queue pair, as with a lookaside accelerator, and comes back on a later poll.
TEST_F(DataplaneE2eTest, CryptodevEngineCarriesSessionsThroughAQueuePair) {
    expectCryptodevCarriesSessions("crypto_openssl0");
    EXPECT_EQ(metric("lastmile_record_engine_device{engine=\"cryptodev\",device="
                     "\"crypto_openssl0\",feature=\"cpu_crypto\"}"),
              0);
}

// Many connections at once on the queue path: a worker's lane has buffers for fewer records
// than they send together, so sessions wait for the device to give some back and are
// resumed by the lane; every stream arrives byte-exact and every connection ends.
TEST_F(DataplaneE2eTest, ManyConnectionsShareAWorkersQueuePairByteExact) {
    DaemonSetup setup;
    setup.extraConfig = "cryptodev: {eal: [--vdev=crypto_openssl0], devices: [crypto_openssl0]}\n";
    startDaemon(setup);
    if (metric("lastmile_record_engine_usable{engine=\"cryptodev\"}") != 1) {
        GTEST_SKIP() << "no usable cryptodev engine: " << daemon_->stderrText();
    }
    PolicySpec p;
    p.options = {{"offload", "cryptodev"}, {"session-resumption", "false"}};
    constexpr std::uint64_t kEach = 4ull << 20;
    auto o = backendOptions(pki_.issueServer({kHostname}), BackendMode::Source);
    o.sourceBytes = kEach;
    auto source = startBackend(std::move(o));
    const auto l = serveWithPolicy(*source, p);
    constexpr int kClients = 24;
    std::vector<UniqueFd> clients;
    for (int i = 0; i < kClients; ++i) {
        clients.push_back(dial(l.tcp));
    }
    std::vector<std::thread> readers;
    std::vector<std::string> got(kClients);
    for (int i = 0; i < kClients; ++i) {
        readers.emplace_back([&, i] { got[i] = readToEnd(clients[i].get()).data; });
    }
    for (auto& r : readers) {
        r.join();
    }
    for (int i = 0; i < kClients; ++i) {
        EXPECT_EQ(got[i].size(), kEach) << "client " << i;
        EXPECT_TRUE(test::matchesSourcePattern(
            0, {reinterpret_cast<const std::uint8_t*>(got[i].data()), got[i].size()}))
            << "client " << i;
    }
    EXPECT_EQ(metric("lastmile_engine_sessions_total{engine=\"cryptodev\"}"), kClients);
    clients.clear();
    EXPECT_TRUE(eventually([&] { return metric("lastmile_connections_active") == 0; }));
}

// An operator who leaves the floor out prefers refusing to carrying records in userspace: a
// session no listed engine serves is refused with the reason, never forwarded.
TEST_F(DataplaneE2eTest, WithoutTheFloorASessionNoListedEngineServesIsRefused) {
    auto backend = echoBackend();
    DaemonSetup setup;
    setup.extraConfig = "recordEngines: [kernel]\n";
    startDaemon(setup);
    PolicySpec p;
    p.options = {{"offload", "userspace"}};
    auto l = serveWithPolicy(*backend, p);
    auto r = httpGet(l.http);
    EXPECT_EQ(statusLine(r.data), "HTTP/1.1 502 Bad Gateway") << r.data;
    EXPECT_NE(r.data.find("no record engine took the session"), std::string::npos) << r.data;
    EXPECT_EQ(metric("lastmile_failures_total{reason=\"handshake_failed\"}"), 1);
    EXPECT_EQ(backend->totalBytesReceived(), 0U) << "nothing reached the backend";
}

// Runs on hosts without kernel TLS, and in the VM started without the tls module.
TEST_F(DataplaneE2eTest, WithoutTheModuleTheKernelEngineSaysWhyAndOpensslCarriesSessions) {
    auto backend = echoBackend();
    startDaemon();
    if (metric("lastmile_record_engine_usable{engine=\"kernel\"}") == 1) {
        GTEST_SKIP() << "this kernel has kernel TLS; the case is for one without it";
    }
    EXPECT_EQ(metric("lastmile_record_engine_feature{engine=\"kernel\",feature=\"ulp\"}"), 0);
    auto l = serveWithPolicy(*backend, {});
    EXPECT_EQ(echoOnce(l.tcp, "floor"), "floor");
    EXPECT_EQ(metric("lastmile_engine_sessions_total{engine=\"openssl\"}"), 1);
    const std::string log = daemon_->stderrText();
    EXPECT_NE(log.find("record engine kernel: unusable"), std::string::npos) << log;
}

}  // namespace
}  // namespace lastmile
