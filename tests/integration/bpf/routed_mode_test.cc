// SPDX-License-Identifier: Apache-2.0
// Routed-mode interception on the real kernel: client, appliance and backend namespaces
// joined by veth; the client dials the backend's own address and the appliance takes it.
#include <gtest/gtest.h>

#include "lastmile_config.h"

#if LM_HAVE_BPF

#include <fcntl.h>
#include <poll.h>
#include <sched.h>
#include <signal.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <bpf/bpf.h>

#include <cerrno>
#include <chrono>
#include <cstring>
#include <fstream>
#include <memory>
#include <optional>

#include "bpf/interception.h"
#include "tests/integration/bpf/kernel_env.h"
#include "tests/support/process.h"

namespace lastmile::bpf {
namespace {

using test::acceptWithin;
using test::connectWithin;
using test::InNetns;

constexpr std::uint32_t kRoutedMark = 0x4c4e;
constexpr std::uint32_t kTable = 0x4c4d;

std::size_t occurrences(const std::string& text, const std::string& what) {
    std::size_t n = 0;
    for (auto at = text.find(what); at != std::string::npos; at = text.find(what, at + 1)) {
        ++n;
    }
    return n;
}

// Whether any BPF link still attaches something to the network namespace `inode`, or any
// program named `name` is still loaded (root may enumerate them).
bool kernelStillHolds(ino_t inode, const char* name) {
    for (__u32 id = 0; ::bpf_link_get_next_id(id, &id) == 0;) {
        int fd = ::bpf_link_get_fd_by_id(id);
        bpf_link_info info{};
        __u32 length = sizeof(info);
        if (fd >= 0 && ::bpf_obj_get_info_by_fd(fd, &info, &length) == 0 &&
            info.type == BPF_LINK_TYPE_NETNS && info.netns.netns_ino == inode) {
            ::close(fd);
            return true;
        }
        if (fd >= 0) {
            ::close(fd);
        }
    }
    for (__u32 id = 0; ::bpf_prog_get_next_id(id, &id) == 0;) {
        int fd = ::bpf_prog_get_fd_by_id(id);
        bpf_prog_info info{};
        __u32 length = sizeof(info);
        if (fd >= 0 && ::bpf_obj_get_info_by_fd(fd, &info, &length) == 0 &&
            std::strcmp(info.name, name) == 0) {
            ::close(fd);
            return true;
        }
        if (fd >= 0) {
            ::close(fd);
        }
    }
    return false;
}

class RoutedModeTest : public ::testing::Test {
protected:
    void SetUp() override {
        if (auto missing = test::kernelEnvMissing()) {
            GTEST_SKIP() << *missing;
        }
        client_ = std::make_unique<test::Netns>("cli");
        appliance_ = std::make_unique<test::Netns>("app");
        backend_ = std::make_unique<test::Netns>("be");
        for (const auto* netns : {client_.get(), appliance_.get(), backend_.get()}) {
            // No duplicate address detection: addresses (link-local ones too) work at once.
            InNetns in(*netns);
            std::ofstream("/proc/sys/net/ipv6/conf/default/accept_dad") << "0";
        }
        test::ip({"link", "add", "c0", "netns", client_->name(), "type", "veth", "peer", "name",
                  "a-cli", "netns", appliance_->name()});
        test::ip({"link", "add", "b0", "netns", backend_->name(), "type", "veth", "peer", "name",
                  "a-be", "netns", appliance_->name()});
        client_->ip({"addr", "add", "10.99.1.2/24", "dev", "c0"});
        client_->ip({"link", "set", "c0", "up"});
        client_->ip({"addr", "add", "fd00:99:1::2/64", "dev", "c0", "nodad"});
        client_->ip({"route", "add", "default", "via", "10.99.1.1"});
        client_->ip({"-6", "route", "add", "default", "via", "fd00:99:1::1"});
        appliance_->ip({"addr", "add", "10.99.1.1/24", "dev", "a-cli"});
        appliance_->ip({"addr", "add", "fd00:99:1::1/64", "dev", "a-cli", "nodad"});
        appliance_->ip({"link", "set", "a-cli", "up"});
        appliance_->ip({"addr", "add", "10.99.2.1/24", "dev", "a-be"});
        appliance_->ip({"addr", "add", "fd00:99:2::1/64", "dev", "a-be", "nodad"});
        appliance_->ip({"link", "set", "a-be", "up"});
        backend_->ip({"addr", "add", "10.99.2.2/24", "dev", "b0"});
        backend_->ip({"addr", "add", "fd00:99:2::2/64", "dev", "b0", "nodad"});
        backend_->ip({"link", "set", "b0", "up"});
        backend_->ip({"route", "add", "default", "via", "10.99.2.1"});
        backend_->ip({"-6", "route", "add", "default", "via", "fd00:99:2::1"});
        {
            InNetns in(*appliance_);
            std::ofstream("/proc/sys/net/ipv4/ip_forward") << "1";
            std::ofstream("/proc/sys/net/ipv6/conf/all/forwarding") << "1";
            applianceListener_ = test::listenOn(*Endpoint::parse("127.0.0.1", 0), true);
            applianceListener6_ = test::listenOn(*Endpoint::parse("::1", 0), true);
        }
        {
            InNetns in(*backend_);
            backendListener_ = test::listenOn(*Endpoint::parse("10.99.2.2", 0));
            otherBackendListener_ = test::listenOn(*Endpoint::parse("10.99.2.2", 0));
            backendListener6_ = test::listenOn(*Endpoint::parse("fd00:99:2::2", 0));
        }
        vip_ = *Endpoint::localOf(backendListener_.get());
        unlisted_ = *Endpoint::localOf(otherBackendListener_.get());
        vip6_ = *Endpoint::localOf(backendListener6_.get());
    }

