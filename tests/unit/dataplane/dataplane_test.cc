// SPDX-License-Identifier: Apache-2.0
// Tests for the Dataplane: real listeners, real TLS backends on loopback, real io_uring.
#include "dataplane/worker/dataplane.h"

#include <netinet/in.h>
#include <openssl/evp.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <chrono>
#include <optional>
#include <string>
#include <thread>
#include <vector>

#include <gtest/gtest.h>

#include "dataplane/net/socket.h"
#include "tests/support/client.h"
#include "tests/support/test_pki.h"
#include "tests/support/tls_backend.h"

namespace lastmile::dataplane {
namespace {

using namespace std::chrono_literals;
using test::BackendMode;
using test::dial;
using test::freePort;
using test::readExactly;
using test::readToEnd;
using test::sendAll;
using test::TestPki;
using test::TlsBackend;
using test::TlsBackendOptions;

constexpr auto kWait = 10s;

// The backends here are on loopback, which the default allowedBackendNetworks refuses.
std::vector<net::Network> loopbackNetworks() {
    return {*net::Network::parse("127.0.0.0/8"), *net::Network::parse("::1/128")};
}

class DataplaneTest : public ::testing::Test {
protected:
    // Full error detail by default: most cases check the names an answer gives.
    void startDataplane(unsigned workers = 1, uring::RingOptions ring = {},
                        std::uint32_t maxConnections = 65'536,
                        ErrorDetail errorDetail = ErrorDetail::Full) {
        DataplaneOptions options;
        options.errorDetail = errorDetail;
        options.workers = workers;
        options.maxConnections = maxConnections;
        options.bindAddress = "127.0.0.1";
        options.allowedBackendNetworks = loopbackNetworks();
        options.connectTimeout = 2s;
        options.handshakeTimeout = 2s;
        options.interception = interception_;
        auto started = Dataplane::start(options, registry_, ring);
        ASSERT_TRUE(started) << started.error().message();
        dataplane_ = std::move(*started);
    }

    std::unique_ptr<TlsBackend> startBackend(TlsBackendOptions options) {
        auto backend = TlsBackend::start(std::move(options));
        EXPECT_TRUE(backend) << backend.error().message();
        return backend ? std::move(*backend) : nullptr;
    }

    TlsBackendOptions backendFor(const std::string& name, BackendMode mode = BackendMode::Echo) {
        TlsBackendOptions o;
        o.serverCert = pki_.issueServer(name);
        o.mode = mode;
        return o;
    }

    tls::ProfileSpec specFor(const std::string& sni) {
        tls::ProfileSpec spec;
        spec.backend = {"default", "echo", 443};
        spec.policy = "default/echo-tls";
        spec.sni = sni;
        spec.caBundlePem = pki_.caPem();
        return spec;
    }

    static std::shared_ptr<const tls::HandshakeProfile> compile(const tls::ProfileSpec& spec) {
        auto profile = tls::HandshakeProfile::compile(spec);
        EXPECT_TRUE(profile) << profile.error().message();
        return profile ? *profile : nullptr;
    }

    static route::Backend backendAt(std::vector<std::uint16_t> ports,
                                    std::shared_ptr<const tls::HandshakeProfile> profile) {
        route::Backend b;
        b.key = {"default", "echo", 443};
        for (auto p : ports) {
            b.endpoints.push_back({"127.0.0.1", p});
        }
        b.profile = std::move(profile);
        return b;
    }

    // Publishes one listener sending to `backend` and returns where it listens.
    std::string serve(route::Backend backend,
                      route::ListenerProtocol protocol = route::ListenerProtocol::Tcp,
                      std::uint16_t port = 0) {
        route::ListenerPlan plan;
        plan.id = {"default", "default", "gw", "l1"};
        plan.protocol = protocol;
        plan.address = "127.0.0.1";
        plan.port = port;
        plan.backends.push_back(std::move(backend));
        auto set = std::make_shared<tls::ProfileSet>();
        set->generation = ++generation_;
        set->listeners["default"] = {plan};
        registry_.publish(set);
        auto states = dataplane_->bind("default", {plan});
        EXPECT_TRUE(states[plan.id].bound) << states[plan.id].message;
        dataplane_->refresh();
        return dataplane_->boundAddress(plan.id).value_or("");
    }

