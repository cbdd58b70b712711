// SPDX-License-Identifier: Apache-2.0
// The routed-mode sk_lookup program under BPF_PROG_TEST_RUN: which listener a SYN would reach.
#include <gtest/gtest.h>

#include "lastmile_config.h"

#if LM_HAVE_BPF

#include <arpa/inet.h>
#include <linux/bpf.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <bpf/bpf.h>

#include <cerrno>
#include <cstring>
#include <memory>

#include "base/unique_fd.h"
#include "bpf/programs.h"

namespace lastmile::bpf {
namespace {

constexpr std::uint32_t kMark = 0x4c4e;

UniqueFd loopbackListener() {
    UniqueFd fd(::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0));
    sockaddr_in address{};
    address.sin_family = AF_INET;
    address.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    if (::bind(fd.get(), reinterpret_cast<sockaddr*>(&address), sizeof(address)) == -1 ||
        ::listen(fd.get(), 4) == -1) {
        ADD_FAILURE() << "listening on 127.0.0.1:0: " << std::strerror(errno);
    }
    return fd;
}

std::uint64_t cookieOf(int fd) {
    std::uint64_t cookie = 0;
    socklen_t length = sizeof(cookie);
    ::getsockopt(fd, SOL_SOCKET, SO_COOKIE, &cookie, &length);
    return cookie;
}

class SkLookupTest : public ::testing::Test {
protected:
    void SetUp() override {
        // The interface filter is off: test_run refuses a non-zero ingress_ifindex.
        auto loaded = RoutedPrograms::load(kMark, false);
        if (!loaded) {
            const int code = loaded.error().code().value();
            if (code == EPERM || code == EACCES || code == ENOSYS) {
                GTEST_SKIP() << loaded.error().message();
            }
            FAIL() << loaded.error().message();
        }
        programs_ = std::move(*loaded);
        listener_ = loopbackListener();
        vip_ = *Endpoint::parse("10.99.2.2", 443);
        ASSERT_TRUE(programs_->add(vip_, listener_.get()));
    }

    // The socket the program selects for a SYN (or a UDP datagram) to `local`, as its cookie;
    // 0 when it leaves the regular lookup alone.
    std::uint64_t selected(const char* local, std::uint16_t port, std::uint8_t protocol) {
        bpf_sk_lookup in{};
        in.family = AF_INET;
        in.protocol = protocol;
        in.remote_ip4 = ::inet_addr("10.99.1.2");
        in.remote_port = htons(40000);  // network order, unlike local_port
        in.local_ip4 = ::inet_addr(local);
        in.local_port = port;
        bpf_sk_lookup out{};
        bpf_test_run_opts opts{};
        opts.sz = sizeof(opts);
        opts.ctx_in = &in;
        opts.ctx_size_in = sizeof(in);
        opts.ctx_out = &out;
        opts.ctx_size_out = sizeof(out);
        const int rc = ::bpf_prog_test_run_opts(programs_->lookupProgramFd(), &opts);
        EXPECT_EQ(rc, 0) << std::strerror(errno);
        EXPECT_EQ(opts.retval, static_cast<std::uint32_t>(SK_PASS)) << "the program never drops";
        return out.cookie;
    }

    std::unique_ptr<RoutedPrograms> programs_;
    UniqueFd listener_;
    Endpoint vip_;
};

TEST_F(SkLookupTest, VirtualAddressSelectsItsListener) {
    EXPECT_EQ(selected("10.99.2.2", 443, IPPROTO_TCP), cookieOf(listener_.get()));
    EXPECT_EQ(programs_->counters().redirected, 1U);
}

TEST_F(SkLookupTest, OtherPortSelectsNothing) {
    EXPECT_EQ(selected("10.99.2.2", 8080, IPPROTO_TCP), 0U);
}

TEST_F(SkLookupTest, OtherAddressSelectsNothing) {
    EXPECT_EQ(selected("10.99.2.3", 443, IPPROTO_TCP), 0U);
}

TEST_F(SkLookupTest, UdpSelectsNothing) { EXPECT_EQ(selected("10.99.2.2", 443, IPPROTO_UDP), 0U); }

TEST_F(SkLookupTest, RemovedVirtualAddressSelectsNothing) {
    ASSERT_TRUE(programs_->remove(vip_));
    EXPECT_EQ(selected("10.99.2.2", 443, IPPROTO_TCP), 0U);
}

TEST_F(SkLookupTest, ClosedListenerIsPassedOverAndCounted) {
    listener_.reset();  // the kernel drops a closed socket from the sockmap
    EXPECT_EQ(selected("10.99.2.2", 443, IPPROTO_TCP), 0U);
    EXPECT_EQ(programs_->counters().refused, 1U);
}

TEST_F(SkLookupTest, TwoVirtualAddressesShareTheListenerSlot) {
    const auto second = *Endpoint::parse("10.99.2.3", 8443);
    ASSERT_TRUE(programs_->add(second, listener_.get()));
    ASSERT_TRUE(programs_->remove(vip_));
    EXPECT_EQ(selected("10.99.2.3", 8443, IPPROTO_TCP), cookieOf(listener_.get()))
        << "removing one address must keep the listener of the other";
}

}  // namespace
}  // namespace lastmile::bpf

#else

TEST(SkLookupTest, NeedsTheBpfFeature) {
    GTEST_SKIP() << "built without the bpf feature (libbpf, clang, bpftool)";
}

#endif