    static Config config(std::vector<std::string> interfaces) {
        Config c;
        c.interfaces = std::move(interfaces);
        c.routedMark = kRoutedMark;
        c.routedTable = kTable;
        return c;
    }

    // Starts interception in the appliance's namespace.
    std::unique_ptr<Interception> startInAppliance() {
        InNetns in(*appliance_);
        return Interception::start(config({"a-cli"}));
    }

    // The reason to skip when routed mode cannot work here (capabilities, kernel); a
    // failure for any other reason.
    static std::optional<std::string> unusableHere(const Interception& interception) {
        auto usable = interception.usable(Mode::Routed);
        if (usable) {
            return std::nullopt;
        }
        const int code = usable.error().code().value();
        if (code != EPERM && code != ENOSYS) {
            ADD_FAILURE() << usable.error().message();
        }
        return usable.error().message();
    }

    // Where a connection from the client to `to` lands: "appliance", "backend", or "none".
    std::string land(const Endpoint& to) {
        UniqueFd socket;
        {
            InNetns in(*client_);
            socket = test::tcpSocket(to.isV4() ? AF_INET : AF_INET6);
        }
        if (!connectWithin(socket.get(), to)) {
            return "none";
        }
        // The handshake completed; the accept queue may lag a moment behind the client.
        pollfd listeners[] = {{applianceListener_.get(), POLLIN, 0},
                              {applianceListener6_.get(), POLLIN, 0},
                              {backendListener_.get(), POLLIN, 0},
                              {otherBackendListener_.get(), POLLIN, 0},
                              {backendListener6_.get(), POLLIN, 0}};
        if (::poll(listeners, std::size(listeners), 3000) < 1) {
            return "none";
        }
        for (const auto& l : listeners) {
            if ((l.revents & POLLIN) != 0) {
                lastAccepted_.reset(::accept4(l.fd, nullptr, nullptr, SOCK_CLOEXEC));
                const bool appliance =
                    l.fd == applianceListener_.get() || l.fd == applianceListener6_.get();
                return appliance ? "appliance" : "backend";
            }
        }
        return "none";
    }

    // Both families' policy rules.
    std::string applianceRules() const {
        return test::ipOutput({"-n", appliance_->name(), "rule"}) +
               test::ipOutput({"-n", appliance_->name(), "-6", "rule"});
    }
    std::string applianceTable() const {
        return test::ipOutput(
            {"-n", appliance_->name(), "route", "show", "table", std::to_string(kTable)});
    }

    std::unique_ptr<test::Netns> client_;
    std::unique_ptr<test::Netns> appliance_;
    std::unique_ptr<test::Netns> backend_;
    UniqueFd applianceListener_;
    UniqueFd applianceListener6_;
    UniqueFd backendListener_;
    UniqueFd otherBackendListener_;
    UniqueFd backendListener6_;
    UniqueFd lastAccepted_;
    Endpoint vip_;
    Endpoint unlisted_;
    Endpoint vip6_;
};

// With routed interception running in the appliance, on a-cli.
class RoutedModeStartedTest : public RoutedModeTest {
protected:
    void SetUp() override {
        RoutedModeTest::SetUp();
        if (IsSkipped() || HasFatalFailure()) {
            return;
        }
        interception_ = startInAppliance();
        if (auto why = unusableHere(*interception_)) {
            GTEST_SKIP() << *why;
        }
    }