    std::uint64_t failures(Failure f) const {
        return dataplane_->stats().failures[static_cast<std::size_t>(f)];
    }

    TestPki pki_;
    tls::ProfileRegistry registry_;
    std::optional<InterceptionOptions> interception_;  // DataplaneOptions::interception
    std::unique_ptr<Dataplane> dataplane_;
    std::uint64_t generation_ = 0;
};

TEST_F(DataplaneTest, EchoesThroughAVerifiedTlsBackendWithItsSni) {
    startDataplane();
    auto backend = startBackend(backendFor("echo.test"));
    const auto where = serve(backendAt({backend->port()}, compile(specFor("echo.test"))));
    auto fd = dial(where);
    EXPECT_TRUE(sendAll(fd.get(), "hello through lastmile"));
    EXPECT_EQ(readExactly(fd.get(), 22), "hello through lastmile");
    ASSERT_TRUE(backend->waitForObservations(1, kWait));
    const auto seen = backend->observations().at(0);
    EXPECT_EQ(seen.sni, "echo.test");
    EXPECT_TRUE(seen.handshakeOk);
    EXPECT_EQ(dataplane_->stats().handshakesFull, 1u);
}

TEST_F(DataplaneTest, HalfCloseSendsCloseNotifyAndTheEchoComesBackBeforeEof) {
    startDataplane();
    auto backend = startBackend(backendFor("echo.test"));
    const auto where = serve(backendAt({backend->port()}, compile(specFor("echo.test"))));
    auto fd = dial(where);
    EXPECT_TRUE(sendAll(fd.get(), "last words"));
    ASSERT_EQ(::shutdown(fd.get(), SHUT_WR), 0);
    EXPECT_EQ(readToEnd(fd.get()).data, "last words");
    ASSERT_TRUE(backend->waitForClosed(1, kWait));
    EXPECT_TRUE(backend->observations().at(0).closeNotifyReceived);
}

TEST_F(DataplaneTest, MovesEightMebibytesIntactBothWays) {
    startDataplane(2);
    auto backend = startBackend(backendFor("echo.test"));
    const auto where = serve(backendAt({backend->port()}, compile(specFor("echo.test"))));
    std::string payload(8 << 20, '\0');
    for (std::size_t i = 0; i < payload.size(); ++i) {
        payload[i] = static_cast<char>((i * 7919) % 253);
    }
    auto fd = dial(where);
    std::thread writer([&] {
        EXPECT_TRUE(sendAll(fd.get(), payload));
        ::shutdown(fd.get(), SHUT_WR);
    });
    const std::string echoed = readToEnd(fd.get()).data;
    writer.join();
    EXPECT_EQ(echoed.size(), payload.size());
    EXPECT_TRUE(echoed == payload);
}

TEST_F(DataplaneTest, WrongCaClosesATcpClientAndTheBackendGetsNoData) {
    startDataplane();
    TestPki other;
    auto options = backendFor("echo.test");
    options.serverCert = other.issueServer("echo.test");
    auto backend = startBackend(options);
    const auto where = serve(backendAt({backend->port()}, compile(specFor("echo.test"))));
    auto fd = dial(where);
    EXPECT_TRUE(sendAll(fd.get(), "secret"));
    EXPECT_EQ(readToEnd(fd.get()).data, "");
    EXPECT_EQ(failures(Failure::VerifyFailed), 1u);
    EXPECT_EQ(backend->totalBytesReceived(), 0u);
}

TEST_F(DataplaneTest, HostnameMismatchAnswersHttp502WithTheNamesInvolved) {
    startDataplane();
    auto backend = startBackend(backendFor("other.test"));
    const auto where = serve(backendAt({backend->port()}, compile(specFor("echo.test"))),
                             route::ListenerProtocol::Http);
    auto fd = dial(where);
    EXPECT_TRUE(sendAll(fd.get(), "GET / HTTP/1.1\r\nHost: x\r\n\r\n"));
    const std::string answer = readToEnd(fd.get()).data;
    EXPECT_EQ(answer.rfind("HTTP/1.1 502 Bad Gateway\r\n", 0), 0u) << answer;
    EXPECT_NE(answer.find("echo.test"), std::string::npos) << answer;
    EXPECT_NE(answer.find("other.test"), std::string::npos) << answer;
    EXPECT_EQ(backend->totalBytesReceived(), 0u);
}

// A listener's clients are not its operators: by default they learn the class of the
// failure, not the names, addresses or policy reasons behind it.
TEST_F(DataplaneTest, ErrorAnswersNameOnlyTheFailureClassByDefault) {
    startDataplane(1, {}, 65'536, ErrorDetail::Reason);
    auto backend = startBackend(backendFor("other.test"));
    const auto mismatch = serve(backendAt({backend->port()}, compile(specFor("echo.test"))),
                                route::ListenerProtocol::Http);
    auto fd = dial(mismatch);
    EXPECT_TRUE(sendAll(fd.get(), "GET / HTTP/1.1\r\nHost: x\r\n\r\n"));
    std::string answer = readToEnd(fd.get()).data;
    EXPECT_EQ(answer.rfind("HTTP/1.1 502 Bad Gateway\r\n", 0), 0u) << answer;
    EXPECT_NE(answer.find("verify_failed: the backend's certificate was rejected"),
              std::string::npos)
        << answer;
    for (const char* secret : {"echo.test", "other.test", "127.0.0.1", "CA"}) {
        EXPECT_EQ(answer.find(secret), std::string::npos) << secret << " in " << answer;
    }

    const auto closed = serve(backendAt({backend->port()}, tls::HandshakeProfile::failClosed(
                                                               specFor("echo.test"),
                                                               "ConfigMap team-ca has no ca.crt")),
                              route::ListenerProtocol::Http);
    answer = readToEnd(dial(closed).get()).data;
    EXPECT_EQ(answer.rfind("HTTP/1.1 503 Service Unavailable\r\n", 0), 0u) << answer;
    EXPECT_NE(answer.find("fail_closed: "), std::string::npos) << answer;
    EXPECT_EQ(answer.find("team-ca"), std::string::npos) << answer;
}

TEST_F(DataplaneTest, ClientCertificateRefusedAfterTheHandshakeStillAnswers502) {
    startDataplane();
    auto options = backendFor("echo.test");
    options.clientCaPem = pki_.caPem();
    options.requireClientCert = true;
    auto backend = startBackend(options);
    const auto where = serve(backendAt({backend->port()}, compile(specFor("echo.test"))),
                             route::ListenerProtocol::Http);
    auto fd = dial(where);
    EXPECT_TRUE(sendAll(fd.get(), "GET / HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"));
    const std::string answer = readToEnd(fd.get()).data;
    EXPECT_EQ(answer.rfind("HTTP/1.1 502 Bad Gateway\r\n", 0), 0u) << answer;
    EXPECT_NE(answer.find("certificate required"), std::string::npos) << answer;
    EXPECT_EQ(failures(Failure::HandshakeFailed), 1u);
}

TEST_F(DataplaneTest, FailClosedProfileAnswers503AndNeverConnects) {
    startDataplane();
    auto backend = startBackend(backendFor("echo.test"));
    auto spec = specFor("echo.test");
    const auto where = serve(backendAt({backend->port()}, tls::HandshakeProfile::failClosed(
                                                              spec, "no valid CA certificate")),
                             route::ListenerProtocol::Http);
    auto fd = dial(where);
    const std::string answer = readToEnd(fd.get()).data;
    EXPECT_EQ(answer.rfind("HTTP/1.1 503 Service Unavailable\r\n", 0), 0u) << answer;
    EXPECT_NE(answer.find("no valid CA certificate"), std::string::npos);
    EXPECT_EQ(backend->acceptedConnections(), 0u);
    EXPECT_EQ(failures(Failure::FailClosed), 1u);
}

TEST_F(DataplaneTest, BackendWithoutPolicyIsForwardedInPlainText) {
    startDataplane();
    TlsBackendOptions options;
    options.plain = true;
    auto backend = startBackend(options);
    const auto where = serve(backendAt({backend->port()}, nullptr));
    auto fd = dial(where);
    EXPECT_TRUE(sendAll(fd.get(), "plain"));
    ::shutdown(fd.get(), SHUT_WR);
    EXPECT_EQ(readToEnd(fd.get()).data, "plain");
    EXPECT_EQ(dataplane_->stats().plainBackend, 1u);
}

TEST_F(DataplaneTest, SecondConnectionResumesTheBackendSession) {
    startDataplane();
    auto backend = startBackend(backendFor("echo.test"));
    const auto where = serve(backendAt({backend->port()}, compile(specFor("echo.test"))));
    for (int i = 0; i < 2; ++i) {
        auto fd = dial(where);
        EXPECT_TRUE(sendAll(fd.get(), "ping"));
        ASSERT_EQ(readExactly(fd.get(), 4), "ping");
    }
    ASSERT_TRUE(backend->waitForObservations(2, kWait));
    EXPECT_FALSE(backend->observations().at(0).resumed);
    EXPECT_TRUE(backend->observations().at(1).resumed);
    EXPECT_EQ(dataplane_->stats().handshakesResumed, 1u);
}

TEST_F(DataplaneTest, RefusedEndpointIsSkippedForTheNextOne) {
    startDataplane();
    auto backend = startBackend(backendFor("echo.test"));
    const std::uint16_t deadPort = freePort();
    const auto where =
        serve(backendAt({deadPort, backend->port()}, compile(specFor("echo.test"))));
    for (int i = 0; i < 3; ++i) {
        auto fd = dial(where);
        EXPECT_TRUE(sendAll(fd.get(), "ok"));
        EXPECT_EQ(readExactly(fd.get(), 2), "ok");
    }
    EXPECT_GE(dataplane_->stats().endpointRetries, 1u);
}

TEST_F(DataplaneTest, WarmPoolHandsOutHandshakenConnectionsAndRefills) {
    startDataplane();
    auto backend = startBackend(backendFor("echo.test"));
    auto spec = specFor("echo.test");
    spec.warmPool = 2;
    const auto where = serve(backendAt({backend->port()}, compile(spec)));
    // The pool fills before any client arrives.
    ASSERT_TRUE(backend->waitForObservations(2, kWait));
    auto fd = dial(where);
    EXPECT_TRUE(sendAll(fd.get(), "warm"));
    EXPECT_EQ(readExactly(fd.get(), 4), "warm");
    EXPECT_EQ(dataplane_->stats().warmPoolHits, 1u);
    // The one handed out is replaced.
    EXPECT_TRUE(backend->waitForObservations(3, kWait));
}

TEST_F(DataplaneTest, QuietConnectionParksItsBuffersAndStillForwardsBothWays) {
    startDataplane();
    auto backend = startBackend(backendFor("echo.test"));
    const auto where = serve(backendAt({backend->port()}, compile(specFor("echo.test"))));
    auto fd = dial(where);
    EXPECT_TRUE(sendAll(fd.get(), "before"));
    ASSERT_EQ(readExactly(fd.get(), 6), "before");
    // Parking is a time rule (a side quiet for one second gives its buffer back): wait it out.
    std::this_thread::sleep_for(1500ms);
    EXPECT_TRUE(sendAll(fd.get(), "after the pause"));
    EXPECT_EQ(readExactly(fd.get(), 15), "after the pause");
}

TEST_F(DataplaneTest, ConnectionBeyondTheLimitIsClosedAndCounted) {
    startDataplane(1, {}, 2);
    auto backend = startBackend(backendFor("echo.test"));
    const auto where = serve(backendAt({backend->port()}, compile(specFor("echo.test"))));
    auto first = dial(where);
    auto second = dial(where);
    for (int fd : {first.get(), second.get()}) {
        EXPECT_TRUE(sendAll(fd, "in"));
        ASSERT_EQ(readExactly(fd, 2), "in");
    }
    auto third = dial(where);
    EXPECT_EQ(readToEnd(third.get()).data, "");
    EXPECT_EQ(failures(Failure::ConnectionLimit), 1u);
    // Room again once one closes.
    first.reset();
    ASSERT_TRUE(backend->waitForClosed(1, kWait));
    std::string echoed;
    const auto deadline = std::chrono::steady_clock::now() + kWait;
    while (echoed != "again" && std::chrono::steady_clock::now() < deadline) {
        auto fourth = dial(where);
        EXPECT_TRUE(sendAll(fourth.get(), "again"));
        echoed = readExactly(fourth.get(), 5);
    }
    EXPECT_EQ(echoed, "again");
}

TEST_F(DataplaneTest, ListenerMovingBetweenPortsKeepsServing) {
    startDataplane(2);
    auto backend = startBackend(backendFor("echo.test"));
    const auto profile = compile(specFor("echo.test"));
    const std::uint16_t ports[] = {freePort(), freePort()};
    std::string where;
    // The same listener id re-bound while its previous sockets' accepts are still cancelling.
    for (int i = 0; i < 20; ++i) {
        where = serve(backendAt({backend->port()}, profile), route::ListenerProtocol::Tcp,
                      ports[i % 2]);
    }
    EXPECT_EQ(where, "127.0.0.1:" + std::to_string(ports[1]));
    std::string echoed;
    const auto deadline = std::chrono::steady_clock::now() + kWait;
    while (echoed != "moved" && std::chrono::steady_clock::now() < deadline) {
        auto fd = dial(where);
        EXPECT_TRUE(sendAll(fd.get(), "moved"));
        echoed = readExactly(fd.get(), 5);
    }
    EXPECT_EQ(echoed, "moved");
}

// Defence in depth under the controller's arbitration: a listener's socket is its own, so
// neither another listener (another tenant's) nor any other socket of this user can join it
// and be handed its connections, as SO_REUSEPORT groups allowed.
TEST_F(DataplaneTest, NoOtherSocketCanShareAListenersAddress) {
    startDataplane(2);
    const std::uint16_t port = freePort();
    auto plan = [&](const std::string& project, const std::string& address) {
        route::ListenerPlan p;
        p.id = {project, "default", "gw", "l1"};
        p.address = address;
        p.port = port;
        return p;
    };
    auto a = dataplane_->bind("a", {plan("a", "0.0.0.0")});
    ASSERT_TRUE(a.begin()->second.bound) << a.begin()->second.message;
    auto b = dataplane_->bind("b", {plan("b", "127.0.0.1")});
    EXPECT_FALSE(b.begin()->second.bound) << "a specific address joined a wildcard's port";
    EXPECT_NE(b.begin()->second.message.find("in use"), std::string::npos)
        << b.begin()->second.message;
    EXPECT_EQ(b.begin()->second.message.find("0.0.0.0"), std::string::npos)
        << "the other listener's address is not shown";

    UniqueFd squatter(::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0));
    const int one = 1;
    ASSERT_EQ(::setsockopt(squatter.get(), SOL_SOCKET, SO_REUSEPORT, &one, sizeof(one)), 0);
    ASSERT_EQ(::setsockopt(squatter.get(), SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one)), 0);
    sockaddr_in addr{};
    addr.sin_family = AF_INET;
    addr.sin_port = htons(port);
    addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    EXPECT_EQ(::bind(squatter.get(), reinterpret_cast<sockaddr*>(&addr), sizeof(addr)), -1)
        << "an SO_REUSEPORT socket of the same user joined the listener";
}

// A Gateway address that is not this host's needs interception: without it the listener
// says why and binds nothing, not even the default address, and is tried again later (the
// address may come to the host).
TEST_F(DataplaneTest, AVirtualAddressNoInterceptionCanTakeBindsNothingAndSaysWhy) {
    InterceptionOptions allowed;
    allowed.addresses = {*net::Network::parse("198.51.100.0/24")};
    InterceptionOptions elsewhere;
    elsewhere.addresses = {*net::Network::parse("10.0.0.0/8")};
    struct Case {
        std::optional<InterceptionOptions> interception;
        const char* want;
        bool retry;
    } cases[] = {
        {std::nullopt,
         "198.51.100.7 is not an address of this host and interception is not configured", true},
        {allowed, "198.51.100.7 is not an address of this host and no interception mode is "
                  "usable: ",
         true},
        // A tenant takes over only what the operator listed: retrying would not change that.
        {elsewhere, "198.51.100.7 is not an address of this host, nor in the networks "
                    "interception may take over (interception.addresses)",
         false},
        {InterceptionOptions{}, "198.51.100.7 is not an address of this host, nor in the networks",
         false},
    };
    for (const auto& c : cases) {
        interception_ = c.interception;
        startDataplane();
        const std::uint16_t port = freePort();
        route::ListenerPlan p;
        p.id = {"default", "default", "gw", "l1"};
        p.port = port;
        p.virtualAddresses = {"198.51.100.7"};
        auto states = dataplane_->bind("default", {p});
        EXPECT_FALSE(states[p.id].bound);
        EXPECT_EQ(states[p.id].retry, c.retry) << c.want;
        EXPECT_EQ(states[p.id].message.rfind(c.want, 0), 0U) << states[p.id].message;
        EXPECT_THROW(dial("127.0.0.1:" + std::to_string(port)), std::exception)
            << "the default address is not bound for it";
        EXPECT_EQ(dataplane_->interceptor() != nullptr, c.interception.has_value());
        if (const Interceptor* interceptor = dataplane_->interceptor(); c.retry && interceptor) {
            // Each reason once: a build without BPF says so for both modes alike.
            const std::string why = interceptor->usable(InterceptMode::Host).error().context();
            EXPECT_EQ(states[p.id].message.find(why), states[p.id].message.rfind(why))
                << states[p.id].message;
            EXPECT_NE(states[p.id].message.find(why), std::string::npos);
        }
        dataplane_.reset();
    }
}

// A closed listener's address is free when bind returns, though the workers' accepts on it
// end later: another listener (another project's) binds it at once.
TEST_F(DataplaneTest, ClosedListenersAddressIsFreeForAnotherListenerAtOnce) {
    startDataplane(2);
    const std::uint16_t port = freePort();
    for (int i = 0; i < 10; ++i) {
        const std::string project = i % 2 == 0 ? "a" : "b";
        route::ListenerPlan p;
        p.id = {project, "default", "gw", "l1"};
        p.address = "127.0.0.1";
        p.port = port;
        auto states = dataplane_->bind(project, {p});
        ASSERT_TRUE(states[p.id].bound) << i << ": " << states[p.id].message;
        dataplane_->bind(project, {});
    }
}

TEST_F(DataplaneTest, ExternalNameIsResolvedOffTheWorkersAndConnected) {
    startDataplane();
    auto backend = startBackend(backendFor("echo.test"));
    route::Backend external = backendAt({}, compile(specFor("echo.test")));
    external.externalName = "localhost";
    external.externalPort = backend->port();
    const auto where = serve(external);
    // The first lookup runs as the plan is published; until it lands, clients get refused.
    std::string echoed;
    const auto deadline = std::chrono::steady_clock::now() + kWait;
    while (echoed != "named" && std::chrono::steady_clock::now() < deadline) {
        auto fd = dial(where);
        EXPECT_TRUE(sendAll(fd.get(), "named"));
        echoed = readExactly(fd.get(), 5);
    }
    EXPECT_EQ(echoed, "named");
}

TEST_F(DataplaneTest, ListenersItBindsAreNeverDialledUntilTheyClose) {
    startDataplane();
    auto backend = startBackend(backendFor("echo.test"));
    const auto where = serve(backendAt({backend->port()}, compile(specFor("echo.test"))));
    const auto port = static_cast<std::uint16_t>(std::stoi(where.substr(where.find(':') + 1)));
    const net::AddressFilter& filter = *dataplane_->backendFilter();
    EXPECT_FALSE(filter.check(*net::SocketAddress::parse("127.0.0.1", port)));
    EXPECT_FALSE(filter.check(*net::SocketAddress::parse("::ffff:127.0.0.1", port)));
    EXPECT_TRUE(filter.check(*net::SocketAddress::parse("127.0.0.1", backend->port())));
    dataplane_->bind("default", {});
    EXPECT_TRUE(filter.check(*net::SocketAddress::parse("127.0.0.1", port)));
}

TEST_F(DataplaneTest, WorksWithoutDeferredTaskrunOrMultishotAccept) {
    uring::RingOptions ring;
    ring.deferTaskrun = false;
    ring.multishotAccept = false;
    startDataplane(1, ring);
    EXPECT_EQ(dataplane_->ringSetups().at(0), "plain");
    auto backend = startBackend(backendFor("echo.test"));
    const auto where = serve(backendAt({backend->port()}, compile(specFor("echo.test"))));
    for (int i = 0; i < 3; ++i) {
        auto fd = dial(where);
        EXPECT_TRUE(sendAll(fd.get(), "again"));
        EXPECT_EQ(readExactly(fd.get(), 5), "again");
    }
}

}  // namespace
}  // namespace lastmile::dataplane
