// SPDX-License-Identifier: Apache-2.0
// Tests for CIDR parsing and the backend dial check.
#include "dataplane/net/address_filter.h"

#include <gtest/gtest.h>

#include <system_error>

#include "base/unique_fd.h"

namespace lastmile::net {
namespace {

SocketAddress at(const char* ip, std::uint16_t port = 443) {
    auto a = SocketAddress::parse(ip, port);
    EXPECT_TRUE(a) << ip;
    return *a;
}

bool refused(const AddressFilter& f, const char* ip, std::uint16_t port = 443) {
    auto s = f.check(at(ip, port));
    if (!s) {
        EXPECT_EQ(s.error().code(), std::errc::permission_denied);
    }
    return !s;
}

std::vector<Network> networks(std::initializer_list<const char*> list) {
    std::vector<Network> out;
    for (const char* n : list) {
        auto parsed = Network::parse(n);
        EXPECT_TRUE(parsed) << n << ": " << parsed.error().message();
        out.push_back(*parsed);
    }
    return out;
}

TEST(NetworkTest, ParsesExactCidrForms) {
    for (const char* good : {"10.0.0.0/8", "0.0.0.0/0", "127.0.0.1/32", "::/0", "::1/128",
                             "fd00::/8", "2001:db8::/32", "::ffff:127.0.0.0/104"}) {
        EXPECT_TRUE(Network::parse(good)) << good;
    }
    EXPECT_EQ(Network::parse("::ffff:127.0.0.0/104")->toString(), "127.0.0.0/8");
    EXPECT_EQ(Network::parse("::FFFF:10.0.0.0/120")->toString(), "10.0.0.0/24");
}

TEST(NetworkTest, RefusesHostileAndAmbiguousForms) {
    for (const char* bad :
         {"", "/", "10.0.0.0", "10.0.0.0/", "/8", "127.1/32", "127.0.1/32", "0x7f000001/32",
          "0177.0.0.1/32", "010.0.0.0/8", "10.0.0.0/08", "10.0.0.0/+8", "10.0.0.0/-1",
          "10.0.0.0/33", "::/129", "::/1280", "10.0.0.0/8/8", " 10.0.0.0/8", "10.0.0.0/8 ",
          "10.0.0.1/8", "fe80::1%eth0/128", "[::1]/128", "::ffff:127.0.0.0/8",
          "::ffff:127.0.0.0/95", "localhost/32", "10.0.0.0/4294967304", "1.2.3.4.5/32"}) {
        auto n = Network::parse(bad);
        EXPECT_FALSE(n) << "accepted \"" << bad << "\"";
        if (!n) {
            EXPECT_EQ(n.error().code(), Errc::Invalid);
        }
    }
    // An embedded NUL must not hide a trailing part from inet_pton.
    EXPECT_FALSE(Network::parse(std::string_view("10.0.0.0\0x/8", 12)));
    EXPECT_FALSE(IpAddress::parse(std::string_view("127.0.0.1\0junk", 14)));
}

TEST(NetworkTest, MatchesByPrefixAndComparesMappedAddressesAsIpv4) {
    auto n = *Network::parse("10.1.0.0/17");
    EXPECT_TRUE(n.contains(*IpAddress::parse("10.1.127.255")));
    EXPECT_FALSE(n.contains(*IpAddress::parse("10.1.128.0")));
    EXPECT_TRUE(n.contains(*IpAddress::parse("::ffff:10.1.0.1")));
    EXPECT_FALSE(Network::parse("::/0")->contains(*IpAddress::parse("::ffff:10.1.0.1")));
    EXPECT_TRUE(Network::parse("0.0.0.0/0")->contains(*IpAddress::parse("::ffff:8.8.8.8")));
}

TEST(AddressFilterTest, DefaultRefusesLoopbackOnly) {
    AddressFilter f;
    EXPECT_TRUE(refused(f, "127.0.0.1"));
    EXPECT_TRUE(refused(f, "127.255.0.9"));
    EXPECT_TRUE(refused(f, "::1"));
    EXPECT_TRUE(refused(f, "::ffff:127.0.0.1"));
    EXPECT_FALSE(refused(f, "10.0.0.1"));
    EXPECT_FALSE(refused(f, "192.0.2.7"));
    EXPECT_FALSE(refused(f, "2001:db8::1"));
    auto s = f.check(at("127.0.0.1"));
    ASSERT_FALSE(s);
    EXPECT_NE(s.error().context().find("127.0.0.1"), std::string::npos);
    EXPECT_NE(s.error().context().find("allowedBackendNetworks"), std::string::npos);
}

TEST(AddressFilterTest, SpecialUseAddressesAreRefusedWhateverTheNetworks) {
    AddressFilter f(networks({"0.0.0.0/0", "::/0"}));
    for (const char* ip : {"0.0.0.0", "0.1.2.3", "::", "169.254.169.254", "fe80::1", "224.0.0.1",
                           "239.1.2.3", "ff02::1", "ff0e::1", "255.255.255.255",
                           "::ffff:169.254.169.254", "::ffff:0.0.0.0", "::127.0.0.1",
                           "::10.0.0.1"}) {
        EXPECT_TRUE(refused(f, ip)) << ip;
    }
    EXPECT_FALSE(refused(f, "127.0.0.1"));
    EXPECT_FALSE(refused(f, "::1"));
}

TEST(AddressFilterTest, ListedNetworksDecide) {
    AddressFilter f(networks({"127.0.0.0/8", "10.0.0.0/24"}));
    EXPECT_FALSE(refused(f, "127.0.0.1"));
    EXPECT_FALSE(refused(f, "::ffff:127.0.0.1"));
    EXPECT_FALSE(refused(f, "10.0.0.200"));
    EXPECT_TRUE(refused(f, "10.0.1.1"));
    EXPECT_TRUE(refused(f, "::1"));
    AddressFilter none(std::vector<Network>{});
    EXPECT_TRUE(refused(none, "10.0.0.1"));
}

TEST(AddressFilterTest, OwnListeningAddressesAreNeverDialled) {
    AddressFilter f(networks({"127.0.0.0/8", "::1/128"}));
    f.listen(at("127.0.0.1", 9090));
    EXPECT_TRUE(refused(f, "127.0.0.1", 9090));
    EXPECT_TRUE(refused(f, "::ffff:127.0.0.1", 9090));
    EXPECT_FALSE(refused(f, "127.0.0.1", 9091));
    EXPECT_FALSE(refused(f, "127.0.0.2", 9090));
    auto s = f.check(at("127.0.0.1", 9090));
    ASSERT_FALSE(s);
    EXPECT_NE(s.error().context().find("own listening"), std::string::npos);
    f.forget(at("127.0.0.1", 9090));
    EXPECT_FALSE(refused(f, "127.0.0.1", 9090));
}

TEST(AddressFilterTest, WildcardListenerCoversEveryLocalAddressOnItsPort) {
    AddressFilter f(networks({"0.0.0.0/0", "::/0"}));
    f.listen(at("0.0.0.0", 8443));
    EXPECT_TRUE(refused(f, "127.0.0.1", 8443));
    EXPECT_TRUE(refused(f, "127.3.2.1", 8443));
    EXPECT_FALSE(refused(f, "127.0.0.1", 8444));
    // TEST-NET-1 is never an address of this host.
    EXPECT_FALSE(refused(f, "192.0.2.1", 8443));
    f.listen(at("::", 8443));
    UniqueFd probe(::socket(AF_INET6, SOCK_DGRAM | SOCK_CLOEXEC, 0));
    const SocketAddress v6 = at("::1", 0);
    if (probe.valid() && ::bind(probe.get(), v6.get(), v6.length()) == 0) {
        EXPECT_TRUE(refused(f, "::1", 8443));
    }
}

}  // namespace
}  // namespace lastmile::net
