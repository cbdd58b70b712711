// SPDX-License-Identifier: Apache-2.0
// Tests for join and RFC 3339 formatting and parsing.
#include "base/text.h"

#include <gtest/gtest.h>

namespace lastmile {
namespace {

TEST(TextTest, JoinPutsTheSeparatorOnlyBetweenParts) {
    EXPECT_EQ(join({}, ", "), "");
    EXPECT_EQ(join({"a"}, ", "), "a");
    EXPECT_EQ(join({"a", "b", "c"}, "; "), "a; b; c");
}

TEST(TextTest, FormatsWholeSecondsInUtc) {
    auto t = std::chrono::system_clock::time_point(std::chrono::milliseconds(1'800'000'000'999));
    EXPECT_EQ(rfc3339(t), "2027-01-15T08:00:00Z");
}

TEST(TextTest, ParsesWhatItFormatsAndWhatKubernetesWrites) {
    EXPECT_EQ(parseRfc3339("2027-01-15T08:00:00Z"), 1'800'000'000);
    EXPECT_EQ(parseRfc3339("2027-01-15T08:00:00.123456Z"), 1'800'000'000);
    EXPECT_EQ(parseRfc3339("2027-01-15T10:00:00+02:00"), 1'800'000'000);
    EXPECT_EQ(parseRfc3339("2027-01-15T07:00:00-01:00"), 1'800'000'000);
}

TEST(TextTest, RefusesMalformedTimestamps) {
    for (const char* bad : {"", "yesterday", "2027-01-15", "2027-01-15T08:00:00",
                            "2027-01-15T08:00:00Zjunk", "2027-13-15T08:00:00Z",
                            "2027-01-15T08:00:00+2"}) {
        EXPECT_FALSE(parseRfc3339(bad)) << bad;
    }
}

// inet_aton, and with it resolvers and URL parsers, reads hex, octal and short forms as IPv4.
TEST(TextTest, IpLiteralsIncludeEveryFormAParserReadsAsAnAddress) {
    for (const char* ip : {"127.0.0.1", "::1", "fd00::5", "::ffff:127.0.0.1", "0x7f000001",
                           "0X7F000001", "127.1", "10.1", "2130706433", "0177.0.0.1",
                           "10.0.0.010", "0x7f.1", "1.2.3.4.5", "a.0x1", "a.0x", "127.0.0.1."}) {
        EXPECT_TRUE(isIpLiteral(ip)) << ip;
    }
    for (const char* name : {"", "backend.example.com", "10-0-0-1.echo.svc", "0x7f.example",
                             "a.0xg", "1.example.", "x", "0xz"}) {
        EXPECT_FALSE(isIpLiteral(name)) << name;
    }
}

// Addresses are bound and dialled only in the forms inet_pton reads.
TEST(TextTest, IpAddressesAreOnlyDottedQuadsAndIpv6) {
    EXPECT_TRUE(isIpAddress("127.0.0.1"));
    EXPECT_TRUE(isIpAddress("fd00::1"));
    for (const char* notOne : {"127.1", "0x7f000001", "localhost", "", "[::1]"}) {
        EXPECT_FALSE(isIpAddress(notOne)) << notOne;
    }
    EXPECT_FALSE(isIpAddress(std::string_view("127.0.0.1\0x", 11)));
}

}  // namespace
}  // namespace lastmile