    void TearDown() override { interception_.reset(); }

    std::unique_ptr<Interception> interception_;
};

TEST_F(RoutedModeTest, WithoutInterceptionClientReachesBackend) {
    EXPECT_EQ(land(vip_), "backend");
    EXPECT_EQ(land(vip6_), "backend");
}

TEST_F(RoutedModeStartedTest, ApplianceTakesVirtualAddressAndSeesOriginalDestination) {
    ASSERT_TRUE(interception_->addRouted(vip_, applianceListener_.get()));
    ASSERT_EQ(land(vip_), "appliance");
    EXPECT_EQ(*Endpoint::localOf(lastAccepted_.get()), vip_) << "getsockname is the original";
    EXPECT_EQ(interception_->originalDestination(lastAccepted_.get(), Mode::Routed), vip_);
    EXPECT_EQ(interception_->counters(Mode::Routed).redirected, 1U);
    EXPECT_EQ(land(unlisted_), "backend") << "an unlisted port passes untouched";
    EXPECT_EQ(interception_->originalDestination(lastAccepted_.get(), Mode::Routed), std::nullopt);
}

TEST_F(RoutedModeStartedTest, Ipv6VirtualAddressIsTaken) {
    ASSERT_TRUE(interception_->addRouted(vip6_, applianceListener6_.get()));
    ASSERT_EQ(land(vip6_), "appliance");
    EXPECT_EQ(*Endpoint::localOf(lastAccepted_.get()), vip6_);
    EXPECT_EQ(interception_->originalDestination(lastAccepted_.get(), Mode::Routed), vip6_);
    EXPECT_EQ(land(vip_), "backend") << "the IPv4 address of the same backend is not listed";
}

TEST_F(RoutedModeStartedTest, AppliancesOwnConnectsAreNotSteered) {
    ASSERT_TRUE(interception_->addRouted(vip_, applianceListener_.get()));
    UniqueFd socket;
    {
        InNetns in(*appliance_);
        socket = test::tcpSocket(AF_INET);
    }
    ASSERT_TRUE(connectWithin(socket.get(), vip_));
    EXPECT_TRUE(acceptWithin(backendListener_.get()));
}

TEST_F(RoutedModeStartedTest, AttachmentsListLookupAndMarker) {
    int lookup = 0;
    int marker = 0;
    for (const auto& a : interception_->attachments()) {
        EXPECT_TRUE(a.attached) << a.program << " on " << a.target;
        lookup += a.program == "lm_sk_lookup" ? 1 : 0;
        marker += a.program == "lm_tc_mark" && a.target == "a-cli" ? 1 : 0;
    }
    EXPECT_EQ(lookup, 1);
    EXPECT_EQ(marker, 1);
}

TEST_F(RoutedModeStartedTest, StoppingRemovesRuleAndRouteAndConnectsReachBackend) {
    ASSERT_TRUE(interception_->addRouted(vip_, applianceListener_.get()));
    ASSERT_EQ(land(vip_), "appliance");
    EXPECT_EQ(occurrences(applianceRules(), "lookup " + std::to_string(kTable)), 2U);
    interception_.reset();
    EXPECT_EQ(occurrences(applianceRules(), "lookup " + std::to_string(kTable)), 0U);
    EXPECT_EQ(applianceTable(), "");
    EXPECT_EQ(land(vip_), "backend");
}

TEST_F(RoutedModeTest, AfterSigkillConnectsReachBackendAndNextStartCleansUp) {
    int ready[2];
    ASSERT_EQ(::pipe2(ready, O_CLOEXEC), 0);
    const pid_t child = ::fork();
    ASSERT_GE(child, 0);
    if (child == 0) {
        // The child stands in for lastmiled: it holds the interception until killed.
        ::close(ready[0]);
        char verdict = 'F';
        if (::setns(appliance_->fd(), CLONE_NEWNET) == 0) {
            auto interception = Interception::start(config({"a-cli"}));
            if (interception->usable(Mode::Routed) &&
                interception->addRouted(vip_, applianceListener_.get())) {
                verdict = 'R';
            }
            [[maybe_unused]] auto n = ::write(ready[1], &verdict, 1);
            for (;;) {
                ::pause();
            }
        }
        [[maybe_unused]] auto n = ::write(ready[1], &verdict, 1);
        ::_exit(1);
    }
    ::close(ready[1]);
    pollfd p{ready[0], POLLIN, 0};
    char verdict = 0;
    const bool answered = ::poll(&p, 1, 10000) == 1 && ::read(ready[0], &verdict, 1) == 1;
    ::close(ready[0]);
    if (verdict != 'R') {
        ::kill(child, SIGKILL);
        ::waitpid(child, nullptr, 0);
        // The same start in this process says why (skip or fail).
        auto probe = startInAppliance();
        if (auto why = unusableHere(*probe)) {
            GTEST_SKIP() << *why;
        }
        FAIL() << "the child did not start interception (answered: " << answered << ")";
    }
    EXPECT_EQ(land(vip_), "appliance");
    ::kill(child, SIGKILL);
    ASSERT_EQ(::waitpid(child, nullptr, 0), child);

    // Nothing cleaned up the rule: it is the dead tcx link that makes the path fail open.
    EXPECT_EQ(occurrences(applianceRules(), "lookup " + std::to_string(kTable)), 2U);
    EXPECT_TRUE(test::eventually([&] { return !kernelStillHolds(appliance_->inode(), "lm_tc_mark"); },
                                 std::chrono::seconds(5)))
        << "the programs and links died with their process";
    EXPECT_EQ(land(vip_), "backend");

    auto next = startInAppliance();
    ASSERT_TRUE(next->usable(Mode::Routed)) << next->usable(Mode::Routed).error().message();
    EXPECT_EQ(occurrences(applianceRules(), "lookup " + std::to_string(kTable)), 2U)
        << "the stale rule was replaced, not doubled";
    next.reset();
    EXPECT_EQ(occurrences(applianceRules(), "lookup " + std::to_string(kTable)), 0U);
}

TEST_F(RoutedModeStartedTest, RefusesWhatCannotWork) {
    auto v6 = interception_->addRouted(vip6_, applianceListener_.get());
    ASSERT_FALSE(v6);
    EXPECT_NE(v6.error().message().find("needs an IPv6 listener"), std::string::npos)
        << v6.error().message();
    UniqueFd plain;
    {
        InNetns in(*appliance_);
        plain = test::listenOn(*Endpoint::parse("127.0.0.1", 0));
    }
    auto opaque = interception_->addRouted(vip_, plain.get());
    ASSERT_FALSE(opaque);
    EXPECT_NE(opaque.error().message().find("IP_TRANSPARENT"), std::string::npos);
    auto loop = interception_->addRouted(*Endpoint::localOf(applianceListener_.get()),
                                        applianceListener_.get());
    ASSERT_FALSE(loop);
    EXPECT_EQ(loop.error().code(), make_error_code(Errc::Invalid));
}

TEST_F(RoutedModeTest, UnknownInterfaceIsUnusable) {
    InNetns in(*appliance_);
    auto interception = Interception::start(config({"lmbpf-nope0"}));
    auto usable = interception->usable(Mode::Routed);
    ASSERT_FALSE(usable);
    EXPECT_EQ(usable.error().code(), make_error_code(Errc::NotFound));
    EXPECT_NE(usable.error().message().find("unknown interface lmbpf-nope0"), std::string::npos)
        << usable.error().message();
    EXPECT_EQ(occurrences(applianceRules(), "lookup " + std::to_string(kTable)), 0U)
        << "nothing installed";
    auto bad = Interception::start(config({"a cli"}));
    EXPECT_EQ(bad->usable(Mode::Routed).error().code(), make_error_code(Errc::Invalid));
}

TEST_F(RoutedModeTest, InterfaceListedTwiceIsAttachedOnce) {
    InNetns in(*appliance_);
    auto interception = Interception::start(config({"a-cli", "a-cli"}));
    ASSERT_TRUE(interception->usable(Mode::Routed))
        << interception->usable(Mode::Routed).error().message();
}

TEST_F(RoutedModeTest, MarkEqualToBackendMarkIsRefused) {
    InNetns in(*appliance_);
    auto c = config({"a-cli"});
    c.routedMark = c.backendMark;
    auto interception = Interception::start(c);
    auto usable = interception->usable(Mode::Routed);
    ASSERT_FALSE(usable);
    EXPECT_EQ(usable.error().code(), make_error_code(Errc::Invalid));
}

}  // namespace
}  // namespace lastmile::bpf

#else

TEST(RoutedModeTest, NeedsTheBpfFeature) {
    GTEST_SKIP() << "built without the bpf feature (libbpf, clang, bpftool)";
}

#endif
