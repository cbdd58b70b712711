// SPDX-License-Identifier: Apache-2.0
// Tests for isLocalAddress: which Gateway addresses are this host's and which are virtual.
#include "dataplane/net/local_addresses.h"

#include <gtest/gtest.h>

namespace lastmile::net {
namespace {

TEST(LocalAddressesTest, LoopbackNetworkAndUnspecifiedAddressesAreLocal) {
    EXPECT_TRUE(isLocalAddress("127.0.0.1"));
    EXPECT_TRUE(isLocalAddress("127.0.0.53")) << "all of 127.0.0.0/8 is on lo";
    EXPECT_TRUE(isLocalAddress("::ffff:127.0.0.1")) << "IPv4-mapped is its IPv4 address";
    EXPECT_TRUE(isLocalAddress("0.0.0.0"));
    EXPECT_TRUE(isLocalAddress("::"));
}

TEST(LocalAddressesTest, AddressesOfNoInterfaceAreNotLocal) {
    // TEST-NET-2 and the documentation prefix: assigned to no host.
    EXPECT_FALSE(isLocalAddress("198.51.100.77"));
    EXPECT_FALSE(isLocalAddress("2001:db8::77"));
    EXPECT_FALSE(isLocalAddress("::7f00:1")) << "an IPv4-compatible form is not 127.0.0.1";
}

TEST(LocalAddressesTest, MalformedLiteralsAreNotLocal) {
    EXPECT_FALSE(isLocalAddress(""));
    EXPECT_FALSE(isLocalAddress("localhost"));
    EXPECT_FALSE(isLocalAddress("127.1"));
    EXPECT_FALSE(isLocalAddress(std::string_view("127.0.0.1\0x", 11)));
}

}  // namespace
}  // namespace lastmile::net
