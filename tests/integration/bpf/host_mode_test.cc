// SPDX-License-Identifier: Apache-2.0
// Host-mode interception on the real kernel: a private network namespace where only loopback
// exists (so an unintercepted connect to a virtual address fails) and a child cgroup subtree.
#include <gtest/gtest.h>

#include "lastmile_config.h"

#if LM_HAVE_BPF

#include <linux/capability.h>
#include <netinet/in.h>
#include <poll.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <memory>
#include <optional>
#include <string>

#include "bpf/interception.h"
#include "tests/integration/bpf/kernel_env.h"

namespace lastmile::bpf {
namespace {

using test::acceptWithin;
using test::connectWithin;
using test::tcpSocket;

constexpr std::uint32_t kBackendMark = 0x4c4d;

class HostModeTest : public ::testing::Test {
protected:
    void SetUp() override {
        if (auto missing = test::kernelEnvMissing()) {
            GTEST_SKIP() << *missing;
        }
        netns_ = std::make_unique<test::Netns>("host");
        inNetns_ = std::make_unique<test::InNetns>(*netns_);
        // apps: intercepted clients; daemon: stands in for lastmiled (listeners, sockops);
        // other: neither, for clients that must not be intercepted.
        cgroups_ = std::make_unique<test::TestCgroup>(
            std::vector<std::string>{"apps", "daemon", "other"});
        cgroups_->enter("daemon");
        listener4_ = test::listenOn(*Endpoint::parse("127.0.0.1", 0));
        listener6_ = test::listenOn(*Endpoint::parse("::1", 0));
        interception_ = Interception::start(config({cgroups_->path("apps")}));
        if (auto usable = interception_->usable(Mode::Host); !usable) {
            const int code = usable.error().code().value();
            if (code == EPERM || code == ENOSYS) {
                GTEST_SKIP() << usable.error().message();
            }
            FAIL() << usable.error().message();
        }
        vip4_ = *Endpoint::parse("10.99.0.1", 443);
        ASSERT_TRUE(interception_->addHost(vip4_, *Endpoint::localOf(listener4_.get())));
    }

    void TearDown() override {
        interception_.reset();
        inNetns_.reset();
    }

    static Config config(std::vector<std::string> cgroups) {
        Config c;
        c.cgroups = std::move(cgroups);
        c.backendMark = kBackendMark;
        return c;
    }

    // A socket created by a process of cgroup `child`: the cgroup programs that run for a
    // socket are those of the cgroup it was created in.
    UniqueFd clientIn(const std::string& child, int family = AF_INET, std::uint32_t mark = 0) {
        cgroups_->enter(child);
        UniqueFd fd = tcpSocket(family, mark);
        cgroups_->enter("daemon");
        return fd;
    }

