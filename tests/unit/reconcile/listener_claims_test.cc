// SPDX-License-Identifier: Apache-2.0
// Tests for listener claim arbitration: which overlapping bind addresses conflict, who wins.
#include "ctrl/reconcile/listener_claims.h"

#include <gtest/gtest.h>

#include <string>
#include <vector>

namespace lastmile::ctrl {
namespace {

ListenerClaim claim(const std::string& project, const std::string& gateway,
                    const std::string& address, std::uint16_t port = 8443,
                    std::int64_t created = 100, const std::string& listener = "tcp") {
    return ListenerClaim{route::ListenerId{project, "default", gateway, listener}, address, port,
                         created};
}

TEST(ListenerClaimsTest, EqualAddressesAndWildcardsOverlapOnTheSamePort) {
    struct Case {
        const char* a;
        const char* b;
        bool overlap;
    } cases[] = {
        {"127.0.0.1", "127.0.0.1", true},
        {"0.0.0.0", "127.0.0.1", true},
        {"127.0.0.1", "0.0.0.0", true},
        {"::", "0.0.0.0", true},             // a dual-stack :: takes IPv4 too
        {"::", "127.0.0.1", true},
        {"0.0.0.0", "::1", true},
        {"::ffff:127.0.0.1", "127.0.0.1", true},  // IPv4-mapped is the IPv4 address
        {"::ffff:0.0.0.0", "10.0.0.1", true},     // and mapped 0.0.0.0 is a wildcard
        {"::1", "::0:1", true},
        {"127.0.0.1", "127.0.0.2", false},
        {"::1", "127.0.0.1", false},
        {"fd00::1", "fd00::2", false},
        {"not-an-ip", "0.0.0.0", false},  // the dataplane reports the parse error
    };
    for (const auto& c : cases) {
        EXPECT_EQ(claimsOverlap(claim("a", "g", c.a), claim("b", "h", c.b)), c.overlap)
            << c.a << " vs " << c.b;
    }
    EXPECT_FALSE(claimsOverlap(claim("a", "g", "0.0.0.0", 8443), claim("b", "h", "0.0.0.0", 8444)));
    EXPECT_FALSE(claimsOverlap(claim("a", "g", "0.0.0.0", 0), claim("b", "h", "0.0.0.0", 0)))
        << "port 0: the kernel picks a distinct port for each";
}

TEST(ListenerClaimsTest, OldestClaimKeepsTheAddressAcrossProjects) {
    // Project b's specific address is older than project a's wildcard: a loses, either order.
    std::vector<ListenerClaim> claims{claim("a", "wild", "0.0.0.0", 8443, 200),
                                      claim("b", "specific", "127.0.0.1", 8443, 100)};
    auto losers = arbitrateClaims(claims);
    ASSERT_EQ(losers.size(), 1u);
    EXPECT_EQ(losers.begin()->first.project, "a");
    std::swap(claims[0], claims[1]);
    EXPECT_EQ(arbitrateClaims(claims), losers) << "the input order does not matter";
}

TEST(ListenerClaimsTest, SameAgeTieGoesToProjectThenNamespaceThenName) {
    auto losers = arbitrateClaims({claim("b", "a-gw", "127.0.0.1"), claim("a", "z-gw", "0.0.0.0")});
    ASSERT_EQ(losers.size(), 1u);
    EXPECT_EQ(losers.begin()->first.project, "b") << "project a sorts first";
    ListenerClaim otherNs = claim("a", "a-gw", "127.0.0.1");
    otherNs.id.gatewayNamespace = "zz";
    losers = arbitrateClaims({otherNs, claim("a", "z-gw", "127.0.0.1")});
    ASSERT_EQ(losers.size(), 1u);
    EXPECT_EQ(losers.begin()->first.gatewayNamespace, "zz");
    losers = arbitrateClaims({claim("a", "b-gw", "127.0.0.1"), claim("a", "a-gw", "127.0.0.1")});
    ASSERT_EQ(losers.size(), 1u);
    EXPECT_EQ(losers.begin()->first.gateway, "b-gw");
}

TEST(ListenerClaimsTest, OnlyClaimsThatKeptTheirAddressBlockLaterOnes) {
    // 127.0.0.1 keeps it; the wildcard loses to it; 127.0.0.2 overlaps only the losing
    // wildcard, which holds nothing, so it keeps its address.
    auto losers = arbitrateClaims({claim("a", "one", "127.0.0.1", 8443, 1),
                                   claim("b", "wild", "0.0.0.0", 8443, 2),
                                   claim("c", "two", "127.0.0.2", 8443, 3)});
    ASSERT_EQ(losers.size(), 1u);
    EXPECT_EQ(losers.begin()->first.project, "b");
}

TEST(ListenerClaimsTest, LosersMessageNamesTheWinnerOnlyWithinItsOwnProject) {
    auto losers = arbitrateClaims({claim("tenant-a", "secret-gw", "0.0.0.0", 8443, 1),
                                   claim("tenant-b", "mine", "127.0.0.1", 8443, 2),
                                   claim("tenant-a", "late", "::ffff:127.0.0.1", 8443, 3)});
    ASSERT_EQ(losers.size(), 2u);
    const std::string& foreign = losers.at(route::ListenerId{"tenant-b", "default", "mine", "tcp"});
    EXPECT_EQ(foreign, "address 127.0.0.1:8443 is already claimed by another Gateway");
    EXPECT_EQ(foreign.find("tenant-a"), std::string::npos);
    EXPECT_EQ(foreign.find("secret-gw"), std::string::npos);
    const std::string& own = losers.at(route::ListenerId{"tenant-a", "default", "late", "tcp"});
    EXPECT_NE(own.find("Gateway default/secret-gw"), std::string::npos) << own;
    EXPECT_NE(own.find("[::ffff:127.0.0.1]:8443"), std::string::npos) << own;
}

TEST(ListenerClaimsTest, ListenersOfOneGatewayConflictToo) {
    auto losers = arbitrateClaims({claim("a", "gw", "127.0.0.1", 8443, 1, "first"),
                                   claim("a", "gw", "0.0.0.0", 8443, 1, "second")});
    ASSERT_EQ(losers.size(), 1u);
    EXPECT_EQ(losers.begin()->first.listener, "second");
}

}  // namespace
}  // namespace lastmile::ctrl