    std::unique_ptr<test::Netns> netns_;
    std::unique_ptr<test::InNetns> inNetns_;
    std::unique_ptr<test::TestCgroup> cgroups_;
    UniqueFd listener4_;
    UniqueFd listener6_;
    std::unique_ptr<Interception> interception_;
    Endpoint vip4_;
};

TEST_F(HostModeTest, ClientInCgroupReachesListenerAndSeesVirtualPeer) {
    auto client = clientIn("apps");
    ASSERT_TRUE(connectWithin(client.get(), vip4_));
    EXPECT_EQ(*Endpoint::peerOf(client.get()), vip4_) << "getpeername shows the virtual address";
    auto accepted = acceptWithin(listener4_.get());
    ASSERT_TRUE(accepted) << "the listener got the connection";
    EXPECT_EQ(interception_->originalDestination(accepted->get(), Mode::Host), vip4_);
    EXPECT_EQ(interception_->counters(Mode::Host).redirected, 1U);
}

TEST_F(HostModeTest, ClientOutsideCgroupIsNotIntercepted) {
    auto client = clientIn("other");
    auto connected = connectWithin(client.get(), vip4_);
    ASSERT_FALSE(connected);
    EXPECT_EQ(connected.error().code().value(), ENETUNREACH) << connected.error().message();
    EXPECT_EQ(interception_->counters(Mode::Host).redirected, 0U);
}

TEST_F(HostModeTest, Ipv4MappedClientOnDualStackSocketIsIntercepted) {
    auto client = clientIn("apps", AF_INET6);
    ASSERT_TRUE(connectWithin(client.get(), vip4_));  // dials ::ffff:10.99.0.1
    EXPECT_EQ(*Endpoint::peerOf(client.get()), vip4_);
    auto accepted = acceptWithin(listener4_.get());
    ASSERT_TRUE(accepted);
    EXPECT_EQ(interception_->originalDestination(accepted->get(), Mode::Host), vip4_);
}

TEST_F(HostModeTest, Ipv6VirtualAddressReachesIpv6Listener) {
    const auto vip6 = *Endpoint::parse("fd00:99::1", 443);
    ASSERT_TRUE(interception_->addHost(vip6, *Endpoint::localOf(listener6_.get())));
    auto client = clientIn("apps", AF_INET6);
    ASSERT_TRUE(connectWithin(client.get(), vip6));
    EXPECT_EQ(*Endpoint::peerOf(client.get()), vip6);
    auto accepted = acceptWithin(listener6_.get());
    ASSERT_TRUE(accepted);
    EXPECT_EQ(interception_->originalDestination(accepted->get(), Mode::Host), vip6);
}

TEST_F(HostModeTest, SocketWithBackendMarkIsNotIntercepted) {
    auto client = clientIn("apps", AF_INET, kBackendMark);
    auto connected = connectWithin(client.get(), vip4_);
    ASSERT_FALSE(connected);
    EXPECT_EQ(connected.error().code().value(), ENETUNREACH);
    EXPECT_EQ(interception_->counters(Mode::Host).skippedByMark, 1U);
}

TEST_F(HostModeTest, UnlistedPortIsNotIntercepted) {
    auto client = clientIn("apps");
    auto connected = connectWithin(client.get(), *Endpoint::parse("10.99.0.1", 444));
    ASSERT_FALSE(connected);
    EXPECT_EQ(connected.error().code().value(), ENETUNREACH);
}

TEST_F(HostModeTest, OriginFoundByTupleWhenListenerCgroupHasNoSockops) {
    // A listener created in a cgroup without sockops: the origin stays in the tuple map.
    cgroups_->enter("other");
    auto listener = test::listenOn(*Endpoint::parse("127.0.0.1", 0));
    cgroups_->enter("daemon");
    const auto vip = *Endpoint::parse("10.99.0.2", 443);
    ASSERT_TRUE(interception_->addHost(vip, *Endpoint::localOf(listener.get())));
    auto client = clientIn("apps");
    ASSERT_TRUE(connectWithin(client.get(), vip));
    auto accepted = acceptWithin(listener.get());
    ASSERT_TRUE(accepted);
    EXPECT_EQ(interception_->originalDestination(accepted->get(), Mode::Host), vip);
}

TEST_F(HostModeTest, ExplicitConnectionHasNoOriginalDestination) {
    auto client = clientIn("apps");
    ASSERT_TRUE(connectWithin(client.get(), *Endpoint::localOf(listener4_.get())));
    auto accepted = acceptWithin(listener4_.get());
    ASSERT_TRUE(accepted);
    EXPECT_EQ(interception_->originalDestination(accepted->get(), Mode::Host), std::nullopt);
}

TEST_F(HostModeTest, RemovedVirtualAddressIsNoLongerIntercepted) {
    ASSERT_TRUE(interception_->remove(vip4_, Mode::Host));
    auto client = clientIn("apps");
    auto connected = connectWithin(client.get(), vip4_);
    ASSERT_FALSE(connected);
    EXPECT_EQ(connected.error().code().value(), ENETUNREACH);
}

TEST_F(HostModeTest, RedirectLoopsAreRefused) {
    const auto listener = *Endpoint::localOf(listener4_.get());
    auto self = interception_->addHost(listener, listener);
    ASSERT_FALSE(self);
    EXPECT_EQ(self.error().code(), make_error_code(Errc::Invalid));
    // A listener that is itself a virtual address, and the reverse.
    EXPECT_FALSE(interception_->addHost(*Endpoint::parse("10.99.0.3", 443), vip4_));
    EXPECT_FALSE(interception_->addHost(listener, *Endpoint::parse("127.0.0.1", 9)));
}

TEST_F(HostModeTest, Ipv4VirtualAddressNeedsIpv4Listener) {
    auto refused = interception_->addHost(*Endpoint::parse("10.99.0.4", 443),
                                          *Endpoint::localOf(listener6_.get()));
    ASSERT_FALSE(refused);
    EXPECT_EQ(refused.error().code(), make_error_code(Errc::Invalid));
}

TEST_F(HostModeTest, AttachmentsListEveryProgramAndTheListenerCgroup) {
    const auto attachments = interception_->attachments();
    int onApps = 0;
    int onDaemon = 0;
    for (const auto& a : attachments) {
        EXPECT_TRUE(a.attached) << a.program << " on " << a.target;
        EXPECT_EQ(a.mode, Mode::Host);
        onApps += a.target.ends_with("/apps") ? 1 : 0;
        onDaemon += a.target.ends_with("/daemon") && a.program == "lm_sockops" ? 1 : 0;
    }
    EXPECT_EQ(onApps, 5);
    EXPECT_EQ(onDaemon, 1);
    EXPECT_FALSE(interception_->usable(Mode::Routed)) << "no interfaces configured";
}

TEST_F(HostModeTest, CgroupListedTwiceIsAttachedOnce) {
    interception_.reset();
    interception_ = Interception::start(config({cgroups_->path("apps"), cgroups_->path("apps/")}));
    ASSERT_TRUE(interception_->usable(Mode::Host))
        << interception_->usable(Mode::Host).error().message();
    int onApps = 0;
    for (const auto& a : interception_->attachments()) {
        onApps += a.target.ends_with("/apps") ? 1 : 0;
    }
    EXPECT_EQ(onApps, 5) << "each program once";
}

TEST_F(HostModeTest, CgroupContainingThisProcessIsRefused) {
    // This process sits in <root>/daemon, inside <root>.
    auto other = Interception::start(config({cgroups_->root()}));
    auto usable = other->usable(Mode::Host);
    ASSERT_FALSE(usable);
    EXPECT_EQ(usable.error().code(), make_error_code(Errc::Invalid));
    EXPECT_NE(usable.error().message().find("contains lastmiled itself"), std::string::npos)
        << usable.error().message();
    EXPECT_TRUE(other->attachments().empty());
}

TEST_F(HostModeTest, NonexistentCgroupIsUnusable) {
    auto other = Interception::start(config({cgroups_->path("missing")}));
    auto usable = other->usable(Mode::Host);
    ASSERT_FALSE(usable);
    EXPECT_EQ(usable.error().code().value(), ENOENT);
    EXPECT_NE(usable.error().message().find(cgroups_->path("missing")), std::string::npos);
    EXPECT_FALSE(other->addHost(*Endpoint::parse("10.99.0.5", 443),
                                *Endpoint::parse("127.0.0.1", 8443)));
}

TEST_F(HostModeTest, MissingCapabilitiesAreTheReason) {
    // A child without CAP_BPF and CAP_SYS_ADMIN in its effective set: what lastmiled sees
    // when the drop-in is not installed.
    int pipeFds[2];
    ASSERT_EQ(::pipe(pipeFds), 0);
    const pid_t child = ::fork();
    ASSERT_GE(child, 0);
    if (child == 0) {
        ::close(pipeFds[0]);
        __user_cap_header_struct header{_LINUX_CAPABILITY_VERSION_3, 0};
        __user_cap_data_struct data[_LINUX_CAPABILITY_U32S_3] = {};
        std::string report = "capset failed";
        if (::syscall(SYS_capget, &header, data) == 0) {
            data[CAP_BPF / 32].effective &= ~(1U << (CAP_BPF % 32));
            data[CAP_SYS_ADMIN / 32].effective &= ~(1U << (CAP_SYS_ADMIN % 32));
            if (::syscall(SYS_capset, &header, data) == 0) {
                auto interception = Interception::start(config({cgroups_->path("apps")}));
                auto usable = interception->usable(Mode::Host);
                report = usable ? "usable" : usable.error().message();
            }
        }
        [[maybe_unused]] auto n = ::write(pipeFds[1], report.data(), report.size());
        ::_exit(0);
    }
    ::close(pipeFds[1]);
    std::string report;
    char buffer[512];
    pollfd p{pipeFds[0], POLLIN, 0};
    while (::poll(&p, 1, 10000) == 1) {
        const ssize_t n = ::read(pipeFds[0], buffer, sizeof(buffer));
        if (n <= 0) {
            break;
        }
        report.append(buffer, static_cast<std::size_t>(n));
    }
    ::close(pipeFds[0]);
    ::waitpid(child, nullptr, 0);
    EXPECT_NE(report.find("missing capabilities CAP_BPF"), std::string::npos) << report;
    EXPECT_EQ(report.find("CAP_NET_ADMIN"), std::string::npos) << "that one is still there";
}

TEST_F(HostModeTest, CgroupPathOutsideTheAllowListIsRefused) {
    for (const char* path : {"relative/apps", "/sys/fs/cgroup/../etc", "/tmp/a b", ""}) {
        auto other = Interception::start(config({path}));
        auto usable = other->usable(Mode::Host);
        ASSERT_FALSE(usable) << path;
        EXPECT_EQ(usable.error().code(), make_error_code(Errc::Invalid)) << path;
    }
}

}  // namespace
}  // namespace lastmile::bpf

#else

TEST(HostModeTest, NeedsTheBpfFeature) {
    GTEST_SKIP() << "built without the bpf feature (libbpf, clang, bpftool)";
}

#endif
